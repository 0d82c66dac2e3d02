"""All requested CKD terms from shared Gram matrices per model: the one code path of every term.

docs/ckd.md §10: every angle needs only ``G_ii - G_ia - G_ib + G_ab`` and every cosine
``G_ij / sqrt(G_ii G_jj)``, so one token Gram per layer serves both WR terms and one layer Gram
per token both LTR terms, whatever the options. Angles and distances are translation invariant
and use the Gram of *centred* states, where float32 keeps its digits; cosines use the plain
Gram, rebuilt from the centred one without a second matmul (:func:`grams`). The tests check
every option against float64 references (``tests/losses/``).
"""

from __future__ import annotations

import torch

from lmcompress.losses.ckd.relations import (
    check_choices,
    check_inputs,
    check_window,
    elementwise,
    full_precision,
    layer_angles,
    pair_term,
    reduce,
    relation,
)
from lmcompress.losses.ckd.window import wr_triple

CKD_TERMS = ("wr_pair", "wr_triple", "ltr_pair", "ltr_triple")


def grams(h: torch.Tensor, valid: torch.Tensor, centre: bool = True
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred and plain Gram matrices over the second-to-last axis of ``h [..., m, d]``.

    The mean ``μ`` runs over the ``valid [..., m, 1]`` members and ``c = h - μ``. Angles use the
    centred Gram ``C Cᵀ``: they do not change, float32 cancellation in ``G_ii - G_ia - G_ib +
    G_ab`` does. Cosines need the plain Gram, which costs no second matmul:
    ``H Hᵀ = C Cᵀ + C μᵀ + μ Cᵀ + |μ|²``. ``centre=False``: the plain Gram serves both.
    """
    if not centre:
        plain = h @ h.transpose(-1, -2)
        return plain, plain
    w = valid.to(h.dtype)  # [..., m, 1]
    # the weighted mean as a batched mat-vec: no [..., m, d] temporary
    mean = (w.transpose(-1, -2) @ h) / w.sum(-2, keepdim=True).clamp_min(1.0)  # [..., 1, d]
    c = h - mean
    centred = c @ c.transpose(-1, -2)
    u = c @ mean.transpose(-1, -2)  # [..., m, 1]
    return centred, centred + u + u.transpose(-1, -2) + mean.square().sum(-1, keepdim=True)


@full_precision
def ckd_terms(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
              names: list[str] | tuple[str, ...], *, window: int | None = 21,
              mask_window: bool = True, distance: str = "cos", dist_norm: bool = False,
              pair_loss: str = "kldiv", triple_loss: str = "l2", normalize: str = "global",
              chunk_size: int = 8, centre: bool = True) -> dict[str, torch.Tensor]:
    """The requested CKD terms (``wr_pair``, ``wr_triple``, ``ltr_pair``, ``ltr_triple``).

    ``student [B, K, n, d_s]`` and ``teacher [B, K, n, d_t]`` are the stacked matched hidden
    states, ``attention_mask [B, n]``; options as in docs/ckd.md §7. One token Gram per layer
    and one layer Gram per token (per model) serve all four terms. ``centre=False`` skips the
    centring (§10): two passes over the states fewer, and float32 angles that lose digits when
    the states share a large offset.
    """
    unknown = sorted(set(names) - set(CKD_TERMS))
    if unknown:
        raise ValueError(f"unknown CKD term(s) {unknown}; known: {list(CKD_TERMS)}")
    check_inputs(student, teacher, attention_mask)
    check_choices(distance=distance, pair_loss=pair_loss, triple_loss=triple_loss,
                  normalize=normalize)
    check_window(window)
    pair = {"distance": distance, "dist_norm": dist_norm, "kind": pair_loss,
            "normalize": normalize}
    out: dict[str, torch.Tensor] = {}
    if {"wr_pair", "wr_triple"} & set(names):
        triple = {"window": window, "mask_window": mask_window, "kind": triple_loss,
                  "normalize": normalize, "chunk_size": chunk_size}
        out.update(_word_relation(student, teacher, attention_mask, names, centre, pair, triple))
    if {"ltr_pair", "ltr_triple"} & set(names):
        out.update(_layer_relation(student, teacher, attention_mask, names, centre, pair,
                                   triple_loss))
    return {name: out[name] for name in names}


def _pair(s: tuple[torch.Tensor, torch.Tensor], t: tuple[torch.Tensor, torch.Tensor],
          valid: torch.Tensor, denom: torch.Tensor, distance: str, dist_norm: bool, kind: str,
          normalize: str) -> torch.Tensor:
    """A pair term from the (centred, plain) Grams of student ``s`` and teacher ``t``."""
    rel_s, rel_t = (relation(*g, distance, dist_norm, valid) for g in (s, t))
    return pair_term(rel_s, rel_t, valid, kind, normalize, denom)


def _word_relation(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                   names: list[str] | tuple[str, ...], centre: bool, pair: dict,
                   triple: dict) -> dict[str, torch.Tensor]:
    """WR pair (docs/ckd.md §3) and WR triple (§4) from token Grams [B, K, n, n]."""
    _, k, n, _ = student.shape
    mask = attention_mask.bool()
    tokens = mask[:, None, :, None].expand(-1, k, -1, -1)  # [B, K, n, 1]
    with torch.no_grad():
        gc_t, g_t = (g.to(student.dtype) for g in grams(teacher, tokens, centre))
    gc_s, g_s = grams(student, tokens, centre)
    out = {}
    if "wr_pair" in names:
        m = mask[:, None, :]
        eye = torch.eye(n, dtype=torch.bool, device=m.device)
        valid = (m.unsqueeze(-1) & m.unsqueeze(-2) & ~eye).expand(-1, k, -1, -1)
        lengths = attention_mask.sum(-1).to(student.dtype)
        out["wr_pair"] = _pair((gc_s, g_s), (gc_t, g_t), valid, k * (lengths**2).sum(), **pair)
    del g_s, g_t
    if "wr_triple" in names:
        valid = mask[:, None, :].expand(-1, k, -1).flatten(0, 1)  # [B·K, n]
        out["wr_triple"] = wr_triple(gc_s.flatten(0, 1), gc_t.flatten(0, 1), valid, **triple)
    return out


def _layer_relation(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                    names: list[str] | tuple[str, ...], centre: bool, pair: dict,
                    triple_loss: str) -> dict[str, torch.Tensor]:
    """LTR pair (docs/ckd.md §5) and triple (§6) from layer Grams [B, n, K, K]."""
    k = student.shape[1]
    mask = attention_mask.bool()
    with torch.no_grad():
        lc_t, l_t = (g.to(student.dtype) for g in layer_grams(teacher, centre))
    lc_s, l_s = layer_grams(student, centre)
    tokens = attention_mask.sum().to(student.dtype)
    out = {}
    if "ltr_pair" in names:
        eye = torch.eye(k, dtype=torch.bool, device=student.device)
        valid = (mask[:, :, None, None] & ~eye).expand(-1, -1, k, k)
        out["ltr_pair"] = _pair((lc_s, l_s), (lc_t, l_t), valid, k * k * tokens, **pair)
    if "ltr_triple" in names:
        with torch.no_grad():
            a_t = layer_angles(lc_t)
        values = elementwise(layer_angles(lc_s), a_t, triple_loss)
        keep = mask[:, :, None, None, None].expand_as(values)
        out["ltr_triple"] = reduce(values, keep, pair["normalize"], k**3 * tokens, row_dims=3)
    return out


def layer_grams(h: torch.Tensor, centre: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred and plain Gram matrices over the K layers of each token of ``h [B, K, n, d]``.

    :func:`grams` for the layer axis, arranged for speed: the mean over layers and the centring
    run in ``h``'s own contiguous layout, and the ``[B, n, K, K]`` products multiply strided
    views (autograd keeps views, not a transposed copy of the states).
    """
    if not centre:
        plain = torch.matmul(h.transpose(1, 2), h.permute(0, 2, 3, 1))
        return plain, plain
    mean = h.mean(1, keepdim=True)  # [B, 1, n, d]
    c = h - mean
    centred = torch.matmul(c.transpose(1, 2), c.permute(0, 2, 3, 1))  # [B, n, K, K]
    u = (c * mean).sum(-1).transpose(1, 2).unsqueeze(-1)  # [B, n, K, 1]
    norm = mean.square().sum(-1).transpose(1, 2).unsqueeze(-1)  # [B, n, 1, 1]
    return centred, centred + u + u.transpose(-1, -2) + norm
