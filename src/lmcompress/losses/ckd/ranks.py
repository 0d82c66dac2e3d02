"""CKD's normalisers over every process's batch under DDP (docs/ckd.md §13).

A relation term divides a sum over the batch by a count of that batch (tokens, pairs, window
members or valid rows). Under DDP each process sees a shard, and DDP averages the processes'
gradients; with per-shard counts, two shards of different lengths average to another loss than
the pooled batch. Inside :func:`counts_across_ranks` every count goes through :func:`share`,
which replaces it by the count of the whole global batch divided by the world size: each
process's loss is then ``W · (its sum) / (global count)`` and DDP's mean of the gradients is the
gradient of the pooled batch's loss. Outside the context, or with one process, :func:`share` is
the ``clamp_min(1)`` the terms always applied: the same bits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist

_ACROSS_RANKS = [False]


@contextlib.contextmanager
def counts_across_ranks(active: bool = True) -> Iterator[None]:
    """Within the block, :func:`share` pools counts over the process group (when ``active``)."""
    before = _ACROSS_RANKS[0]
    _ACROSS_RANKS[0] = active
    try:
        yield
    finally:
        _ACROSS_RANKS[0] = before


def share(count: torch.Tensor) -> torch.Tensor:
    """``count`` clamped at 1, or the global batch's count over the world size.

    The latter inside :func:`counts_across_ranks` under DDP: a detached all-reduce of the count,
    clamped at 1, divided by the world size (no gradient flows through it).
    """
    if not (_ACROSS_RANKS[0] and dist.is_available() and dist.is_initialized()):
        return count.clamp_min(1)
    world = dist.get_world_size()
    if world == 1:
        return count.clamp_min(1)
    total = count.detach().to(torch.float64).reshape(1).clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return (total.clamp_min(1) / world).reshape(count.shape).to(
        count.dtype if count.is_floating_point() else torch.get_default_dtype())
