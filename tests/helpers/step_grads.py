"""A callback recording the gradient norm each optimizer step really applies.

A step post-hook on the optimizer runs after the update, with the gradients the update used:
after Lightning's fp16 unscaling and after any clipping, which a callback's
``on_before_optimizer_step`` (it runs before the module's) cannot see.
"""

from __future__ import annotations

from typing import ClassVar

import pytorch_lightning as pl
import torch


class StepGrads(pl.Callback):
    """``StepGrads.norms``: the total gradient 2-norm seen by each optimizer step."""

    norms: ClassVar[list[float]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        StepGrads.norms = []

        def record(optimizer, args, kwargs):
            grads = [p.grad.float() for g in optimizer.param_groups for p in g["params"]
                     if p.grad is not None]
            StepGrads.norms.append(float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

        for optimizer in trainer.optimizers:
            optimizer.register_step_post_hook(record)
