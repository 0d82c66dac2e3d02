"""CKD: Word Relation (WR) and Layer Transforming Relation (LTR) losses from Gram matrices.

Park, Kim & Yang, "Distilling Linguistic Context for Language Model Compression", EMNLP 2021,
arXiv:2109.08359. Default semantics are the official code's (GeondoPark/CKD @ 28b124b), as pinned
in ``specs/ckd.md`` §1.3-1.6: cosine relations, a row softmax over the *other valid* tokens (or
layers) compared with KL, squared error on angles, a WR-triple window clamped at the *padded*
length, and the official sum/count normalisers. Every relation is a scalar computed inside one
model's own space, so the student's hidden size may differ from the teacher's (no projection).

Inputs are stacked matched-layer hidden states ``student [B, K, n, d_s]`` and
``teacher [B, K, n, d_t]`` (index 0 along K = embedding output; see :func:`match_layers`) and
``attention_mask [B, n]``. Each function returns a scalar.

Speed: angles need only inner products of difference vectors, and
``<h_i - h_a, h_i - h_b> = G_ii - G_ia - G_ib + G_ab`` with ``G = H H^T`` per (sentence, layer).
Working on Gram matrices removes the hidden-size factor from everything after one matmul; the
states are centred first (differences are translation invariant) to limit float32 cancellation.
All-triples WR runs in vertex chunks under activation checkpointing, so memory stays bounded.

YAML (``conf/loss/ckd.yaml``)::

    weights: {task: 1.0, wr_pair: 1.0, wr_triple: 10.0, ltr_pair: 1.0, ltr_triple: 10.0}
    ckd: {window: 21, mask_window: false, distance: cos, dist_norm: false,
          pair_loss: kldiv, triple_loss: l2, normalize: global}
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from lmcompress.losses._window_triple import WindowTripleL2, window_angles

PAIR_LOSSES = ("kldiv", "l1", "l2", "smoothl1")
TRIPLE_LOSSES = ("l2", "l1", "smoothl1")
DISTANCES = ("cos", "l2", "sqeuclidean")
NORMALIZE = ("global", "row")
_EPS = 1e-12


def match_layers(num_teacher_layers: int, num_student_layers: int) -> tuple[list[int], list[int]]:
    """Hidden-state indices of the official ``emb+skip`` matching (0 = embedding output).

    With ``G = gcd(L_T, L_S)``: teacher ``k·L_T/G`` <-> student ``k·L_S/G`` for ``k = 0..G``.
    12 -> 6 gives teacher [0, 2, 4, 6, 8, 10, 12] and student [0..6]; co-prime depths give K = 2.
    """
    if num_teacher_layers < 1 or num_student_layers < 1:
        raise ValueError(f"layer counts must be >= 1, got {num_teacher_layers}, "
                         f"{num_student_layers}")
    g = math.gcd(num_teacher_layers, num_student_layers)
    return ([k * num_teacher_layers // g for k in range(g + 1)],
            [k * num_student_layers // g for k in range(g + 1)])


# --- shared helpers -----------------------------------------------------------------------------
_Loss = TypeVar("_Loss", bound=Callable[..., object])


def full_precision(fn: _Loss) -> _Loss:
    """Run a relation loss outside autocast, on states upcast to (at least) float32.

    Under ``bf16-mixed`` / ``16-mixed`` autocast the matmuls below would run in half precision,
    and the Gram-based relations (``G_ii - G_ia - G_ib + G_ab``, cosines, a KL between nearly
    equal softmaxes) lose most of their digits to cancellation: measured relative errors of 5 %
    (angle terms) to 200x (pair terms) against float64. Only the loss runs in fp32; the models
    keep their mixed-precision forward.
    """

    @functools.wraps(fn)
    def wrapper(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                *args, **kwargs):
        def up(x: torch.Tensor) -> torch.Tensor:
            return x.float() if x.is_floating_point() and x.element_size() < 4 else x

        with torch.autocast(student.device.type, enabled=False):
            return fn(up(student), up(teacher), attention_mask, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _check(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, **opts) -> None:
    if student.dim() != 4 or teacher.dim() != 4:
        raise ValueError(f"student and teacher must be [B, K, n, d]; got {tuple(student.shape)} "
                         f"and {tuple(teacher.shape)}")
    if student.shape[:3] != teacher.shape[:3]:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} "
                         "differ in batch, layer count K or length n")
    if mask.shape != (student.shape[0], student.shape[2]):
        raise ValueError(f"attention_mask {tuple(mask.shape)} does not match "
                         f"[B, n] = {(student.shape[0], student.shape[2])}")
    choices = {"distance": DISTANCES, "pair_loss": PAIR_LOSSES, "triple_loss": TRIPLE_LOSSES,
               "normalize": NORMALIZE}
    for key, value in opts.items():
        if value not in choices[key]:
            raise ValueError(f"{key}='{value}' is not one of {choices[key]}")


def _gram(h: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Gram matrix over axis ``dim`` (tokens: -2) after centring on the valid members' mean."""
    w = valid.to(h.dtype)
    mean = (h * w).sum(dim, keepdim=True) / w.sum(dim, keepdim=True).clamp_min(1.0)
    c = h - mean
    return c @ c.transpose(-1, -2)


