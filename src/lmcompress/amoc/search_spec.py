"""What an AMoC search searches and how: ``callbacks.amoc`` (docs/amoc.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmcompress.amoc.candidates import PATTERNS
from lmcompress.amoc.train import PRECISIONS, TrainSpec
from lmcompress.specs import SpecError, parse


@dataclass
class SearchSpec:
    """What to search and how (YAML: ``callbacks.amoc``; docs/amoc.md)."""

    budgets: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Numbers of layers to remove (each 1..L-1)."""
    sample_per_budget: int | None = None
    """null: every subset of each size; n: a seeded sample of n per size (+ fixed patterns)."""
    trainable: str = "official"
    """official: the layer below each removed run (or the embeddings) + head | all."""
    patterns: list[str] = field(default_factory=lambda: list(PATTERNS))
    """Fixed-pattern baselines (top, bottom, alternate)."""
    metric: str | None = None
    """Score of source dev and target test (null: macro_f1, or token_accuracy for tagging)."""
    eval_batch_size: int = 64
    """Batch size of every evaluation pass."""
    seed: int = 42
    """Seeds the candidate sample and the domain classifier's cross-validation."""
    independent_subset: int = 0
    """Re-run n candidates, evenly spread over the list, without the cache to time both paths
    (0: skip)."""
    train: dict[str, Any] | TrainSpec = field(default_factory=TrainSpec)
    """The brief fine-tune of each candidate (``TrainSpec`` keys)."""
    precision: str | int = "32"
    """32: the whole search in fp32 | bf16: every pass of the search (the base model's cached
    passes, the candidates' fine-tunes and predictions, the optional full fine-tune) under
    bf16 autocast on the training device; the weights stay fp32 (docs/amoc.md §10)."""

    def check(self, key: str) -> None:
        """Parse ``train`` and refuse impossible sizes."""
        self.train = parse(TrainSpec, self.train, f"{key}.train")
        if self.eval_batch_size < 1 or self.independent_subset < 0:
            raise SpecError(f"{key}: eval_batch_size must be >= 1, independent_subset >= 0")
        self.precision = str(self.precision)  # precision=32 on the command line is an int
        if self.precision not in PRECISIONS:
            raise SpecError(f"{key}.precision={self.precision!r}: must be one of {PRECISIONS}")
