"""One all-reduce per optimizer step for a stage that accumulates several backward passes.

DynaBERT back-propagates every sub-network of its grid in turn before one optimizer step. Left
to DDP, each backward all-reduces every gradient bucket (4 per step for the 4 widths, 12 for
the width × depth grid), and a depth sub-network that skips layers leaves parameters without a
gradient, which plain DDP refuses at step 0. So the backward passes run under
``strategy.block_backward_sync()`` (DDP's ``no_sync``) and this module reduces the accumulated
gradients once: every trainable parameter's gradient (zeros where a parameter got none), with
per-step flags appended, flattened into one float32 buffer and all-reduced in one call. The
gradients become the mean over ranks (what DDP computes), the flags their sum, so every rank
learns in the same collective whether any rank saw a non-finite loss (docs/launch.md).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def reduce_gradients(params: list[torch.nn.Parameter], flags: torch.Tensor,
                     world_size: int) -> torch.Tensor:
    """Average ``params``' gradients over ranks and sum ``flags``, in one ``all_reduce``.

    Args:
        params: the trainable parameters, in the same order on every rank.
        flags: a float vector (e.g. one non-finite indicator per sub-network).
        world_size: the number of processes; 1 returns ``flags`` and touches nothing.

    Returns:
        ``flags`` summed over ranks.
    """
    if world_size == 1:
        return flags
    device = flags.device
    pieces = [p.grad.reshape(-1).float() if p.grad is not None
              else torch.zeros(p.numel(), device=device) for p in params]
    flat = torch.cat([*pieces, flags.float().to(device)])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        chunk = flat[offset:offset + p.numel()].view_as(p).div_(world_size)
        if p.grad is None:
            p.grad = chunk.to(p.dtype)
        else:
            p.grad.copy_(chunk)
        offset += p.numel()
    return flat[offset:]
