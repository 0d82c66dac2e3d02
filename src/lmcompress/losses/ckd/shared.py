"""All requested CKD terms from shared Gram matrices per model (what training calls).

docs/ckd.md §10: every angle needs only ``G_ii - G_ia - G_ib + G_ab``, so one token Gram per
layer serves the WR triple term and one layer Gram per token the LTR triple term. Angles are
translation invariant and use the Gram of *centred* states, where float32 keeps its digits;
cosines are not, but the pair terms only compare row softmaxes of them, so they use centred
unit vectors and drop what is constant along a row (:func:`cosine_logits`). The values equal
the per-term functions of ``lmcompress.losses.ckd.terms``.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from lmcompress.losses.ckd.relations import (
    check_inputs,
    elementwise,
    full_precision,
    layer_angles,
    pair_term,
    reduce,
    window_index,
)
from lmcompress.losses.ckd.terms import CKD_LOSSES
from lmcompress.losses.ckd.window import WindowTripleL2, window_angles, window_members


def centred_gram(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Gram matrix over the second-to-last axis of ``h [..., m, d]``, centred first.

    The mean is taken over the ``valid [..., m, 1]`` members: angles do not change, float32
    cancellation in ``G_ii - G_ia - G_ib + G_ab`` does.
    """
    w = valid.to(h.dtype)
    c = h - (h * w).sum(-2, keepdim=True) / w.sum(-2, keepdim=True).clamp_min(1.0)
    return c @ c.transpose(-1, -2)


