"""Count the collectives of each optimizer step (a diagnostic for DDP runs; docs/launch.md).

Two counters per step: ``buckets``, the gradient buckets DDP's reducer all-reduces (counted by a
communication hook that wraps the default all-reduce hook), and ``all_reduce``, the calls to
``torch.distributed.all_reduce`` made from Python (Lightning's ``strategy.reduce``, DynaBERT's
single coalesced gradient reduction, the finite-loss flag). Rank 0 writes the per-step counts to
``path`` as JSON at the end of fit. Add it to a run with::

    +callbacks.comm._target_=lmcompress.callbacks.comm_count.CommCount
    +callbacks.comm.path=comm_counts.json

A single process has no collectives: every count is 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lmcompress.utils.io import write_json_atomic


class CommCount(pl.Callback):
    """Per optimizer step: DDP gradient buckets all-reduced and Python ``all_reduce`` calls.

    Args:
        path: the JSON file rank 0 writes (relative: under the run folder).
    """

    def __init__(self, path: str = "comm_counts.json"):
        self.path = path
        self.buckets = self.calls = 0
        self.steps: list[dict[str, int]] = []
        self._real_all_reduce: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = trainer.strategy.model
        if isinstance(model, DistributedDataParallel):
            model.register_comm_hook(state=None, hook=self._hook)
        self._real_all_reduce = dist.all_reduce

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return self._real_all_reduce(*args, **kwargs)

        dist.all_reduce = counted

    def _hook(self, state, bucket):  # noqa: ANN001  (DDP refuses string annotations here)
        """Count one gradient bucket, then all-reduce it as DDP's default hook does."""
        self.buckets += 1
        tensor = bucket.buffer().div_(dist.get_world_size())
        work = self._real_all_reduce(tensor, async_op=True)  # not counted as a Python call
        return work.get_future().then(lambda fut: fut.value()[0])

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self.buckets = self.calls = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self.steps.append({"buckets": self.buckets, "all_reduce": self.calls})

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._real_all_reduce is not None:
            dist.all_reduce = self._real_all_reduce
        if trainer.is_global_zero:
            path = Path(self.path)
            if not path.is_absolute():
                path = Path(trainer.default_root_dir) / path
            write_json_atomic(path, {"world_size": trainer.world_size, "steps": self.steps})
