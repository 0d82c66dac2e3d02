"""Plain-text progress for non-interactive runs (CI, SLURM logs) instead of a progress bar."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger("lmcompress.progress")


class PlainProgress(pl.Callback):
    """Log step, loss and throughput every ``every_n_steps`` optimizer steps and each evaluation."""

    def __init__(self, every_n_steps: int = 20):
        self.every_n_steps = max(1, every_n_steps)
        self._t0 = time.perf_counter()
        self._last_step = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0, self._last_step = time.perf_counter(), trainer.global_step
        if not trainer.is_global_zero:
            return
        total = trainer.estimated_stepping_batches
        log.info("training: %s optimizer steps planned (from step %d)", total, trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or step == self._last_step or not trainer.is_global_zero:
            return
        rate = (step - self._last_step) / max(time.perf_counter() - self._t0, 1e-9)
        loss = trainer.callback_metrics.get("train/loss")
        log.info("epoch %d step %d/%d loss %s (%.2f steps/s)", trainer.current_epoch, step,
                 trainer.estimated_stepping_batches,
                 f"{float(loss):.4f}" if loss is not None else "n/a", rate)
        self._t0, self._last_step = time.perf_counter(), step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # during fit's validation trainer.training is False: ask which entry point runs
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        vals = " ".join(f"{k}={float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items())
                        if k.startswith("val/") and k.count("/") == 1)
        log.info("epoch %d step %d dev: %s", trainer.current_epoch, trainer.global_step, vals)
