"""Words shared by two tokenizers: token -> word indices for distillation across tokenizers.

docs/ckd.md §12. A *word* is a whitespace-separated piece of the raw text (``str.split``), so
no token of a common tokenizer (WordPiece, byte-level BPE, SentencePiece) spans two words. Each
side maps its tokens to words from its own ``offset_mapping``: a content token belongs to the
word its character span overlaps; the special tokens form words of their own (the leading one,
e.g. [CLS] or <s>, is the *start* word, those between a text and its pair the *separator* word,
the trailing ones the *end* word), as [CLS] and [SEP] count as words in the same-tokenizer
path. A word is kept only when both sides hold all of it (truncation may cut a word or drop it
on one side only); kept words are numbered 0.. in text order, everything else gets -1.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

WORD_INDEX = "word_index"
"""Batch key: the student's token -> word index ``[B, n_s]`` (-1: the token is in no word)."""
TEACHER_WORD_INDEX = "teacher_word_index"
"""Batch key: the teacher's token -> word index ``[B, n_t]``."""
WORD_MASK = "word_mask"
"""Batch key: ``[B, n_w]``, 1 for the words of each example (a prefix of the row)."""
NUM_WORDS = "num_words"
"""Feature column: how many words an example kept (the collator turns it into ``WORD_MASK``)."""
TEACHER_PREFIX = "teacher_"
"""Prefix of the teacher's own input columns (``teacher_input_ids``, ...)."""
_SPACE = re.compile(r"\S+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the whitespace-separated words of ``text``."""
    return [m.span() for m in _SPACE.finditer(text)]


def token_words(offsets: list[tuple[int, int]], sequence_ids: list[int | None],
                spans: list[list[tuple[int, int]]]) -> tuple[list[int], set[int]]:
    """Word id of every token (-1: none) and the ids of the words this side holds whole.

    Ids: 0 = start, then the words of the text, the separator (pairs only), the words of the
    pair, and the end word last; ``spans`` has one span list per sequence (text, pair).
    """
    base = [1] if len(spans) == 1 else [1, 2 + len(spans[0])]
    end_word = base[-1] + len(spans[-1])
    content = [i for i, s in enumerate(sequence_ids) if s is not None]
    first, last = (content[0], content[-1]) if content else (1, 0)
    ends = [[e for _, e in sp] for sp in spans]
    words, reach = [], {}
    for i, (seq, (a, b)) in enumerate(zip(sequence_ids, offsets, strict=True)):
        if seq is None:  # a special token: start, separator or end word
            w = 0 if i < first else end_word if i > last else (base[-1] - 1 if len(spans) > 1
                                                                 else -1)
            reach[w] = float("inf")
        else:
            j = bisect.bisect_right(ends[seq], a)
            w = base[seq] + j if b > a and j < len(spans[seq]) and spans[seq][j][0] < b else -1
            if w >= 0:
                reach[w] = max(reach.get(w, 0), b)
        words.append(w)
    whole = {w for w, r in reach.items() if w == 0 or w == end_word or w == base[-1] - 1
             or r >= _span_of(w, base, spans)[1]}
    return words, whole


def _span_of(word: int, base: list[int], spans: list[list[tuple[int, int]]]) -> tuple[int, int]:
    seq = 1 if len(base) > 1 and word >= base[1] else 0
    return spans[seq][word - base[seq]]


def align(texts: tuple[str, str | None], student: tuple[list, list],
          teacher: tuple[list, list]) -> tuple[list[int], list[int], int]:
    """Student and teacher token -> word indices over the words both hold whole, and their count.

    ``student`` and ``teacher`` are each ``(offset_mapping, sequence_ids)`` of one example.
    """
    spans = [word_spans(t) for t in texts if t is not None]
    s_words, s_whole = token_words(*student, spans)
    t_words, t_whole = token_words(*teacher, spans)
    keep = sorted((s_whole & t_whole) - {-1})
    dense = {w: i for i, w in enumerate(keep)}
    return ([dense.get(w, -1) for w in s_words], [dense.get(w, -1) for w in t_words], len(keep))


def two_tokenizer_batch(batch: dict[str, list], tokenizer: Any, teacher_tokenizer: Any,
                        max_length: int) -> dict[str, list]:
    """Features of a sentence(-pair) batch for both sides, with their word indices."""
    pairs = batch.get("text_pair") or [None] * len(batch["text"])
    out: dict[str, list] = {WORD_INDEX: [], TEACHER_WORD_INDEX: [], NUM_WORDS: []}
    encs = []
    for prefix, tok in (("", tokenizer), (TEACHER_PREFIX, teacher_tokenizer)):
        enc = tok(batch["text"], batch.get("text_pair"), truncation=True, max_length=max_length,
                  return_offsets_mapping=True)
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in enc:
                out[prefix + key] = enc[key]
        encs.append(enc)
    for i, text in enumerate(batch["text"]):
        s, t, n = align((text, pairs[i]), (encs[0]["offset_mapping"][i], encs[0].sequence_ids(i)),
                        (encs[1]["offset_mapping"][i], encs[1].sequence_ids(i)))
        out[WORD_INDEX].append(s)
        out[TEACHER_WORD_INDEX].append(t)
        out[NUM_WORDS].append(n)
    return out


def same_tokenizer(a: Any, b: Any) -> bool:
    """Whether two tokenizers give the same ids (vocabulary and a probe with case and accents)."""
    probe = "Tokenizers MUST agree: Straße, naïve café."
    return a.get_vocab() == b.get_vocab() and a(probe)["input_ids"] == b(probe)["input_ids"]


def load_tokenizers(ref: str, student_ref: str | None) -> tuple[Any, Any]:
    """The model inputs' tokenizer and the teacher's own (None when both use one tokenizer).

    ``ref`` is ``data.tokenizer``, ``student_ref`` ``data.student_tokenizer``: None, or a
    tokenizer identical to ``ref``'s, means one tokenizer for both.
    """
    from lmcompress.models.hub import load_tokenizer

    main = load_tokenizer(ref)
    if student_ref is None:
        return main, None
    own = load_tokenizer(student_ref)
    return (main, None) if same_tokenizer(own, main) else (own, main)


def check_two_tokenizers(kinds: set[str], student: tuple[Any, str],
                         teacher: tuple[Any, str]) -> None:
    """Refuse what distillation across tokenizers cannot do, naming the keys (docs/ckd.md §12).

    ``kinds`` are the task kinds served, ``student`` and ``teacher`` ``(tokenizer, reference)``:
    a tagging task (token-level logit KD needs one token sequence) and a tokenizer without
    offsets are refused.
    """
    if "token_classification" in kinds:
        raise ValueError(
            f"data.student_tokenizer={student[1]} differs from the teacher's data.tokenizer="
            f"{teacher[1]}, but task.kind=token_classification: token-level logit KD needs the "
            "same tokens on both sides (docs/ckd.md §12); use the teacher's tokenizer for "
            "tagging tasks")
    for (tok, ref), key in ((student, "data.student_tokenizer"), (teacher, "data.tokenizer")):
        if not getattr(tok, "is_fast", False):
            raise ValueError(f"{key}={ref}: {type(tok).__name__} is a slow tokenizer without "
                             "offset_mapping; CKD across tokenizers maps tokens to words from "
                             "character offsets (docs/ckd.md §12): use a fast tokenizer")


class TwoTokenizerCollator:
    """Pad each side with its own tokenizer; word indices padded with -1, plus the word mask.

    The student's columns keep their names (``input_ids``, ``labels``, ``index``...), the
    teacher's are ``teacher_input_ids``... ; words are padded to the longest example of the
    batch, or to ``max_length`` with ``padding="max_length"`` (as tokens are).
    """

    def __init__(self, tokenizer: Any, teacher_tokenizer: Any, padding: str, max_length: int):
        from transformers import DataCollatorWithPadding

        self.sides = [DataCollatorWithPadding(tok, padding=padding, max_length=max_length)
                      for tok in (tokenizer, teacher_tokenizer)]
        self.padding, self.max_length = padding, max_length

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        word_keys = (WORD_INDEX, TEACHER_WORD_INDEX, NUM_WORDS)
        student = [{k: v for k, v in f.items() if not k.startswith(TEACHER_PREFIX)
                    and k not in word_keys} for f in features]
        teacher = [{k[len(TEACHER_PREFIX):]: v for k, v in f.items()
                    if k.startswith(TEACHER_PREFIX) and k != TEACHER_WORD_INDEX}
                   for f in features]
        out = dict(self.sides[0](student))
        out.update({TEACHER_PREFIX + k: v for k, v in self.sides[1](teacher).items()})
        for key, ids in ((WORD_INDEX, "input_ids"), (TEACHER_WORD_INDEX, "teacher_input_ids")):
            width = out[ids].shape[1]
            out[key] = torch.tensor([list(f[key]) + [-1] * (width - len(f[key]))
                                     for f in features], dtype=torch.long)
        counts = torch.tensor([int(f[NUM_WORDS]) for f in features])
        width = self.max_length if self.padding == "max_length" else int(counts.max())
        out[WORD_MASK] = (torch.arange(width)[None] < counts[:, None]).long()
        return out
