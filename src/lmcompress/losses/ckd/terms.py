"""CKD: Word Relation (WR) and Layer Transforming Relation (LTR) losses from Gram matrices.

Park, Kim & Yang, "Distilling Linguistic Context for Language Model Compression", EMNLP 2021,
arXiv:2109.08359. Default semantics are the official code's (GeondoPark/CKD @ 28b124b), written
out in docs/ckd.md §3-§6: cosine relations, a row softmax over the *other valid* tokens (or
layers) compared with KL, squared error on angles and the official sum/count normalisers; one
exception: the WR-triple window is masked by default (``mask_window=False`` is the official one,
clamped at the *padded* length). Every relation is a scalar computed inside one
model's own space, so the student's hidden size may differ from the teacher's (no projection).

Inputs are stacked matched-layer hidden states ``student [B, K, n, d_s]`` and
``teacher [B, K, n, d_t]`` (index 0 along K = embedding output; docs/ckd.md §2) and
``attention_mask [B, n]``. Each function returns a scalar.

Speed: angles need only inner products of difference vectors, and
``<h_i - h_a, h_i - h_b> = G_ii - G_ia - G_ib + G_ab`` with ``G = H H^T`` per (sentence, layer).
Working on Gram matrices removes the hidden-size factor from everything after one matmul; the
states are centred first (differences are translation invariant) to limit float32 cancellation.
All-triples WR runs in vertex chunks under activation checkpointing, so memory stays bounded.

YAML (``conf/loss/ckd.yaml``)::

    weights: {task: 1.0, wr_pair: 1.0, wr_triple: 10.0, ltr_pair: 1.0, ltr_triple: 10.0}
    ckd: {window: 21, mask_window: true, distance: cos, dist_norm: false,
          pair_loss: kldiv, triple_loss: l2, normalize: global}
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from lmcompress.losses.ckd.relations import (
    check_inputs,
    elementwise,
    full_precision,
    gram,
    layer_angles,
    pair_term,
    reduce,
    relation_matrix,
    window_angles_gathered,
    window_index,
)
from lmcompress.losses.ckd.window import WindowTripleL2, window_angles

_EPS = 1e-12


# --- Word Relation ------------------------------------------------------------------------------
@full_precision
def wr_pair_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, *,
                 distance: str = "cos", dist_norm: bool = False, pair_loss: str = "kldiv",
                 normalize: str = "global") -> torch.Tensor:
    """WR pair-wise term: token-token relations in every matched layer (docs/ckd.md §3).

    Official: ``Σ_{b,k,i valid} KL(P_i || Q_i) / (K · Σ_b n_b²)`` with ``P_i`` the teacher's
    softmax of ``cos(h_i, h_j)`` over the other valid tokens j. ``distance="l2"`` (Euclidean) or
    ``"sqeuclidean"`` (what the official "l2" option really returns) with ``dist_norm=True``
    (divide by the mean distance) and ``pair_loss="smoothl1"`` is the RKD-style variant.
    ``normalize="row"`` averages each row's loss over its valid entries, then over rows.
    """
    check_inputs(student, teacher, attention_mask, distance=distance, pair_loss=pair_loss,
           normalize=normalize)
    m = attention_mask.bool()[:, None, :]  # [B, 1, n]
    n = m.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=m.device)
    valid = (m.unsqueeze(-1) & m.unsqueeze(-2) & ~eye).expand(-1, student.shape[1], -1, -1)
    tok = m.expand(-1, student.shape[1], -1)
    with torch.no_grad():
        rel_t = relation_matrix(teacher, tok.unsqueeze(-1), distance, dist_norm, valid)
    rel_s = relation_matrix(student, tok.unsqueeze(-1), distance, dist_norm, valid)
    lengths = attention_mask.sum(-1).to(student.dtype)
    denom = student.shape[1] * (lengths**2).sum()
    return pair_term(rel_s, rel_t.to(rel_s.dtype), valid, pair_loss, normalize, denom)


@full_precision
def wr_triple_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, *,
                   window: int | None = 21, mask_window: bool = True,
                   triple_loss: str = "l2", normalize: str = "global",
                   chunk_size: int = 8) -> torch.Tensor:
    """WR triple-wise (angle) term, vertex = centre word (docs/ckd.md §4).

    ``mask_window=True`` (default) drops window members that are padding, out of range or the
    vertex itself and divides by the true number of member pairs: a sentence's term no longer
    depends on the padded length of its batch. ``mask_window=False`` is the official window:
    ``Σ_{b,k,i valid} Σ_{w,w'} (A^S - A^T)² / (K · Σ_b n_b · W²)`` with positions clamped to the
    padded length, padding and duplicates inside the window not masked.
    ``window=None``: all triples of valid tokens, ``/ (K · Σ_b n_b³)``, in vertex chunks of
    ``chunk_size`` under activation checkpointing (memory O(K·n²) plus one chunk).
    """
    check_inputs(student, teacher, attention_mask, triple_loss=triple_loss, normalize=normalize)
    if window is not None and (window < 1 or window % 2 == 0):
        raise ValueError(f"window must be a positive odd number or None, got {window}")
    m = attention_mask.bool()[:, None, :].expand(-1, student.shape[1], -1)  # [B, K, n]
    with torch.no_grad():
        g_t = gram(teacher, m.unsqueeze(-1), dim=-2)
    g_s = gram(student, m.unsqueeze(-1), dim=-2)
    if window is None:
        return _all_triples(g_s, g_t.to(g_s.dtype), m, triple_loss, normalize, chunk_size)
    n = student.shape[2]
    idx, inside = window_index(n, window, student.device)
    if triple_loss == "l2" and normalize == "global" and not mask_window:
        # the official setting: fused value + hand-written backward (see _window_triple.py)
        flat_s, centre = g_s.flatten(0, 1), m.flatten(0, 1)
        with torch.no_grad():
            a_t = window_angles(g_t.flatten(0, 1), idx, centre).to(g_s.dtype)
        denom = (student.shape[1] * attention_mask.sum() * window**2).to(g_s.dtype)
        return WindowTripleL2.apply(flat_s, a_t, idx, centre, denom.clamp_min(1))
    with torch.no_grad():
        a_t = window_angles_gathered(g_t, idx).to(g_s.dtype)
    a_s = window_angles_gathered(g_s, idx)
    values = elementwise(a_s, a_t, triple_loss)
    centre = m[..., :, None, None]
    if mask_window:
        member = m[..., idx] & inside & (idx != torch.arange(n, device=idx.device)[:, None])
        keep = centre & member[..., :, None] & member[..., None, :]
        denom = keep.sum().to(values.dtype)
    else:
        keep = centre.expand_as(values)
        denom = student.shape[1] * attention_mask.sum().to(values.dtype) * window**2
    return reduce(values, keep, normalize, denom, row_dims=2)


def _triple_chunk(g_s: torch.Tensor, g_t: torch.Tensor, valid: torch.Tensor, start: int,
                  stop: int, kind: str, row: bool) -> torch.Tensor:
    """Summed loss (or sum of per-vertex means) over vertices start..stop-1, all (j, k)."""
    n = g_s.shape[-1]
    out = []
    for g in (g_s, g_t):
        g_ii = g.diagonal(dim1=-2, dim2=-1)
        g_iv = g[..., start:stop, :]  # [B, K, c, n]
        dot = (g_ii[..., start:stop, None, None] - g_iv[..., :, :, None]) - g_iv[..., :, None, :]
        dot = dot + g[..., None, :, :]
        sq = (g_ii[..., start:stop, None] - 2 * g_iv + g_ii[..., None, :]).clamp_min(_EPS**2)
        self_ = torch.arange(start, stop, device=g.device)[:, None] == torch.arange(n,
                                                                                    device=g.device)
        norm = torch.where(self_, 1.0, sq.sqrt())
        angle = dot / (norm[..., :, None] * norm[..., None, :])
        out.append(angle.masked_fill(self_[:, :, None] | self_[:, None, :], 0.0))
    keep = valid[..., start:stop, None, None] & valid[..., None, None, :] & valid[..., None, :,
                                                                                   None]
    values = torch.where(keep, elementwise(out[0], out[1], kind), 0.0)
    if not row:
        return values.sum()
    count = keep.sum((-1, -2)).clamp_min(1)
    return (values.sum((-1, -2)) / count).sum()


def _all_triples(g_s: torch.Tensor, g_t: torch.Tensor, m: torch.Tensor, kind: str,
                 normalize: str, chunk: int) -> torch.Tensor:
    n = g_s.shape[-1]
    row = normalize == "row"
    total = g_s.new_zeros(())
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        if not m[..., start:stop].any():
            continue
        total = total + checkpoint(_triple_chunk, g_s, g_t, m, start, stop, kind, row,
                                   use_reentrant=False)
    lengths = m[:, 0].sum(-1).to(g_s.dtype)
    if row:
        return total / m.sum().clamp_min(1)
    return total / (m.shape[1] * (lengths**3).sum()).clamp_min(1)


# --- Layer Transforming Relation ----------------------------------------------------------------
@full_precision
def ltr_pair_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, *,
                  distance: str = "cos", dist_norm: bool = False, pair_loss: str = "kldiv",
                  normalize: str = "global") -> torch.Tensor:
    """LTR pair-wise term: layer-layer relations of each token (docs/ckd.md §5).

    Official: ``Σ_{b, i valid} Σ_l KL(P_l || Q_l) / (K² · Σ_b n_b)``, with ``P_l`` the teacher's
    softmax of ``cos(v_l, v_m)`` over the other layers m of the same token.
    """
    check_inputs(student, teacher, attention_mask, distance=distance, pair_loss=pair_loss,
           normalize=normalize)
    k = student.shape[1]
    # [B, n, K, d], made contiguous once: strided normalise / matmul cost more than the copy
    s, t = student.transpose(1, 2).contiguous(), teacher.transpose(1, 2).contiguous()
    tok = attention_mask.bool()[:, :, None, None]
    eye = torch.eye(k, dtype=torch.bool, device=student.device)
    valid = (tok & ~eye).expand(-1, -1, k, k)
    all_layers = torch.ones_like(tok).expand(-1, -1, k, 1)
    with torch.no_grad():
        rel_t = relation_matrix(t, all_layers, distance, dist_norm, valid)
    rel_s = relation_matrix(s, all_layers, distance, dist_norm, valid)
    denom = k * k * attention_mask.sum().to(student.dtype)
    return pair_term(rel_s, rel_t.to(rel_s.dtype), valid, pair_loss, normalize, denom)


@full_precision
def ltr_triple_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                    *, triple_loss: str = "l2", normalize: str = "global") -> torch.Tensor:
    """LTR triple-wise (angle) term over all K³ layer triples of each token (docs/ckd.md §6).

    Official: ``Σ_{b, i valid} Σ_{l,m,o} (A^S - A^T)² / (K³ · Σ_b n_b)``, degenerate triples
    (m = l or o = l) included as zeros.
    """
    check_inputs(student, teacher, attention_mask, triple_loss=triple_loss, normalize=normalize)
    k = student.shape[1]
    all_layers = torch.ones(1, 1, k, 1, dtype=torch.bool, device=student.device)
    with torch.no_grad():
        a_t = layer_angles(gram(teacher.transpose(1, 2).contiguous(), all_layers, dim=-2))
    a_s = layer_angles(gram(student.transpose(1, 2).contiguous(), all_layers, dim=-2))
    values = elementwise(a_s, a_t.to(a_s.dtype), triple_loss)  # [B, n, K, K, K]
    keep = attention_mask.bool()[:, :, None, None, None].expand_as(values)
    denom = k**3 * attention_mask.sum().to(values.dtype)
    return reduce(values, keep, normalize, denom, row_dims=3)


# --- all requested terms at once ----------------------------------------------------------------
CKD_LOSSES = {"wr_pair": wr_pair_loss, "wr_triple": wr_triple_loss, "ltr_pair": ltr_pair_loss,
              "ltr_triple": ltr_triple_loss}
