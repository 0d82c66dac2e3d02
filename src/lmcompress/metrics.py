"""Task metrics by name, with scikit-learn's and SciPy's conventions (pure torch + torchmetrics).

Predictions and targets are accumulated (``dist_reduce_fx="cat"``, so DDP gathers them) and
scored once per evaluation by the functions below; ``tests/test_metrics.py`` checks each against
sklearn/scipy, including degenerate predictions. Where those libraries are undefined we follow
sklearn's zero convention: a constant predictor has Matthews correlation 0 (torchmetrics 1.9's
edge-case rule gives ±0.036 on CoLA dev, which would reward a collapsed model), and a correlation
with a constant input is 0 (SciPy: nan), with a warning.
"""

from __future__ import annotations

import logging

import torch
from torchmetrics import Metric

from lmcompress.labels import IGNORE_INDEX

log = logging.getLogger(__name__)
METRICS_BY_KIND = {
    "classification": ("accuracy", "f1", "macro_f1", "matthews"),
    "regression": ("pearson", "spearman"),
    "token_classification": ("token_accuracy",),
}


def accuracy(preds: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of exact matches."""
    return (preds == target).double().mean().item() if len(target) else 0.0


def _counts(preds: torch.Tensor, target: torch.Tensor, label: int) -> tuple[int, int, int]:
    tp = int(((preds == label) & (target == label)).sum())
    fp = int(((preds == label) & (target != label)).sum())
    fn = int(((preds != label) & (target == label)).sum())
    return tp, fp, fn


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def binary_f1(preds: torch.Tensor, target: torch.Tensor) -> float:
    """F1 of class 1 (GLUE MRPC/QQP); 0 when neither side has a positive (sklearn)."""
    return _f1(*_counts(preds, target, 1))


def macro_f1(preds: torch.Tensor, target: torch.Tensor) -> float:
    """Mean F1 over the labels present in target or predictions (sklearn ``average='macro'``)."""
    labels = torch.unique(torch.cat([preds, target])).tolist()
    return sum(_f1(*_counts(preds, target, c)) for c in labels) / max(len(labels), 1)


def matthews(preds: torch.Tensor, target: torch.Tensor, num_labels: int) -> float:
    """Multiclass Matthews correlation (Gorodkin's R_K, as sklearn); 0 if undefined."""
    # built on the predictions' device: CPU indices into a CUDA matrix (or back) are refused
    conf = torch.zeros(num_labels, num_labels, dtype=torch.float64, device=target.device)
    conf.index_put_((target.long(), preds.long()),
                    torch.ones(len(target), dtype=torch.float64, device=target.device),
                    accumulate=True)
    t, p = conf.sum(1), conf.sum(0)
    c, s = conf.trace(), conf.sum()
    cov = c * s - (t * p).sum()
    denom = ((s * s - (p * p).sum()) * (s * s - (t * t).sum())).sqrt()
    return float(cov / denom) if denom > 0 else 0.0


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson's r in float64; 0 (SciPy: nan) when either input is constant."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = (x.square().sum() * y.square().sum()).sqrt()
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (ties share the mean rank), like ``scipy.stats.rankdata``."""
    values, inverse, counts = torch.unique(x.double(), return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return ((ends - counts.double() + 1 + ends) / 2)[inverse]


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rho = Pearson's r of the average ranks; 0 when either input is constant."""
    return pearson(_ranks(x), _ranks(y))


class TaskMetrics(Metric):
    """Accumulate predictions and targets of one split; ``compute()`` returns every named metric.

    Args:
        kind: classification | regression | token_classification.
        names: metrics to compute (``METRICS_BY_KIND[kind]``).
        num_labels: classes of the head.
        label_names: class names, for the constant-predictor warning.
        where: the split's name in log messages (``val``, ``test``).
    """

    full_state_update = False

    def __init__(self, kind: str, names: list[str], num_labels: int,
                 label_names: list[str] | None = None, where: str = "val"):
        super().__init__()
        allowed = METRICS_BY_KIND.get(kind)
        if allowed is None:
            raise ValueError(f"task.kind='{kind}' is not one of {sorted(METRICS_BY_KIND)}")
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise ValueError(f"task.metrics={list(names)}: for kind '{kind}' choose from {allowed}")
        if "f1" in names and num_labels != 2:
            raise ValueError("task.metrics: 'f1' is binary F1; use 'macro_f1' for >2 labels")
        self.kind, self.names, self.num_labels = kind, list(names), num_labels
        self.label_names, self.where = label_names, where
        self.add_state("preds", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch (token labels equal to -100 are dropped)."""
        preds, target = preds.reshape(-1), target.reshape(-1)
        if self.kind == "token_classification":
            keep = target != IGNORE_INDEX
            preds, target = preds[keep], target[keep]
        self.preds.append(preds.detach())
        self.target.append(target.detach())

    def compute(self) -> dict[str, torch.Tensor]:
        """Every named metric over everything seen since the last reset.

        The values are on the metric's device: ``sync_dist=True`` logging all-reduces them, and
        NCCL refuses CPU tensors (gloo accepts them, so a CPU DDP run would not show it).
        """
        preds, target = _cat(self.preds, self.device), _cat(self.target, self.device)
        if self.kind != "regression" and len(preds) and bool((preds == preds[0]).all()):
            name = int(preds[0])
            shown = self.label_names[name] if self.label_names and name < len(
                self.label_names) else name
            log.warning("%s: all %d predictions are %r (a constant predictor)", self.where,
                        len(preds), shown)
        table = {
            "accuracy": lambda: accuracy(preds, target),
            "token_accuracy": lambda: accuracy(preds, target),
            "f1": lambda: binary_f1(preds, target),
            "macro_f1": lambda: macro_f1(preds, target),
            "matthews": lambda: matthews(preds, target, self.num_labels),
            "pearson": lambda: pearson(preds, target),
            "spearman": lambda: spearman(preds, target),
        }
        if self.kind == "regression" and len(preds) and (
                bool((preds == preds[0]).all()) or bool((target == target[0]).all())):
            log.warning("%s: constant predictions or targets: correlations reported as 0",
                        self.where)
        return {n: torch.tensor(table[n](), dtype=torch.float64, device=self.device)
                for n in self.names}


def _cat(values: list[torch.Tensor] | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values
    return torch.cat(values) if values else torch.zeros(0, device=device)


def predictions(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """What the metrics consume: class ids, or the regression score."""
    if kind == "regression":
        return logits.squeeze(-1).float()
    return logits.argmax(-1)
