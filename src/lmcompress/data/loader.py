"""The loaders every data module builds: the resumable training loader, the ordered evaluation one.

The training loader's saved position is the last batch training *consumed*.

Lightning prefetches the next batch before running the current one, so a checkpoint written
at the end of step k finds the loader already past batch k + 1; resuming from that position
would skip batches. This loader records its state before yielding each batch, and
:meth:`mark_consumed` (called by ``callbacks.exact_resume.ExactResume`` at each batch start)
says which of those states a checkpoint should hold.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader


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


def pin_memory(trainer: Any) -> bool:
    """Page-locked batches when training on a CUDA device (faster host-to-device copies)."""
    strategy = getattr(trainer, "strategy", None)
    return getattr(getattr(strategy, "root_device", None), "type", "cpu") == "cuda"


def ordered_loader(dataset: Any, global_batch: int, trainer: Any, num_workers: int,
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
                      else global_batch, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory(trainer), collate_fn=collate)