def cosine_logits(h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Pairwise cosines over the second-to-last axis, up to a constant per row.

    A row softmax only sees differences within a row. With unit vectors ``u = h / |h|``, their
    mean ``μ`` over the valid members and ``c = u - μ``: ``cos_ij = c_i·c_j + c_j·μ +
    (c_i·μ + |μ|²)``, and the bracket is constant in j. Dropping it keeps every difference
    while the float32 values stay small: when all cosines are close to 1 (a large shared offset,
    as in BERT's states) the plain cosine matrix loses those differences to rounding.
    """
    unit = F.normalize(h, dim=-1, eps=1e-12)
    w = valid.to(h.dtype)
    mean = (unit * w).sum(-2, keepdim=True) / w.sum(-2, keepdim=True).clamp_min(1.0)
    c = unit - mean
    return c @ c.transpose(-1, -2) + (c @ mean.transpose(-1, -2)).transpose(-1, -2)


@full_precision
def ckd_terms(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
              names: list[str] | tuple[str, ...], *, window: int | None = 21,
              mask_window: bool = True, distance: str = "cos", dist_norm: bool = False,
              pair_loss: str = "kldiv", triple_loss: str = "l2", normalize: str = "global",
              chunk_size: int = 8) -> dict[str, torch.Tensor]:
    """The requested CKD terms (``wr_pair``, ``wr_triple``, ``ltr_pair``, ``ltr_triple``).

    With the official relation options (cosine + KL pairs, squared-error angles, global
    normaliser, a window; ``mask_window`` either way) one token Gram per layer and one layer
    Gram per token serve all four terms. Any other option calls the individual functions.
    """
    unknown = sorted(set(names) - set(CKD_LOSSES))
    if unknown:
        raise ValueError(f"unknown CKD term(s) {unknown}; known: {list(CKD_LOSSES)}")
    opts = {"window": window, "mask_window": mask_window, "distance": distance,
            "dist_norm": dist_norm, "pair_loss": pair_loss, "triple_loss": triple_loss,
            "normalize": normalize, "chunk_size": chunk_size}
    shared = (distance, dist_norm, pair_loss, triple_loss, normalize) == (
        "cos", False, "kldiv", "l2", "global") and window is not None
    if not shared:
        return {name: CKD_LOSSES[name](student, teacher, attention_mask, **{
            k: v for k, v in opts.items() if k in inspect.signature(CKD_LOSSES[name]).parameters})
            for name in names}
    check_inputs(student, teacher, attention_mask)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number or None, got {window}")
    out: dict[str, torch.Tensor] = {}
    if {"wr_pair", "wr_triple"} & set(names):
        out.update(_word_relation(student, teacher, attention_mask, names, window, mask_window))
    if {"ltr_pair", "ltr_triple"} & set(names):
        out.update(_layer_relation(student, teacher, attention_mask, names))
    return {name: out[name] for name in names}


def _word_relation(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                   names: list[str] | tuple[str, ...], window: int, mask_window: bool
                   ) -> dict[str, torch.Tensor]:
    """WR pair (docs/ckd.md §3) and windowed WR triple (§4) from token Grams [B, K, n, n]."""
    _, k, n, _ = student.shape
    mask = attention_mask.bool()
    tokens = mask[:, None, :, None].expand(-1, k, -1, -1)  # [B, K, n, 1]
    out = {}
    if "wr_pair" in names:
        m = mask[:, None, :]
        eye = torch.eye(n, dtype=torch.bool, device=m.device)
        valid = (m.unsqueeze(-1) & m.unsqueeze(-2) & ~eye).expand(-1, k, -1, -1)
        lengths = attention_mask.sum(-1).to(student.dtype)
        with torch.no_grad():
            cos_t = cosine_logits(teacher, tokens).to(student.dtype)
        out["wr_pair"] = pair_term(cosine_logits(student, tokens), cos_t, valid, "kldiv",
                                   "global", k * (lengths**2).sum())
    if "wr_triple" in names:
        with torch.no_grad():
            gc_t = centred_gram(teacher, tokens).to(student.dtype)
        gc_s = centred_gram(student, tokens)
        idx, inside = window_index(n, window, student.device)
        keep = mask[:, None, :].expand(-1, k, -1).flatten(0, 1)  # [B·K, n] centres
        if mask_window:  # members: real tokens inside the sentence, not the vertex
            keep = window_members(keep, idx, inside)  # [B·K, n, W]
            denom = keep.sum(-1).to(student.dtype).square().sum()
        else:
            denom = (k * attention_mask.sum() * window**2).to(student.dtype)
        with torch.no_grad():
            a_t = window_angles(gc_t.flatten(0, 1), idx, keep)
        out["wr_triple"] = WindowTripleL2.apply(gc_s.flatten(0, 1), a_t, idx, keep,
                                                denom.clamp_min(1))
        del a_t  # saved inside the autograd node as needed; drop this frame's reference
    return out


def _layer_relation(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                    names: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
    """LTR pair (docs/ckd.md §5) and triple (§6) from layer Grams [B, n, K, K]."""
    k = student.shape[1]
    mask = attention_mask.bool()
    all_layers = torch.ones(1, 1, k, 1, dtype=torch.bool, device=student.device)
    s_v, t_v = student.transpose(1, 2), teacher.transpose(1, 2)  # [B, n, K, d] views
    tokens = attention_mask.sum().to(student.dtype)
    out = {}
    if "ltr_pair" in names:
        eye = torch.eye(k, dtype=torch.bool, device=student.device)
        valid = (mask[:, :, None, None] & ~eye).expand(-1, -1, k, k)
        with torch.no_grad():
            cos_t = cosine_logits(t_v, all_layers).to(student.dtype)
        out["ltr_pair"] = pair_term(cosine_logits(s_v, all_layers), cos_t, valid, "kldiv",
                                    "global", k * k * tokens)
    if "ltr_triple" in names:
        with torch.no_grad():
            a_t = layer_angles(centred_gram(t_v, all_layers).to(student.dtype))
        values = elementwise(layer_angles(centred_gram(s_v, all_layers)), a_t, "l2")
        keep = mask[:, :, None, None, None].expand_as(values)
        out["ltr_triple"] = reduce(values, keep, "global", k**3 * tokens, row_dims=3)
    return out
