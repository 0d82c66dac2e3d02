"""Task metrics (torchmetrics) by name: what GLUE, sentiment and POS tagging report."""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryF1Score,
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
)
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

IGNORE_INDEX = -100
METRICS_BY_KIND = {
    "classification": ("accuracy", "f1", "macro_f1", "matthews"),
    "regression": ("pearson", "spearman"),
    "token_classification": ("token_accuracy",),
}


def build_metrics(kind: str, names: list[str], num_labels: int) -> MetricCollection:
    """A MetricCollection for ``names``; unknown or kind-incompatible names raise ValueError.

    Metric semantics: ``accuracy`` (micro), ``f1`` (binary F1 of class 1, as GLUE MRPC/QQP;
    needs 2 labels), ``macro_f1``, ``matthews`` (CoLA), ``pearson``/``spearman`` (STS-B),
    ``token_accuracy`` (micro over labelled first sub-tokens, padding ignored).
    """
    allowed = METRICS_BY_KIND.get(kind)
    if allowed is None:
        raise ValueError(f"task.kind='{kind}' is not one of {sorted(METRICS_BY_KIND)}")
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise ValueError(f"task.metrics={list(names)}: for kind '{kind}' choose from {allowed}")
    table = {
        "accuracy": lambda: MulticlassAccuracy(num_classes=num_labels, average="micro"),
        "f1": lambda: BinaryF1Score(),
        "macro_f1": lambda: MulticlassF1Score(num_classes=num_labels, average="macro"),
        "matthews": lambda: MulticlassMatthewsCorrCoef(num_classes=num_labels),
        "pearson": PearsonCorrCoef,
        "spearman": SpearmanCorrCoef,
        "token_accuracy": lambda: MulticlassAccuracy(
            num_classes=num_labels, average="micro", ignore_index=IGNORE_INDEX
        ),
    }
    if "f1" in names and num_labels != 2:
        raise ValueError("task.metrics: 'f1' is binary F1; use 'macro_f1' for >2 labels")
    return MetricCollection({n: table[n]() for n in names})


def predictions(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """What the metrics consume: class ids, or the regression score."""
    if kind == "regression":
        return logits.squeeze(-1).float()
    return logits.argmax(-1)
