"""CKD's Word Relation (WR) and Layer Transforming Relation (LTR) terms, registered as one family.

Park, Kim & Yang, EMNLP 2021, arXiv:2109.08359; formulas in docs/ckd.md. ``ckd_terms``
(``shared``) is the one implementation of every term and option: it computes any subset from
one token Gram and one layer Gram per model, and is what training calls through the registry::

    weights: {wr_pair: 1.0, wr_triple: 10.0, ltr_pair: 1.0, ltr_triple: 10.0}
    ckd: {window: 21, mask_window: true, distance: cos, pair_loss: kldiv, triple_loss: l2}
"""

from __future__ import annotations

from typing import Any

import torch

from lmcompress.losses.ckd.relations import CHOICES, check_choices, check_window, window_index
from lmcompress.losses.ckd.shared import CKD_TERMS, ckd_terms
from lmcompress.losses.ckd.words import WORD_POOLINGS, has_words, word_states
from lmcompress.losses.registry import TermInputs, register_family

__all__ = ["CKD_TERMS", "ckd_terms", "check_options", "window_index"]


def check_options(options: dict[str, Any], where: str = "loss.ckd") -> None:
    """Refuse a CKD option value before training, naming ``<where>.<option>``."""
    check_choices(where, **{name: options[name] for name in CHOICES if name in options})
    check_window(options.get("window", 21), f"{where}.window")
    pooling = options.get("word_pooling", "mean")
    if pooling not in WORD_POOLINGS:
        raise ValueError(f"{where}.word_pooling={pooling!r}: choose from {WORD_POOLINGS}")
    for name in ("mask_window", "dist_norm", "centre"):
        if name in options and not isinstance(options[name], bool):
            raise ValueError(f"{where}.{name}={options[name]!r}: must be true or false")
    chunk = options.get("chunk_size", 8)
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"{where}.chunk_size={chunk!r}: must be a positive integer")


@register_family("ckd", CKD_TERMS, options="ckd", check=check_options, needs_hidden=True)
def ckd_family(inputs: TermInputs, names: list[str], *, window: int | None = 21,
               mask_window: bool = True, distance: str = "cos", dist_norm: bool = False,
               pair_loss: str = "kldiv", triple_loss: str = "l2", normalize: str = "global",
               chunk_size: int = 8, centre: bool = True, word_pooling: str = "mean"
               ) -> dict[str, torch.Tensor]:
    """CKD relations of the matched hidden states (student vs teacher, each in its own space).

    A batch from two tokenizers (``word_mask`` present) compares words instead of tokens, each
    side's tokens pooled by ``word_pooling`` (docs/ckd.md §12); otherwise nothing changes.
    """
    lm = inputs.layer_map
    s_h = torch.stack([inputs.student.hidden_states[i] for i in lm.student], dim=1)
    t_h = torch.stack([inputs.teacher.hidden_states[i] for i in lm.teacher], dim=1)
    mask = inputs.batch["attention_mask"]
    if has_words(inputs.batch):
        s_h, t_h, mask = word_states(s_h, t_h, inputs.batch, word_pooling)
    return ckd_terms(s_h, t_h, mask, names, window=window,
                     mask_window=mask_window, distance=distance, dist_norm=dist_norm,
                     pair_loss=pair_loss, triple_loss=triple_loss, normalize=normalize,
                     chunk_size=chunk_size, centre=centre)