def _elementwise(diff_s: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind in ("l2",):
        return (diff_s - target) ** 2
    if kind == "l1":
        return (diff_s - target).abs()
    return F.smooth_l1_loss(diff_s, target, reduction="none", beta=1.0)


def _reduce(values: torch.Tensor, keep: torch.Tensor, normalize: str, denom: torch.Tensor,
            row_dims: int) -> torch.Tensor:
    """Global sum / ``denom`` (official) or mean over valid rows of per-row means."""
    values = torch.where(keep, values, torch.zeros((), dtype=values.dtype, device=values.device))
    if normalize == "global":
        return values.sum() / denom.clamp_min(1)
    dims = tuple(range(-row_dims, 0))
    count = keep.sum(dims)
    row_mean = values.sum(dims) / count.clamp_min(1)
    rows = count > 0
    return row_mean[rows].sum() / rows.sum().clamp_min(1)


def _relation_matrix(h: torch.Tensor, valid: torch.Tensor, distance: str, dist_norm: bool,
                     pair_valid: torch.Tensor) -> torch.Tensor:
    """Pairwise relation over the second-to-last axis: cosine or (normalised) distances."""
    if distance == "cos":
        hn = F.normalize(h, dim=-1, eps=_EPS)
        return hn @ hn.transpose(-1, -2)
    g = _gram(h, valid, dim=-2)
    sq = g.diagonal(dim1=-2, dim2=-1)
    d2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * g).clamp_min(0)
    eye = torch.eye(d2.shape[-1], dtype=torch.bool, device=d2.device)
    d = d2 if distance == "sqeuclidean" else torch.where(eye, 0, d2.clamp_min(_EPS**2).sqrt())
    if dist_norm:  # RKD: divide by the mean positive distance of each matrix (guard 0 -> 1)
        pos = pair_valid & (d > 0)
        mean = (d * pos).sum((-1, -2), keepdim=True) / pos.sum((-1, -2), keepdim=True).clamp_min(1)
        d = d / torch.where(mean > 0, mean, torch.ones_like(mean))
    return d


def _pair_term(rel_s: torch.Tensor, rel_t: torch.Tensor, valid: torch.Tensor, kind: str,
               normalize: str, denom: torch.Tensor) -> torch.Tensor:
    """Compare two relation matrices on ``valid`` (diagonal excluded) entries."""
    if kind == "kldiv":  # row softmax over the other valid members; finite fill: no NaN ever
        fill = torch.finfo(rel_s.dtype).min / 4
        log_q = rel_s.masked_fill(~valid, fill).log_softmax(-1)
        log_p = rel_t.masked_fill(~valid, fill).log_softmax(-1)
        values = log_p.exp() * (log_p - log_q)
    else:
        values = _elementwise(rel_s, rel_t, kind)
    return _reduce(values, valid, normalize, denom, row_dims=1)


