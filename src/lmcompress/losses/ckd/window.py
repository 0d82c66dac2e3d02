"""The WR-triple term (docs/ckd.md §4, §10): one implementation for every window and option.

Autograd over the Gram-matrix formulation keeps a dozen ``[B, K, n, W, W]`` intermediates alive
and runs ~100 elementwise passes over them. :func:`wr_triple` computes the value with a
hand-written backward that stores two such tensors and makes about fifteen passes, for the
official and the masked window, all triples (``window=None``), every ``triple_loss`` and both
normalisers.

Notation per (sentence, layer) with Gram matrix ``g``, vertex ``i`` and its members
``a = π(i, w)``, ``b = π(i, w')`` (the window positions, or every token for all triples):

    D[i, w, w'] = g_ii - g_ia - g_ib + g_ab        (inner product of h_a - h_i and h_b - h_i)
    r[i, w]     = (g_ii - 2 g_ia + g_aa)^(-1/2)    (0 where a is the vertex or is not kept)
    A[i, w, w'] = D[i, w, w'] · r[i, w] · r[i, w']

and the loss is ``Σ φ(A_s - A_t) / denom`` with ``φ`` the squared, absolute or smooth-L1 error
and ``denom`` global or per vertex (``normalize="row"``). ``D``, ``A``, ``φ'`` and the incoming
gradients are symmetric in ``(w, w')``, which the backward uses. All triples run in vertex
chunks, recomputed in the backward, so memory stays O(K·n²) plus one chunk. The test suite
checks value and gradient against float64 naive implementations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmcompress.losses.ckd.ranks import share
from lmcompress.losses.ckd.relations import EPS, elementwise, window_index


@dataclass(frozen=True)
class Chunk:
    """Vertices ``[c]``, their members ``idx [c, W]``, what is kept and the normaliser."""

    vertices: torch.Tensor
    idx: torch.Tensor
    keep: torch.Tensor
    """``[M, c]`` (valid vertices: the official window) or ``[M, c, W]`` (kept members)."""
    denom: torch.Tensor
    """A scalar (global) or ``[M, c]`` (per vertex: ``normalize="row"``)."""
    sliding: bool = False
    """``idx`` is the centred window of every vertex: read diagonal blocks as strided views."""


def _index_maps(n: int, chunk: Chunk) -> dict[str, torch.Tensor]:
    """Flat positions in an ``[n, n]`` matrix of every Gram entry the chunk reads."""
    idx, rows = chunk.idx, chunk.vertices[:, None].expand_as(chunk.idx)
    return {
        "ab": (idx[:, :, None] * n + idx[:, None, :]).reshape(-1),  # [c·W·W]
        "ia": (rows * n + idx).reshape(-1),  # [c·W]
        "aa": (idx * n + idx).reshape(-1),  # [c·W]
        "ii": chunk.vertices * (n + 1),  # [c]
    }


def _blocks(g: torch.Tensor, flat: torch.Tensor, ab: torch.Tensor, chunk: Chunk) -> torch.Tensor:
    """``g[π(i, w), π(i, w')]`` as a new ``[M, c, W, W]`` tensor.

    Vertices whose sliding window is not clamped read a W × W block sliding down the diagonal:
    a strided view of ``g`` copied once, much faster than a gather. The rest use the index map.
    """
    m, n, _ = g.shape
    c, width = chunk.idx.shape
    half = width // 2
    if not chunk.sliding or n <= 2 * half or not g.is_contiguous():
        return flat.index_select(1, ab).view(m, c, width, width)
    out = g.new_empty(m, n, width, width)
    inner = g.as_strided((m, n - 2 * half, width, width), (n * n, n + 1, n, 1),
                         g.storage_offset())
    out[:, half:n - half] = inner
    ends = ab.view(n, width * width)
    for rows in (slice(0, half), slice(n - half, n)):
        out[:, rows] = flat.index_select(1, ends[rows].reshape(-1)).view(m, -1, width, width)
    return out


def window_members(valid: torch.Tensor, idx: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """``[M, n, W]``: member w of vertex i's window is a real token inside the sentence, not i.

    This is the masked window (docs/ckd.md §4): padding, clamped duplicates and the vertex itself
    are not members, and vertices that are padding have no members at all.
    """
    n = valid.shape[-1]
    not_vertex = idx != torch.arange(n, device=idx.device)[:, None]
    return valid[:, :, None] & valid[:, idx] & inside & not_vertex


def window_parts(g: torch.Tensor, chunk: Chunk
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``D [M, c, W, W]``, ``r [M, c, W]`` and the clamp mask of ``sq`` for ``g [M, n, n]``.

    Everything the chunk does not keep gets ``r = 0``, so its angles vanish.
    """
    m, n, _ = g.shape
    c, width = chunk.idx.shape
    maps = _index_maps(n, chunk)
    flat = g.reshape(m, n * n)
    d = _blocks(g, flat, maps["ab"], chunk)
    g_ia = flat.index_select(1, maps["ia"]).view(m, c, width)
    g_aa = flat.index_select(1, maps["aa"]).view(m, c, width)
    g_ii = flat.index_select(1, maps["ii"]).view(m, c, 1)
    d.sub_(g_ia[..., :, None]).sub_(g_ia[..., None, :]).add_(g_ii[..., None])
    sq = g_ii - 2 * g_ia + g_aa
    clamped = sq < EPS**2
    self_ = chunk.idx == chunk.vertices[:, None]
    keep = chunk.keep if chunk.keep.dim() == 3 else chunk.keep[..., None]
    r = sq.clamp_min(EPS**2).rsqrt().masked_fill(self_ | ~keep, 0.0)
    return d, r, clamped


def window_angles(g: torch.Tensor, chunk: Chunk) -> torch.Tensor:
    """Angles ``A [M, c, W, W]`` (0 for the vertex itself and everything not kept)."""
    d, r, _ = window_parts(g, chunk)
    return d.mul_(r[..., :, None]).mul_(r[..., None, :])


def _errors(g_s: torch.Tensor, g_t: torch.Tensor, chunk: Chunk) -> tuple[torch.Tensor, ...]:
    """``D``, ``r``, the clamp mask (student) and ``e = A_s - A_t`` for one chunk."""
    a_t = window_angles(g_t, chunk)
    d, r, clamped = window_parts(g_s, chunk)
    e = d * r[..., :, None]
    e.mul_(r[..., None, :]).sub_(a_t)
    return d, r, clamped, e


def _value(e: torch.Tensor, kind: str, denom: torch.Tensor) -> torch.Tensor:
    penalty = e.pow(2) if kind == "l2" else elementwise(e, torch.zeros_like(e), kind)
    if denom.dim() == 0:
        return penalty.sum() / denom
    return (penalty.sum((-1, -2)) / denom).sum()


def _add_grad(grad: torch.Tensor, n: int, parts: tuple[torch.Tensor, ...], chunk: Chunk,
              kind: str, grad_out: torch.Tensor) -> None:
    """Add one chunk's dL/dg to ``grad [M, n·n]``, overwriting its saved ``e`` in place."""
    d, r, clamped, e = parts
    m = grad.shape[0]
    scale = grad_out / (chunk.denom if chunk.denom.dim() == 0 else chunk.denom[..., None, None])
    # dL/dA, in place over e; a second backward through this graph is refused by autograd's
    # version check on saved tensors
    if kind == "l2":
        da = e.mul_(2 * scale)
    else:  # d|e|/de = sign(e); smooth-L1 (beta 1): clamp(e, -1, 1)
        da = (e.sign_() if kind == "l1" else e.clamp_(-1.0, 1.0)).mul_(scale)
    # dL/dr[v] = 2 Σ_w' dA[v, w'] D[v, w'] r[w']   (dA and D symmetric)
    dr = 2 * torch.matmul(da * d, r[..., :, None]).squeeze(-1)
    dsq = (dr * -0.5 * r.pow(3)).masked_fill_(clamped, 0.0)
    f = da.mul_(r[..., :, None]).mul_(r[..., None, :])  # dL/dD
    f_rows = f.sum(-1)  # Σ_w' F[i, w, w'] = Σ_w F[i, w, w'] (symmetric)
    maps = _index_maps(n, chunk)
    grad.index_add_(1, maps["ab"], f.reshape(m, -1))
    grad.index_add_(1, maps["ia"], (-2 * f_rows - 2 * dsq).reshape(m, -1))
    grad.index_add_(1, maps["aa"], dsq.reshape(m, -1))
    grad.index_add_(1, maps["ii"], f_rows.sum(-1) + dsq.sum(-1))


class TripleLoss(torch.autograd.Function):
    """``Σ_chunks Σ φ(A(g_s) - A(g_t)) / denom`` for ``g_s, g_t [M, n, n]`` (teacher fixed)."""

    @staticmethod
    def forward(ctx, g_s: torch.Tensor, g_t: torch.Tensor, chunks: list[Chunk], kind: str,
                recompute: bool) -> torch.Tensor:
        total = g_s.new_zeros(())
        for chunk in chunks:
            parts = _errors(g_s, g_t, chunk)
            total = total + _value(parts[-1], kind, chunk.denom)
        ctx.save_for_backward(*((g_s, g_t) if recompute else parts))
        ctx.chunks, ctx.kind, ctx.recompute, ctx.shape = chunks, kind, recompute, g_s.shape
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        saved = ctx.saved_tensors
        m, n, _ = ctx.shape
        grad = torch.zeros(m, n * n, dtype=saved[0].dtype, device=saved[0].device)
        for chunk in ctx.chunks:
            parts = _errors(*saved, chunk) if ctx.recompute else saved
            _add_grad(grad, n, parts, chunk, ctx.kind, grad_out)
        return grad.view(m, n, n), None, None, None, None


def wr_triple(g_s: torch.Tensor, g_t: torch.Tensor, valid: torch.Tensor, window: int | None,
              mask_window: bool, kind: str, normalize: str, chunk_size: int) -> torch.Tensor:
    """The WR-triple term from centred token Grams ``g_s, g_t [M, n, n]`` (M = B·K).

    ``valid [M, n]`` marks the real tokens. Entries per vertex (the counts behind every
    normaliser): ``W²`` (official window), ``members²`` (masked window) or ``n_b²`` (all triples,
    degenerate triples included), so the global denominators are ``K·Σ n_b·W²``, the number of
    member pairs and ``K·Σ n_b³`` (docs/ckd.md §4).
    """
    n = valid.shape[-1]
    if window is None:
        idx = torch.arange(n, device=valid.device)[None].expand(n, n)
        keep = valid[:, :, None] & valid[:, None, :]  # [M, n, n]: vertex and member real
        counts = valid.long() * valid.sum(-1, keepdim=True) ** 2
    else:
        idx, inside = window_index(n, window, valid.device)
        keep = window_members(valid, idx, inside) if mask_window else valid
        counts = keep.sum(-1) ** 2 if mask_window else valid.long() * window**2
    if normalize == "global":  # counts of the global batch under DDP (ranks.py)
        denom = share(counts.sum()).to(g_s.dtype)
    else:  # the mean over vertices with entries of each vertex's mean
        rows = share((counts > 0).sum())
        denom = (counts.clamp_min(1) * rows).to(g_s.dtype)
    vertices = torch.arange(n, device=valid.device)
    if window is not None:
        return TripleLoss.apply(g_s, g_t, [Chunk(vertices, idx, keep, denom, sliding=True)], kind,
                                False)
    chunks = []
    for start in range(0, n, chunk_size):
        part = slice(start, min(n, start + chunk_size))
        if valid[:, part].any():  # a chunk of padding vertices adds nothing
            chunks.append(Chunk(vertices[part], idx[part], keep[:, part],
                                denom if denom.dim() == 0 else denom[:, part]))
    return TripleLoss.apply(g_s, g_t, chunks, kind, True)
