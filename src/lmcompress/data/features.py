"""Tokenise examples into model features, cached on disk as Arrow files (``datasets``).

Sentence tasks: ``input_ids``, ``attention_mask`` (``token_type_ids``), ``index`` (position in
the split) and ``labels`` (int, or float for regression). Tagging: one label per word on its
*first* sub-token, ``-100`` on later sub-tokens and special tokens. Label-less examples (or
streams served without labels) get no ``labels`` column at all.

The cache key is a digest of the examples themselves, the tokenizer's vocabulary and the
maximum length: a file edited in place is re-tokenised, never served stale. In-memory datasets
do not fingerprint to disk on their own, so the key is ours and ``datasets`` stores and reloads
the Arrow file (written to a temporary name and moved, so concurrent jobs never read half).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import datasets

from lmcompress.data.base import Example
from lmcompress.data.words import two_tokenizer_batch
from lmcompress.labels import IGNORE_INDEX

log = logging.getLogger(__name__)
CACHE_VERSION = 3
datasets.disable_progress_bars()


def cache_key(examples: list[Example], tokenizer: Any, max_length: int, with_labels: bool,
              kind: str, teacher_tokenizer: Any = None) -> str:
    """Digest of everything the features depend on."""
    vocab = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    extra = {} if teacher_tokenizer is None else {"teacher": cache_key(
        [], teacher_tokenizer, max_length, with_labels, "two_tokenizers")}
    payload = json.dumps({**extra,
        "examples": hashlib.sha256(repr([(e.text, e.text_pair, e.label) for e in examples])
                                   .encode()).hexdigest(),
        "vocab": vocab.hexdigest(), "lower": str(getattr(tokenizer, "do_lower_case", None)),
        "max_length": max_length, "labels": with_labels, "kind": kind,
        "version": CACHE_VERSION,
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def tokenize(examples: list[Example], tokenizer: Any, max_length: int, kind: str,
             with_labels: bool = True, cache_dir: str | None = None,
             name: str = "split", teacher_tokenizer: Any = None) -> datasets.Dataset:
    """Features of ``examples`` (see module docstring), from the cache when present.

    With ``teacher_tokenizer`` (distillation across tokenizers, sentence tasks only), the
    teacher's own ``teacher_*`` columns and both sides' word indices are added (``words.py``).
    """
    if not examples:
        return datasets.Dataset.from_dict({"input_ids": [], "attention_mask": [], "index": []})
    columns: dict[str, list] = {"index": list(range(len(examples))),
                                "text": [e.text for e in examples]}
    if any(e.text_pair is not None for e in examples):
        columns["text_pair"] = [e.text_pair for e in examples]
    if with_labels:
        columns["labels"] = [e.label for e in examples]
    raw = datasets.Dataset.from_dict(columns)
    key = cache_key(examples, tokenizer, max_length, with_labels, kind, teacher_tokenizer)
    cache_file = None
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        cache_file = str(Path(cache_dir) / f"{name}_{key}.arrow")
    fn = _tag_batch if kind == "token_classification" else _sentence_batch
    if teacher_tokenizer is not None and kind == "token_classification":
        raise ValueError("a tagging task cannot use two tokenizers (docs/ckd.md §12)")
    kwargs = {"tokenizer": tokenizer, "max_length": max_length}
    if teacher_tokenizer is not None:
        fn, kwargs["teacher_tokenizer"] = two_tokenizer_batch, teacher_tokenizer
    out = raw.map(fn, batched=True, fn_kwargs=kwargs,
                  remove_columns=[c for c in ("text", "text_pair") if c in columns],
                  cache_file_name=cache_file, new_fingerprint=key, load_from_cache_file=True)
    log.info("features %s: %d examples", name, len(out))
    return out


def _sentence_batch(batch: dict[str, list], tokenizer: Any, max_length: int) -> dict[str, list]:
    enc = tokenizer(batch["text"], batch.get("text_pair"), truncation=True, max_length=max_length)
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}


def _tag_batch(batch: dict[str, list], tokenizer: Any, max_length: int) -> dict[str, list]:
    enc = tokenizer(batch["text"], is_split_into_words=True, truncation=True,
                    max_length=max_length)
    out = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    if "labels" in batch:
        out["labels"] = [align_word_labels(enc.word_ids(i), tags)
                         for i, tags in enumerate(batch["labels"])]
    return out


def align_word_labels(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """A word's label on its first sub-token; -100 on later sub-tokens and special tokens."""
    labels, previous = [], None
    for word_id in word_ids:
        first = word_id is not None and word_id != previous
        labels.append(tags[word_id] if first else IGNORE_INDEX)
        previous = word_id
    return labels
