"""The AMoC search shared across the processes of a DDP run (docs/amoc.md §9, "Several processes").

Every candidate is independent of the others (same base model, same batches, same seeded random
draws), so W processes can each fine-tune and score a disjoint share of them and give exactly the
single-process rows. :class:`Shard` says which candidates this process owns (a greedy split by
estimated cost, the same on every rank) and joins the shares: every rank sends its rows, or its
error, and gets all of them back in the single-process order. Only rank 0 then writes anything.

The collectives run on a gloo group of their own (CPU objects, under NCCL too) with a long
timeout: a rank that finishes its share early, or waits while rank 0 fits the regression and
fine-tunes the chosen candidates, would otherwise hit the default 30-minute timeout.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

import torch.distributed as dist

from lmcompress.amoc.candidates import Candidate

WAIT = datetime.timedelta(hours=48)
"""How long a rank waits for the others at a join (the longest search or selection)."""


def split_by_cost(costs: Sequence[float], world: int) -> list[int]:
    """The rank of each item: largest cost first, each to the least-loaded rank (ties: lowest).

    Deterministic, so every rank computes the same split without talking to the others.
    """
    load, owner = [0.0] * world, [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        rank = min(range(world), key=lambda r: (load[r], r))
        owner[i] = rank
        load[rank] += costs[i]
    return owner


def candidate_cost(num_layers: int, candidate: Candidate, start: int) -> float:
    """Layers a candidate runs per pass: its kept layers from its first changed one up.

    ``start = -1`` (re-trained embeddings) runs every kept layer and the embeddings.
    """
    kept = [i for i in range(num_layers) if i not in candidate.removed]
    return float(sum(1 for i in kept if i >= start) + (1 if start < 0 else 0))


class Shard:
    """This process's rank among ``world`` and the collectives that join the shares.

    Args:
        rank: this process's global rank.
        world: the number of processes (1: everything runs here, no collective is called).
        group: the process group for the joins (``from_torch`` makes a gloo one).
    """

    def __init__(self, rank: int = 0, world: int = 1, group: Any = None):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1}")
        self.rank, self.world, self.group = rank, world, group
        self.owner: list[int] = []

    @classmethod
    def from_torch(cls) -> Shard:
        """The shard of an initialised ``torch.distributed`` job, else a single process."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        group = dist.new_group(backend="gloo", timeout=WAIT)  # collective: every rank calls it
        return cls(dist.get_rank(), dist.get_world_size(), group)

    def assign(self, costs: Sequence[float]) -> None:
        """Split the candidates (their costs, in candidate order) between the ranks."""
        self.owner = split_by_cost(costs, self.world)

    def owns(self, index: int) -> bool:
        """Whether candidate ``index`` is fine-tuned and scored by this process."""
        return self.world == 1 or self.owner[index] == self.rank

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world == 1:
            return [value]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value, group=self.group)
        return out

    def run(self, work: Callable[[], Any]) -> list[Any]:
        """Run ``work`` here and return every rank's result; if any rank failed, raise on all.

        A rank's exception never leaves the others waiting: it is sent as a message, and every
        rank raises (its own exception, or one naming the rank that failed).
        """
        try:
            result, error = work(), None
        except Exception as err:
            if self.world == 1:
                raise
            result, error = None, err
        answers = self.gather((result, None if error is None else
                               f"{type(error).__name__}: {error}"))
        if error is not None:
            raise error
        failed = [(r, msg) for r, (_, msg) in enumerate(answers) if msg is not None]
        if failed:
            raise RuntimeError("AMoC search failed on " + "; ".join(
                f"rank {r}: {msg}" for r, msg in failed))
        return [value for value, _ in answers]

    def publish(self, work: Callable[[], Any]) -> Any:
        """Rank 0 runs ``work`` (writing the results); the others wait for its outcome.

        The other ranks return None when rank 0 succeeded, and raise its error when it failed,
        so a refused selection fails every process of the job with the same reason.
        """
        if self.world == 1:
            return work()
        error = None
        if self.rank == 0:
            try:
                result = work()
            except Exception as err:
                error = err
        message = [None if error is None else f"{type(error).__name__}: {error}"]
        dist.broadcast_object_list(message, src=0, group=self.group)
        if error is not None:
            raise error
        if message[0] is not None:
            raise RuntimeError(f"AMoC on rank 0: {message[0]}")
        return result if self.rank == 0 else None
