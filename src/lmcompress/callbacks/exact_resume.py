"""Exact mid-epoch resume: the resumed run trains on what the uninterrupted one would have.

Two things a checkpoint needs beyond Lightning's own state: the data position of the last
*consumed* batch (``data.loader.ResumableDataLoader``; Lightning's prefetch runs ahead), and the
random generators (dropout masks), restored right before the first resumed batch, after the data
iterator has been rebuilt. Lightning restores the loader's position only if nothing builds the
training loader before the checkpoint is read: ``TaskModule.planned_steps`` exists for that. In
DDP the checkpoint holds rank 0's generators, so resume is exact on one process only.
``run.py`` always attaches this callback.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from lmcompress.utils import rng


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
        return {"rng": rng.capture()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")