# --- Word Relation ------------------------------------------------------------------------------
@full_precision
def wr_pair_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, *,
                 distance: str = "cos", dist_norm: bool = False, pair_loss: str = "kldiv",
                 normalize: str = "global") -> torch.Tensor:
    """WR pair-wise term: token-token relations in every matched layer (spec §1.3).

    Official: ``Σ_{b,k,i valid} KL(P_i || Q_i) / (K · Σ_b n_b²)`` with ``P_i`` the teacher's
    softmax of ``cos(h_i, h_j)`` over the other valid tokens j. ``distance="l2"`` (Euclidean) or
    ``"sqeuclidean"`` (what the official "l2" option really returns) with ``dist_norm=True``
    (divide by the mean distance) and ``pair_loss="smoothl1"`` is the RKD-style variant.
    ``normalize="row"`` averages each row's loss over its valid entries, then over rows.
    """
    _check(student, teacher, attention_mask, distance=distance, pair_loss=pair_loss,
           normalize=normalize)
    m = attention_mask.bool()[:, None, :]  # [B, 1, n]
    n = m.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=m.device)
    valid = (m.unsqueeze(-1) & m.unsqueeze(-2) & ~eye).expand(-1, student.shape[1], -1, -1)
    tok = m.expand(-1, student.shape[1], -1)
    with torch.no_grad():
        rel_t = _relation_matrix(teacher, tok.unsqueeze(-1), distance, dist_norm, valid)
    rel_s = _relation_matrix(student, tok.unsqueeze(-1), distance, dist_norm, valid)
    lengths = attention_mask.sum(-1).to(student.dtype)
    denom = student.shape[1] * (lengths**2).sum()
    return _pair_term(rel_s, rel_t.to(rel_s.dtype), valid, pair_loss, normalize, denom)


