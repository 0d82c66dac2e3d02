"""Prediction-layer losses: gold labels (``task``) and logit KD (``kd``, Hinton et al. 2015).

CKD's official KD (``DistillKL``) is a soft cross-entropy with no T² factor (docs/ckd.md,
"Prediction loss"); ``kd_t2: true`` gives Hinton's gradient-scale correction. DynaBERT's
logit loss is the same soft cross-entropy at T = 1 (docs/dynabert.md). YAML::

    weights: {task: 0.1, kd: 0.9}
    temperature: 3.0
    kd_t2: false
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lmcompress.labels import IGNORE_INDEX
from lmcompress.losses.registry import TermInputs, register_term


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       temperature: float = 1.0, scale_by_t2: bool = False) -> torch.Tensor:
    """``-(1/N) Σ softmax(z_T/T) · log_softmax(z_S/T)`` over the N rows of ``[..., C]`` logits."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: student {tuple(student_logits.shape)}, "
                         f"teacher {tuple(teacher_logits.shape)}")
    classes = student_logits.shape[-1]
    target = F.softmax(teacher_logits.detach().reshape(-1, classes) / temperature, dim=-1)
    loss = F.cross_entropy(student_logits.reshape(-1, classes) / temperature, target)
    return loss * temperature**2 if scale_by_t2 else loss


def kd_mse(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Regression KD: ``MSE(z_S/T, z_T/T)`` (the official STS-B path)."""
    return F.mse_loss(student / temperature, teacher.detach() / temperature)


def hard_ce(logits: torch.Tensor, labels: torch.Tensor,
            ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Cross-entropy with gold labels for ``[B, C]`` or token-level ``[B, n, C]`` logits."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=ignore_index)


def hard_mse(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE with gold regression targets (``[B, 1]`` or ``[B]`` predictions)."""
    return F.mse_loss(predictions.reshape(-1).float(), targets.reshape(-1).float())


def _check_temperature(options: dict[str, Any], where: str) -> None:
    temperature = options.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or not temperature > 0:
        raise ValueError(f"{where}.temperature={temperature!r}: must be a number > 0")


@register_term("task", needs_teacher=False, needs_labels=True)
def task_term(inputs: TermInputs) -> torch.Tensor:
    """Gold labels: cross-entropy (MSE for regression; -100 labels ignored for tokens)."""
    if "labels" not in inputs.batch:
        raise ValueError("loss term 'task' needs gold labels, but the batch has none")
    logits, labels = inputs.student.logits, inputs.batch["labels"]
    if inputs.kind == "regression":
        return hard_mse(logits, labels)
    return hard_ce(logits, labels)


@register_term("kd", check=_check_temperature)
def kd_term(inputs: TermInputs, *, temperature: float = 1.0, kd_t2: bool = False
            ) -> torch.Tensor:
    """Logit KD: soft cross-entropy at temperature T (MSE for regression; real tokens only)."""
    s_logits, t_logits = inputs.student.logits.float(), inputs.teacher.logits.float()
    if inputs.kind == "regression":
        return kd_mse(s_logits, t_logits, temperature=temperature)
    if inputs.kind == "token_classification":
        keep = inputs.batch["attention_mask"].bool()
        s_logits, t_logits = s_logits[keep], t_logits[keep]
    return soft_cross_entropy(s_logits, t_logits, temperature=temperature, scale_by_t2=kd_t2)
