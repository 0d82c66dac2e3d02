"""Word-level states for CKD across tokenizers: each side's tokens pooled to shared words.

docs/ckd.md §12. The batch carries each side's token -> word index (``word_index`` for the
student, ``teacher_word_index`` for the teacher; -1 for a token in no kept word) and the
``word_mask`` of the words both sides hold; the relations then run unchanged on the word axis.
Keys and their meaning come from ``lmcompress.data.words``; this module only pools.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

WORD_POOLINGS = ("mean", "first")
WORD_INDEX, TEACHER_WORD_INDEX, WORD_MASK = "word_index", "teacher_word_index", "word_mask"


def pool_words(h: torch.Tensor, index: torch.Tensor, n_words: int, how: str) -> torch.Tensor:
    """Word states ``[B, K, n_w, d]`` from token states ``h [B, K, n, d]``.

    ``index [B, n]`` gives each token's word (-1: none). ``mean`` averages a word's tokens,
    ``first`` takes its first token; a word with no token gives zeros (it is masked anyway).
    """
    if how not in WORD_POOLINGS:
        raise ValueError(f"loss.ckd.word_pooling={how!r}: choose from {WORD_POOLINGS}")
    words = torch.arange(n_words, device=h.device)
    member = index[:, None, :] == words[None, :, None]  # [B, n_w, n]
    if how == "mean":
        weights = member.to(h.dtype) / member.sum(-1, keepdim=True).clamp_min(1).to(h.dtype)
        return torch.matmul(weights[:, None], h)
    n = index.shape[-1]
    positions = torch.arange(n, device=h.device).expand_as(member)
    first = torch.where(member, positions, n).amin(-1)  # [B, n_w]; n: the word has no token
    found = (first < n).to(h.dtype)[:, None, :, None]
    gather = first.clamp_max(n - 1)[:, None, :, None].expand(-1, h.shape[1], -1, h.shape[-1])
    return torch.gather(h, 2, gather) * found


def word_states(student: torch.Tensor, teacher: torch.Tensor, batch: Mapping[str, torch.Tensor],
                how: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(student words, teacher words, word mask)`` of a batch carrying word indices."""
    mask = batch[WORD_MASK]
    n_words = mask.shape[-1]
    with torch.no_grad():
        t_words = pool_words(teacher, batch[TEACHER_WORD_INDEX], n_words, how)
    return pool_words(student, batch[WORD_INDEX], n_words, how), t_words, mask


def has_words(batch: Mapping[str, torch.Tensor]) -> bool:
    """Whether the batch comes from two tokenizers (it carries word indices)."""
    return WORD_MASK in batch
