"""Prediction-layer losses: logit KD (Hinton et al. 2015) and hard labels.

CKD's official KD (``DistillKL``) is a soft cross-entropy with no T² factor (specs/ckd.md §1.8);
``scale_by_t2=True`` gives Hinton's gradient-scale correction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                       temperature: float = 1.0, scale_by_t2: bool = False) -> torch.Tensor:
    """``-(1/N) Σ softmax(z_T/T) · log_softmax(z_S/T)`` over the N rows of ``[..., C]`` logits."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logit shapes differ: student {tuple(student_logits.shape)}, "
                         f"teacher {tuple(teacher_logits.shape)}")
    p = F.softmax(teacher_logits.detach() / temperature, dim=-1)
    loss = -(p * F.log_softmax(student_logits / temperature, dim=-1)).sum(-1).mean()
    return loss * temperature**2 if scale_by_t2 else loss


def kd_mse(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Regression KD: ``MSE(z_S/T, z_T/T)`` (the official STS-B path)."""
    return F.mse_loss(student / temperature, teacher.detach() / temperature)


def hard_ce(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy with gold labels for ``[B, C]`` or token-level ``[B, n, C]`` logits."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=ignore_index)


def hard_mse(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE with gold regression targets (``[B, 1]`` or ``[B]`` predictions)."""
    return F.mse_loss(predictions.reshape(-1).float(), targets.reshape(-1).float())

