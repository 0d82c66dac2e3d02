"""Exact mid-epoch resume: the resumed run trains on what the uninterrupted one would have.

Two things a checkpoint needs beyond Lightning's own state: the data position of the last
*consumed* batch (``data.loader.ResumableDataLoader``; Lightning's prefetch runs ahead), and the
random generators (dropout masks), restored right before the first resumed batch, after the data
iterator has been rebuilt. Lightning restores the loader's position only if nothing builds the
training loader before the checkpoint is read: ``TaskModule.planned_steps`` exists for that.
Under DDP the data position is the same on every rank (``data.loader.ShardedRandomSampler``), and
the generators differ: each rank's are gathered into the checkpoint (which rank 0 writes) and each
rank restores its own. ``run.py`` always attaches this callback.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist

from lmcompress.utils import rng

log = logging.getLogger(__name__)


class ExactResume(pl.Callback):
    """Record the consumed position each batch; save and restore the generator states."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        loader = trainer.train_dataloader
        if hasattr(loader, "mark_consumed"):
            loader.mark_consumed(batch_idx + 1)  # a checkpoint at this batch's end resumes after it
        if self._pending is not None:
            rng.restore(self._pending)
            self._pending = None

    def state_dict(self) -> dict[str, Any]:
        # Lightning builds the checkpoint on every rank (rank 0 writes it): a collective is safe
        state = rng.capture()
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return {"rng": state}
        ranks: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, state)
        return {"rng": ranks[0], "rng_per_rank": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("rng_per_rank")
        live = dist.is_available() and dist.is_initialized()
        rank, world = (dist.get_rank(), dist.get_world_size()) if live else (0, 1)
        if ranks is not None and len(ranks) != world:
            raise ValueError(f"this checkpoint was written by {len(ranks)} processes and {world} "
                             "resume it: use as many (trainer.devices x trainer.num_nodes), or "
                             "start over with resume=false")
        if ranks is None and world > 1:
            log.warning("this checkpoint holds one process's generators: %d processes resume "
                        "it, so dropout masks differ from the uninterrupted run's", world)
        self._pending = ranks[rank] if ranks is not None else state_dict.get("rng")
