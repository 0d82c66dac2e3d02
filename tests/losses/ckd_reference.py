"""Plain per-term CKD implementations, the float64 references of ``ckd_terms`` in the tests.

Each term is computed on its own from the hidden states (cosines from normalised states, angles
from gathered Gram entries, all triples in plain vertex chunks), with every option of
docs/ckd.md §7. Training never calls these: ``lmcompress.losses.ckd.ckd_terms`` is the one code
path; the tests compare it with these functions and with explicit loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmcompress.losses.ckd.relations import (
    EPS,
    elementwise,
    layer_angles,
    pair_term,
    reduce,
    window_index,
)


def gram(h: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Gram matrix over axis ``dim`` (tokens: -2) after centring on the valid members' mean."""
    w = valid.to(h.dtype)
    mean = (h * w).sum(dim, keepdim=True) / w.sum(dim, keepdim=True).clamp_min(1.0)
    c = h - mean
    return c @ c.transpose(-1, -2)


def relation_matrix(h: torch.Tensor, valid: torch.Tensor, distance: str, dist_norm: bool,
                    pair_valid: torch.Tensor) -> torch.Tensor:
    """Pairwise relation over the second-to-last axis: cosine or (normalised) distances."""
    if distance == "cos":
        hn = F.normalize(h, dim=-1, eps=EPS)
        return hn @ hn.transpose(-1, -2)
    d = torch.cdist(h, h)  # Euclidean; a zero diagonal
    if distance == "sqeuclidean":
        d = d.square()
    if dist_norm:
        pos = pair_valid & (d > 0)
        mean = (d * pos).sum((-1, -2), keepdim=True) / pos.sum((-1, -2), keepdim=True).clamp_min(1)
        d = d / torch.where(mean > 0, mean, torch.ones_like(mean))
    return d


def window_angles_gathered(g: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Angles ``A[..., i, w, w']`` with vertex i from a Gram matrix g [..., n, n], idx [n, W]."""
    n, width = idx.shape
    g_ii = g.diagonal(dim1=-2, dim2=-1)  # [..., n]
    flat = idx.reshape(-1)
    g_ia = torch.gather(g, -1, idx.expand(*g.shape[:-2], n, width))  # [..., n, W]
    g_aa = g_ii[..., flat].reshape(*g.shape[:-2], n, width)
    rows = g[..., flat, :]  # [..., n·W, n]
    g_ab = torch.gather(rows.reshape(*g.shape[:-2], n, width, n), -1,
                        idx[:, None, :].expand(*g.shape[:-2], n, width, width))
    dot = (g_ii[..., None, None] - g_ia[..., :, None]) - g_ia[..., None, :] + g_ab
    sq = (g_ii[..., None] - 2 * g_ia + g_aa).clamp_min(EPS**2)
    self_ = (idx == torch.arange(n, device=idx.device)[:, None])  # [n, W]: the vertex itself
    norm = torch.where(self_, 1.0, sq.sqrt())
    angle = dot / (norm[..., :, None] * norm[..., None, :])
    degenerate = self_[:, :, None] | self_[:, None, :]
    return angle.masked_fill(degenerate, 0.0)


# --- Word Relation ------------------------------------------------------------------------------
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
    ``chunk_size``.
    """
    m = attention_mask.bool()[:, None, :].expand(-1, student.shape[1], -1)  # [B, K, n]
    with torch.no_grad():
        g_t = gram(teacher, m.unsqueeze(-1), dim=-2)
    g_s = gram(student, m.unsqueeze(-1), dim=-2)
    if window is None:
        return _all_triples(g_s, g_t.to(g_s.dtype), m, triple_loss, normalize, chunk_size)
    n = student.shape[2]
    idx, inside = window_index(n, window, student.device)
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
        sq = (g_ii[..., start:stop, None] - 2 * g_iv + g_ii[..., None, :]).clamp_min(EPS**2)
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
        total = total + _triple_chunk(g_s, g_t, m, start, stop, kind, row)
    lengths = m[:, 0].sum(-1).to(g_s.dtype)
    if row:
        return total / m.sum().clamp_min(1)
    return total / (m.shape[1] * (lengths**3).sum()).clamp_min(1)


# --- Layer Transforming Relation ----------------------------------------------------------------
def ltr_pair_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, *,
                  distance: str = "cos", dist_norm: bool = False, pair_loss: str = "kldiv",
                  normalize: str = "global") -> torch.Tensor:
    """LTR pair-wise term: layer-layer relations of each token (docs/ckd.md §5).

    Official: ``Σ_{b, i valid} Σ_l KL(P_l || Q_l) / (K² · Σ_b n_b)``, with ``P_l`` the teacher's
    softmax of ``cos(v_l, v_m)`` over the other layers m of the same token.
    """
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


def ltr_triple_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                    *, triple_loss: str = "l2", normalize: str = "global") -> torch.Tensor:
    """LTR triple-wise (angle) term over all K³ layer triples of each token (docs/ckd.md §6).

    Official: ``Σ_{b, i valid} Σ_{l,m,o} (A^S - A^T)² / (K³ · Σ_b n_b)``, degenerate triples
    (m = l or o = l) included as zeros.
    """
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
