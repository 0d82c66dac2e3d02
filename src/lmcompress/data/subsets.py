"""Limits and control permutations of a split's examples (``data.train_limit`` and friends)."""

from __future__ import annotations

import dataclasses
import random

from lmcompress.data.base import Example


def limited(examples: list[Example], limit: int, sample: bool, seed: int, key: str,
             split: str) -> list[Example]:
    """``limit`` examples: the first ones, or a seeded sample kept in order; one class refused."""
    if sample:
        keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
        kept = [examples[i] for i in keep]
    else:
        kept = examples[:limit]
    classes = {e.label for e in examples if isinstance(e.label, int)}
    left = {e.label for e in kept if isinstance(e.label, int)}
    if len(classes) > 1 and len(left) == 1:
        how = "a random sample" if sample else f"the first {limit}"
        raise ValueError(f"{key}: {how} of split '{split}' all have label {left.pop()} (the "
                         f"split has {len(classes)}); some sources order a split by label, so "
                         "set data.limit_sample=true for a seeded random subset, or raise the "
                         "limit")
    return kept


def shuffled_labels(examples: list[Example], seed: int) -> list[Example]:
    """The examples with their labels permuted (seeded): a model can learn only frequencies."""
    labels = [e.label for e in examples]
    random.Random(seed).shuffle(labels)
    return [dataclasses.replace(e, label=y) for e, y in zip(examples, labels, strict=True)]


def check_limit(key: str, limit: object) -> None:
    """Refuse a limit that is not a positive integer (``-5`` would slice off the last five)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"{key}={limit!r}: must be an integer >= 1 (the number of examples to "
                         "keep), or null for the whole split")
