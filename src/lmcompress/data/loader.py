"""The loaders every data module builds: the resumable training loader, the ordered evaluation one.

The training loader's saved position is the last batch training *consumed*.

Lightning prefetches the next batch before running the current one, so a checkpoint written
at the end of step k finds the loader already past batch k + 1; resuming from that position
would skip batches. This loader records its state before yielding each batch, and
:meth:`mark_consumed` (called by ``callbacks.exact_resume.ExactResume`` at each batch start)
says which of those states a checkpoint should hold.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import RandomSampler
from torchdata.stateful_dataloader.sampler import _StatefulRandomSamplerIterator as _RandomIterator


class ResumableDataLoader(StatefulDataLoader):
    """``StatefulDataLoader`` reporting the state after the last consumed batch."""

    _consumed: int | None = None

    def __iter__(self):
        self._snapshots: dict[int, dict[str, Any]] = {}
        return _Recorder(super().__iter__(), self._snapshots)

    def mark_consumed(self, batches: int) -> None:
        """``batches`` batches of the current epoch have been (or are being) trained on."""
        self._consumed = batches
        for old in [k for k in getattr(self, "_snapshots", {}) if k < batches]:
            del self._snapshots[old]

    def state_dict(self) -> dict[str, Any]:
        snapshot = getattr(self, "_snapshots", {}).get(self._consumed)
        return snapshot if snapshot is not None else super().state_dict()


class _Recorder:
    """Iterator wrapper: snapshot the loader state (keyed by batches yielded) before each batch."""

    def __init__(self, iterator: Any, snapshots: dict[int, dict[str, Any]]):
        self.iterator, self.snapshots = iterator, snapshots

    def __iter__(self) -> _Recorder:
        return self

    def __next__(self) -> Any:
        self.snapshots[self.iterator._num_yielded] = self.iterator.state_dict()
        return next(self.iterator)


def per_device(global_batch: int, trainer: Any) -> int:
    """One process's share of a global batch (refused unless the processes divide it)."""
    world = trainer.world_size if trainer is not None else 1
    if global_batch % world:
        raise ValueError(f"data.batch_size={global_batch} is not divisible by the {world} "
                         "processes")
    return global_batch // world


def workers(num_workers: int | None, trainer: Any) -> int:
    """``data.num_workers``, or with ``null`` (the default) a choice for the device.

    On the CPU 0: the batches are pre-tokenised tensors, and worker processes would take cores
    from the training itself. On a CUDA device up to 4 per process (the host's cores shared by
    the processes of this node), so collation overlaps the device's work.
    """
    if num_workers is not None:
        return num_workers
    if not pin_memory(trainer):
        return 0
    local = max(1, int(getattr(trainer, "num_devices", 1) or 1))
    return max(0, min(4, (os.cpu_count() or 1) // local - 1))


def pin_memory(trainer: Any) -> bool:
    """Page-locked batches when training on a CUDA device (faster host-to-device copies)."""
    strategy = getattr(trainer, "strategy", None)
    return getattr(getattr(strategy, "root_device", None), "type", "cpu") == "cuda"


def ordered_loader(dataset: Any, global_batch: int, trainer: Any, num_workers: int | None,
                   collate: Any, shard: bool = True) -> DataLoader:
    """An evaluation loader: in order, each example exactly once across the processes.

    ``shard=False``: the whole dataset on this process in global-size batches (the same batches
    on every rank as in a single-process run).
    """
    world, sampler = (trainer.world_size if trainer is not None else 1), None
    if world > 1 and shard:  # Lightning's default sampler would pad shards by repeating
        sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world,
                                               rank=trainer.global_rank, shuffle=False)
    return DataLoader(dataset, batch_size=per_device(global_batch, trainer) if shard
                      else global_batch, sampler=sampler, num_workers=workers(num_workers, trainer),
                      pin_memory=pin_memory(trainer), collate_fn=collate)


class ShardedRandomSampler(RandomSampler):
    """A seeded shuffle, one shard per process, that a checkpoint resumes exactly.

    Every process draws the same permutation of the whole training set (one shared generator
    seed) and takes every ``world``-th index from its ``rank``; the permutation is padded by
    wrapping around, as ``DistributedSampler`` does, so every process has ``ceil(n / world)``
    indices. Process ``r``'s ``k``-th batch of ``b`` is then positions ``world*b*k + r,
    world*b*k + world + r, ...``, and the processes' ``k``-th batches together are the
    single-process ``k``-th batch of ``world * b`` (docs/launch.md, "What DDP guarantees").
    With ``world=1`` the order is torchdata's ``RandomSampler``'s, draw for draw.

    The state (the generator at the epoch's start and the indices yielded) is the same on every
    process, so the checkpoint's one copy (rank 0's) restores every rank's position. Lightning
    must not wrap it in its own distributed sampler: ``run.build_trainer`` sets
    ``use_distributed_sampler=False`` (every loader of the data modules shards itself).
    """

    def __init__(self, data_source: Any, generator: torch.Generator | None = None,
                 rank: int = 0, world: int = 1):
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not one of {world} processes")
        self.rank, self.world = rank, world  # before the base class checks num_samples
        super().__init__(data_source, generator=generator)

    @property
    def num_samples(self) -> int:
        return -(-len(self.data_source) // self.world)

    def __iter__(self) -> _ShardIterator:
        return _ShardIterator(self)


class _ShardIterator(_RandomIterator):
    """torchdata's stateful iterator over one process's share of each epoch's permutation."""

    def _get_perm(self) -> list[int]:
        perm = super()._get_perm()
        world, rank = self.sampler.world, self.sampler.rank
        if world == 1:
            return perm
        total = -(-len(perm) // world) * world
        padded = (perm * (total // len(perm) + 1))[:total]  # wrap around, as DistributedSampler
        return padded[rank::world]


def shuffled_loader(dataset: Any, global_batch: int, trainer: Any, seed: int | None,
                    num_workers: int | None, collate: Any) -> ResumableDataLoader:
    """The training loader: this process's shard of a seeded shuffle, resumable mid-epoch.

    The shuffle has its own generator, which nothing else draws from (the loader's base seed
    comes from the global one), so every epoch's order follows from the seed alone.
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    world = trainer.world_size if trainer is not None else 1
    rank = trainer.global_rank if trainer is not None else 0
    return ResumableDataLoader(dataset, batch_size=per_device(global_batch, trainer),
                               sampler=ShardedRandomSampler(dataset, generator, rank, world),
                               num_workers=workers(num_workers, trainer),
                               pin_memory=pin_memory(trainer),
                               collate_fn=collate)
