"""CKD building blocks: option checks, relation matrices from Gram matrices, reductions.

Park, Kim & Yang, "Distilling Linguistic Context for Language Model Compression", EMNLP 2021,
arXiv:2109.08359; the formulas and the official code's semantics are in docs/ckd.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

from lmcompress.losses.ckd.ranks import share

PAIR_LOSSES = ("kldiv", "l1", "l2", "smoothl1")
TRIPLE_LOSSES = ("l2", "l1", "smoothl1")
DISTANCES = ("cos", "l2", "sqeuclidean")
NORMALIZE = ("global", "row")
CHOICES = {"distance": DISTANCES, "pair_loss": PAIR_LOSSES, "triple_loss": TRIPLE_LOSSES,
           "normalize": NORMALIZE}
EPS = 1e-12
"""Norm floor of every cosine and angle (``F.normalize`` semantics), for all CKD terms."""
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


def check_choices(where: str = "", **options: object) -> None:
    """Refuse an option value outside its choices, naming ``<where>.<option>`` (or the option)."""
    for name, value in options.items():
        if value not in CHOICES[name]:
            key = f"{where}.{name}" if where else name
            raise ValueError(f"{key}={value!r}: choose from {CHOICES[name]}")


def check_window(window: object, key: str = "window") -> None:
    """The WR-triple window: a positive odd int (centre word ± the same count) or None (all)."""
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < 1 or window % 2 == 0):
        raise ValueError(f"{key}={window!r}: must be a positive odd number (the centre word plus "
                         "the same count on each side) or null (all triples)")


def check_inputs(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> None:
    """Shapes ``[B, K, n, d]`` (equal in B, K and n) with a ``[B, n]`` mask."""
    if student.dim() != 4 or teacher.dim() != 4:
        raise ValueError(f"student and teacher must be [B, K, n, d]; got {tuple(student.shape)} "
                         f"and {tuple(teacher.shape)}")
    if student.shape[:3] != teacher.shape[:3]:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} "
                         "differ in batch, layer count K or length n")
    if mask.shape != (student.shape[0], student.shape[2]):
        raise ValueError(f"attention_mask {tuple(mask.shape)} does not match "
                         f"[B, n] = {(student.shape[0], student.shape[2])}")


def elementwise(diff_s: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-entry l2 (squared error), l1 or smooth-L1 (beta 1) between student and teacher."""
    if kind in ("l2",):
        return (diff_s - target) ** 2
    if kind == "l1":
        return (diff_s - target).abs()
    return F.smooth_l1_loss(diff_s, target, reduction="none", beta=1.0)


def reduce(values: torch.Tensor, keep: torch.Tensor, normalize: str, denom: torch.Tensor,
            row_dims: int) -> torch.Tensor:
    """Global sum / ``denom`` (official) or mean over valid rows of per-row means.

    Under DDP both counts are the global batch's (:func:`~lmcompress.losses.ckd.ranks.share`).
    """
    values = torch.where(keep, values, torch.zeros((), dtype=values.dtype, device=values.device))
    if normalize == "global":
        return values.sum() / share(denom)
    dims = tuple(range(-row_dims, 0))
    count = keep.sum(dims)
    row_mean = values.sum(dims) / count.clamp_min(1)
    rows = count > 0
    return row_mean[rows].sum() / share(rows.sum())


def relation(centred: torch.Tensor, plain: torch.Tensor, distance: str, dist_norm: bool,
             pair_valid: torch.Tensor) -> torch.Tensor:
    """Pairwise relation from Gram matrices: cosines (plain Gram) or distances (centred Gram).

    Distances are translation invariant, so they read the centred Gram, where float32 keeps its
    digits: ``|h_i - h_j|² = G_ii + G_jj - 2 G_ij``.
    """
    if distance == "cos":
        return cosines(plain)
    sq = centred.diagonal(dim1=-2, dim2=-1)
    d2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * centred).clamp_min(0)
    eye = torch.eye(d2.shape[-1], dtype=torch.bool, device=d2.device)
    d = d2 if distance == "sqeuclidean" else torch.where(eye, 0, d2.clamp_min(EPS**2).sqrt())
    if dist_norm:  # RKD: divide by the mean positive distance of each matrix (guard 0 -> 1)
        pos = pair_valid & (d > 0)
        mean = (d * pos).sum((-1, -2), keepdim=True) / pos.sum((-1, -2), keepdim=True).clamp_min(1)
        d = d / torch.where(mean > 0, mean, torch.ones_like(mean))
    return d


def pair_term(rel_s: torch.Tensor, rel_t: torch.Tensor, valid: torch.Tensor, kind: str,
               normalize: str, denom: torch.Tensor) -> torch.Tensor:
    """Compare two relation matrices on ``valid`` (diagonal excluded) entries."""
    if kind == "kldiv":  # row softmax over the other valid members; finite fill: no NaN ever
        fill = torch.finfo(rel_s.dtype).min / 4
        log_q = rel_s.masked_fill(~valid, fill).log_softmax(-1)
        log_p = rel_t.masked_fill(~valid, fill).log_softmax(-1)
        values = log_p.exp() * (log_p - log_q)
    else:
        values = elementwise(rel_s, rel_t, kind)
    return reduce(values, valid, normalize, denom, row_dims=1)


def window_index(n: int, window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``π(i, w) = clamp(i + w, 0, n - 1)`` [n, W] and whether ``i + w`` was inside [0, n)."""
    half = window // 2
    raw = torch.arange(n, device=device)[:, None] + torch.arange(-half, half + 1, device=device)
    return raw.clamp(0, n - 1), (raw >= 0) & (raw < n)


def layer_angles(g: torch.Tensor) -> torch.Tensor:
    """``A[..., l, m, o]`` = cos of the angle at vertex layer l, from a layer Gram [..., K, K]."""
    k = g.shape[-1]
    g_ll = g.diagonal(dim1=-2, dim2=-1)
    dot = (g_ll[..., :, None, None] - g[..., :, :, None]) - g[..., :, None, :] + g[..., None, :, :]
    sq = (g_ll[..., :, None] - 2 * g + g_ll[..., None, :]).clamp_min(EPS**2)
    eye = torch.eye(k, dtype=torch.bool, device=g.device)
    norm = torch.where(eye, 1.0, sq.sqrt())
    angle = dot / (norm[..., :, :, None] * norm[..., :, None, :])
    return angle.masked_fill(eye[:, :, None] | eye[:, None, :], 0.0)


def cosines(g: torch.Tensor) -> torch.Tensor:
    """Cosine matrix from a Gram matrix (``F.normalize`` semantics: norms clamped at eps)."""
    norm = g.diagonal(dim1=-2, dim2=-1).clamp_min(EPS**2).sqrt()
    return g / (norm[..., :, None] * norm[..., None, :])

