"""The average treatment effect of removing layers on a model's predictions (docs/amoc.md).

The intervention is done on the model, so the counterfactual is observed: it is the
candidate's own prediction. With ``p_M`` the base model's class probabilities and ``p_C`` the
candidate's on the same unlabelled example ``x``::

    TV(p, q)  = 1/2 * sum_c |p_c - q_c|                  (total variation, in [0, 1])
    ATE_C(D)  = 1/|D| * sum_{x in D} TV(p_M(x), p_C(x))

For tagging, the average runs over all counted tokens of ``D`` (labelled first sub-tokens, or
real non-special tokens of unlabelled text), not over sentences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``1/2 * sum_c |p_c - q_c|`` over the last axis."""
    if p.shape != q.shape:
        raise ValueError(f"probability shapes differ: {tuple(p.shape)} vs {tuple(q.shape)}")
    return 0.5 * (p.double() - q.double()).abs().sum(-1)


def ate(base: Sequence[torch.Tensor], candidate: Sequence[torch.Tensor],
        token_masks: Sequence[torch.Tensor | None] | None = None) -> float:
    """Mean total-variation distance between per-batch probabilities ``base`` and ``candidate``.

    Args:
        base: ``[B, C]`` (tagging: ``[B, T, C]``) probabilities of the base model, per batch.
        candidate: the candidate's probabilities on the same batches.
        token_masks: tagging only: ``[B, T]`` booleans of the tokens that count, per batch.
    """
    if len(base) != len(candidate):
        raise ValueError(f"{len(base)} base batches but {len(candidate)} candidate batches")
    distances = []
    for i, (p, q) in enumerate(zip(base, candidate, strict=True)):
        tv = total_variation(p, q)
        mask = token_masks[i] if token_masks is not None else None
        distances.append(tv[mask] if mask is not None else tv.reshape(-1))
    values = torch.cat(distances) if distances else torch.zeros(0)
    if not len(values):
        raise ValueError("ATE of an empty split: no example (or no counted token)")
    return float(values.mean())
