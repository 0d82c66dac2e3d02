"""All requested CKD terms from one token Gram and one layer Gram per model (what training calls).

See docs/ckd.md ("Shared Gram matrices"); the values equal the per-term functions of
``lmcompress.losses.ckd.terms``.
"""

from __future__ import annotations

import inspect

import torch

from lmcompress.losses.ckd.relations import (
    check_inputs,
    cosines,
    elementwise,
    full_precision,
    layer_angles,
    pair_term,
    reduce,
    window_index,
)
from lmcompress.losses.ckd.terms import CKD_LOSSES
from lmcompress.losses.ckd.window import WindowTripleL2, window_angles


@full_precision
def ckd_terms(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
              names: list[str] | tuple[str, ...], *, window: int | None = 21,
              mask_window: bool = False, distance: str = "cos", dist_norm: bool = False,
              pair_loss: str = "kldiv", triple_loss: str = "l2", normalize: str = "global",
              chunk_size: int = 8) -> dict[str, torch.Tensor]:
    """The requested CKD terms (``wr_pair``, ``wr_triple``, ``ltr_pair``, ``ltr_triple``).

    With the official options (the defaults) one token Gram ``H H^T`` per layer and one layer
    Gram per token serve all four terms: cosines are ``G_ij / sqrt(G_ii G_jj)`` and angles come
    from the same ``G``, instead of each term normalising and multiplying the states again. The
    values equal the individual functions' (up to float rounding: the angle terms here use the
    uncentred Gram). Any other option calls the individual functions.
    """
    unknown = sorted(set(names) - set(CKD_LOSSES))
    if unknown:
        raise ValueError(f"unknown CKD term(s) {unknown}; known: {list(CKD_LOSSES)}")
    opts = {"window": window, "mask_window": mask_window, "distance": distance,
            "dist_norm": dist_norm, "pair_loss": pair_loss, "triple_loss": triple_loss,
            "normalize": normalize, "chunk_size": chunk_size}
    official = (distance, dist_norm, pair_loss, triple_loss, normalize, mask_window) == (
        "cos", False, "kldiv", "l2", "global", False) and window is not None
    if not official:
        out = {}
        for name in names:
            fn = CKD_LOSSES[name]
            accepted = {k: v for k, v in opts.items()
                        if k in inspect.signature(fn).parameters}
            out[name] = fn(student, teacher, attention_mask, **accepted)
        return out
    check_inputs(student, teacher, attention_mask)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number or None, got {window}")
    b, k, n, _ = student.shape
    out: dict[str, torch.Tensor] = {}
    mask = attention_mask.bool()
    if {"wr_pair", "wr_triple"} & set(names):
        with torch.no_grad():
            g_t = (teacher @ teacher.transpose(-1, -2)).to(student.dtype)
        g_s = student @ student.transpose(-1, -2)  # [B, K, n, n]
        if "wr_pair" in names:
            m = mask[:, None, :]
            valid = (m.unsqueeze(-1) & m.unsqueeze(-2) & ~torch.eye(n, dtype=torch.bool,
                                                                     device=m.device))
            lengths = attention_mask.sum(-1).to(student.dtype)
            out["wr_pair"] = pair_term(cosines(g_s), cosines(g_t), valid.expand(-1, k, -1, -1),
                                        "kldiv", "global", k * (lengths**2).sum())
        if "wr_triple" in names:
            idx, _ = window_index(n, window, student.device)
            centre = mask[:, None, :].expand(-1, k, -1).flatten(0, 1)
            with torch.no_grad():
                a_t = window_angles(g_t.flatten(0, 1), idx, centre)
            denom = (k * attention_mask.sum() * window**2).to(student.dtype).clamp_min(1)
            out["wr_triple"] = WindowTripleL2.apply(g_s.flatten(0, 1), a_t, idx, centre, denom)
            del a_t  # saved inside the autograd node as needed; drop this frame's reference
        del g_t, g_s
    if {"ltr_pair", "ltr_triple"} & set(names):
        with torch.no_grad():
            v_t = teacher.transpose(1, 2).contiguous()
            l_t = (v_t @ v_t.transpose(-1, -2)).to(student.dtype)  # [B, n, K, K]
            del v_t
        # strided operands: autograd keeps views of ``student``, not a second copy of the states
        l_s = torch.matmul(student.transpose(1, 2), student.permute(0, 2, 3, 1))  # [B, n, K, K]
        tokens = attention_mask.sum().to(student.dtype)
        if "ltr_pair" in names:
            eye = torch.eye(k, dtype=torch.bool, device=student.device)
            valid = (mask[:, :, None, None] & ~eye).expand(-1, -1, k, k)
            out["ltr_pair"] = pair_term(cosines(l_s), cosines(l_t), valid, "kldiv", "global",
                                         k * k * tokens)
        if "ltr_triple" in names:
            with torch.no_grad():
                a_t = layer_angles(l_t)
            values = elementwise(layer_angles(l_s), a_t, "l2")
            keep = mask[:, :, None, None, None].expand_as(values)
            out["ltr_triple"] = reduce(values, keep, "global", k**3 * tokens, row_dims=3)
    return {name: out[name] for name in names}