def window_index(n: int, window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``π(i, w) = clamp(i + w, 0, n - 1)`` [n, W] and whether ``i + w`` was inside [0, n)."""
    half = window // 2
    raw = torch.arange(n, device=device)[:, None] + torch.arange(-half, half + 1, device=device)
    return raw.clamp(0, n - 1), (raw >= 0) & (raw < n)


def _window_angles(g: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
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
    sq = (g_ii[..., None] - 2 * g_ia + g_aa).clamp_min(_EPS**2)
    self_ = (idx == torch.arange(n, device=idx.device)[:, None])  # [n, W]: the vertex itself
    norm = torch.where(self_, 1.0, sq.sqrt())
    angle = dot / (norm[..., :, None] * norm[..., None, :])
    degenerate = self_[:, :, None] | self_[:, None, :]
    return angle.masked_fill(degenerate, 0.0)


@full_precision
def wr_triple_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor, *,
                   window: int | None = 21, mask_window: bool = False,
                   triple_loss: str = "l2", normalize: str = "global",
                   chunk_size: int = 8) -> torch.Tensor:
    """WR triple-wise (angle) term, vertex = centre word (spec §1.4).

    Window (official): ``Σ_{b,k,i valid} Σ_{w,w'} (A^S - A^T)² / (K · Σ_b n_b · W²)``, positions
    clamped to the padded length; padding and duplicates inside the window are not masked.
    ``mask_window=True`` drops window members that are padding, out of range or the vertex itself
    and divides by the true count (invariant to extra padding; a change from the official code).
    ``window=None``: all triples of valid tokens, ``/ (K · Σ_b n_b³)``, in vertex chunks of
    ``chunk_size`` under activation checkpointing (memory O(K·n²) plus one chunk).
    """
    _check(student, teacher, attention_mask, triple_loss=triple_loss, normalize=normalize)
    if window is not None and (window < 1 or window % 2 == 0):
        raise ValueError(f"window must be a positive odd number or None, got {window}")
    m = attention_mask.bool()[:, None, :].expand(-1, student.shape[1], -1)  # [B, K, n]
    with torch.no_grad():
        g_t = _gram(teacher, m.unsqueeze(-1), dim=-2)
    g_s = _gram(student, m.unsqueeze(-1), dim=-2)
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
        a_t = _window_angles(g_t, idx).to(g_s.dtype)
    a_s = _window_angles(g_s, idx)
    values = _elementwise(a_s, a_t, triple_loss)
    centre = m[..., :, None, None]
    if mask_window:
        member = m[..., idx] & inside & (idx != torch.arange(n, device=idx.device)[:, None])
        keep = centre & member[..., :, None] & member[..., None, :]
        denom = keep.sum().to(values.dtype)
    else:
        keep = centre.expand_as(values)
        denom = student.shape[1] * attention_mask.sum().to(values.dtype) * window**2
    return _reduce(values, keep, normalize, denom, row_dims=2)


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
    values = torch.where(keep, _elementwise(out[0], out[1], kind), 0.0)
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
    """LTR pair-wise term: layer-layer relations of each token (spec §1.5).

    Official: ``Σ_{b, i valid} Σ_l KL(P_l || Q_l) / (K² · Σ_b n_b)``, with ``P_l`` the teacher's
    softmax of ``cos(v_l, v_m)`` over the other layers m of the same token.
    """
    _check(student, teacher, attention_mask, distance=distance, pair_loss=pair_loss,
           normalize=normalize)
    k = student.shape[1]
    # [B, n, K, d], made contiguous once: strided normalise / matmul cost more than the copy
    s, t = student.transpose(1, 2).contiguous(), teacher.transpose(1, 2).contiguous()
    tok = attention_mask.bool()[:, :, None, None]
    eye = torch.eye(k, dtype=torch.bool, device=student.device)
    valid = (tok & ~eye).expand(-1, -1, k, k)
    all_layers = torch.ones_like(tok).expand(-1, -1, k, 1)
    with torch.no_grad():
        rel_t = _relation_matrix(t, all_layers, distance, dist_norm, valid)
    rel_s = _relation_matrix(s, all_layers, distance, dist_norm, valid)
    denom = k * k * attention_mask.sum().to(student.dtype)
    return _pair_term(rel_s, rel_t.to(rel_s.dtype), valid, pair_loss, normalize, denom)


def _layer_angles(g: torch.Tensor) -> torch.Tensor:
    """``A[..., l, m, o]`` = cos of the angle at vertex layer l, from a layer Gram [..., K, K]."""
    k = g.shape[-1]
    g_ll = g.diagonal(dim1=-2, dim2=-1)
    dot = (g_ll[..., :, None, None] - g[..., :, :, None]) - g[..., :, None, :] + g[..., None, :, :]
    sq = (g_ll[..., :, None] - 2 * g + g_ll[..., None, :]).clamp_min(_EPS**2)
    eye = torch.eye(k, dtype=torch.bool, device=g.device)
    norm = torch.where(eye, 1.0, sq.sqrt())
    angle = dot / (norm[..., :, :, None] * norm[..., :, None, :])
    return angle.masked_fill(eye[:, :, None] | eye[:, None, :], 0.0)


@full_precision
def ltr_triple_loss(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor,
                    *, triple_loss: str = "l2", normalize: str = "global") -> torch.Tensor:
    """LTR triple-wise (angle) term over all K³ layer triples of each token (spec §1.6).

    Official: ``Σ_{b, i valid} Σ_{l,m,o} (A^S - A^T)² / (K³ · Σ_b n_b)``, degenerate triples
    (m = l or o = l) included as zeros.
    """
    _check(student, teacher, attention_mask, triple_loss=triple_loss, normalize=normalize)
    k = student.shape[1]
    all_layers = torch.ones(1, 1, k, 1, dtype=torch.bool, device=student.device)
    with torch.no_grad():
        a_t = _layer_angles(_gram(teacher.transpose(1, 2).contiguous(), all_layers, dim=-2))
    a_s = _layer_angles(_gram(student.transpose(1, 2).contiguous(), all_layers, dim=-2))
    values = _elementwise(a_s, a_t.to(a_s.dtype), triple_loss)  # [B, n, K, K, K]
    keep = attention_mask.bool()[:, :, None, None, None].expand_as(values)
    denom = k**3 * attention_mask.sum().to(values.dtype)
    return _reduce(values, keep, normalize, denom, row_dims=3)


# --- all requested terms at once ----------------------------------------------------------------
CKD_LOSSES = {"wr_pair": wr_pair_loss, "wr_triple": wr_triple_loss, "ltr_pair": ltr_pair_loss,
              "ltr_triple": ltr_triple_loss}


def _cosines(g: torch.Tensor) -> torch.Tensor:
    """Cosine matrix from a Gram matrix (``F.normalize`` semantics: norms clamped at eps)."""
    norm = g.diagonal(dim1=-2, dim2=-1).clamp_min(_EPS**2).sqrt()
    return g / (norm[..., :, None] * norm[..., None, :])


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
    _check(student, teacher, attention_mask)
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
            out["wr_pair"] = _pair_term(_cosines(g_s), _cosines(g_t), valid.expand(-1, k, -1, -1),
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
            out["ltr_pair"] = _pair_term(_cosines(l_s), _cosines(l_t), valid, "kldiv", "global",
                                         k * k * tokens)
        if "ltr_triple" in names:
            with torch.no_grad():
                a_t = _layer_angles(l_t)
            values = _elementwise(_layer_angles(l_s), a_t, "l2")
            keep = mask[:, :, None, None, None].expand_as(values)
            out["ltr_triple"] = _reduce(values, keep, "global", k**3 * tokens, row_dims=3)
    return {name: out[name] for name in names}
