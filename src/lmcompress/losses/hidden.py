"""Hidden-state MSE on matched layers, embedding output included (DynaBERT's ``l_emb + l_hidn``).

Hou et al., "DynaBERT: Dynamic BERT with Adaptive Width and Depth", NeurIPS 2020,
arXiv:2004.04037; semantics in docs/dynabert.md ("Objective"): ``Σ_l MSE(h_S^l, h_T^l)`` over
the matched hidden states (index 0 = embeddings), no projection, padding not masked by default.
It compares vectors directly, so the two models must have the same hidden size. YAML::

    weights: {kd: 1.0, hidden_mse: 0.1}
    hidden: {mask_padding: false}
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lmcompress.losses.registry import TermInputs, register_term


def _same_width(teacher_config: Any, student_config: Any) -> None:
    t, s = teacher_config.hidden_size, student_config.hidden_size
    if t != s:
        raise ValueError(f"loss term hidden_mse compares hidden states directly, but the teacher "
                         f"has hidden_size {t} and the student {s}: use equal widths, or the "
                         "CKD relation terms (no projection needed)")


def hidden_mse(student: list[torch.Tensor], teacher: list[torch.Tensor],
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_l MSE(s_l, t_l)``; with ``attention_mask``, the mean runs over real tokens only."""
    total = student[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student, teacher, strict=True):
        s, t = s.float(), t.detach().float()
        if attention_mask is None:
            total = total + F.mse_loss(s, t)
        else:
            keep = attention_mask.bool()
            total = total + F.mse_loss(s[keep], t[keep])
    return total


@register_term("hidden_mse", options="hidden", needs_hidden=True, check_models=_same_width)
def hidden_mse_term(inputs: TermInputs, *, mask_padding: bool = False) -> torch.Tensor:
    """DynaBERT hidden-state loss: Σ over matched layers (embeddings first) of the MSE."""
    lm = inputs.layer_map
    s = [inputs.student.hidden_states[i] for i in lm.student]
    t = [inputs.teacher.hidden_states[i] for i in lm.teacher]
    return hidden_mse(s, t, inputs.batch["attention_mask"] if mask_padding else None)
