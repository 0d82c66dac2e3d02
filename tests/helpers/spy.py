"""A callback that keeps what a run really did, for tests that check a stage's wiring.

Attach it to an in-process run with the override ``+callbacks.spy._target_=helpers.spy.Spy``;
``Spy.last()`` is then the instance that run built. It records the LightningModule the run
used (not a freshly built one), each training batch with the model's weights before its step,
the shape of every training forward of the trained model (how many encoder layers ran, how many
query rows they used), the gradients the optimizer step received and its learning rate per
param group.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytorch_lightning as pl
import torch

SPY = "+callbacks.spy._target_=helpers.spy.Spy"


class Spy(pl.Callback):
    """Records the module, batches, weights, training forwards and step gradients of a run."""

    runs: ClassVar[list[Spy]] = []

    def __init__(self) -> None:
        self.module: pl.LightningModule | None = None
        self.batches: list[dict[str, torch.Tensor]] = []
        self.weights: list[dict[str, torch.Tensor]] = []
        self.forwards: list[list[tuple[int, int]]] = []
        self.grads: list[dict[str, torch.Tensor | None]] = []
        self.lrs: list[list[float]] = []
        self.step_grads: list[dict[str, torch.Tensor | None]] = []
        self._handles: list[Any] = []
        self._layers_run = 0
        Spy.runs[:] = [self]  # only the latest run is read; earlier modules can be freed

    @classmethod
    def last(cls) -> Spy:
        return cls.runs[-1]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.module = pl_module

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the gradients the update used: after fp16 unscaling and any clipping, which the
        # module's own on_before_optimizer_step does after this callback's (DynaBERT)
        def record(optimizer, args, kwargs):
            self.step_grads.append({n: None if p.grad is None else p.grad.detach().clone()
                                    for n, p in pl_module.model.named_parameters()})

        for optimizer in trainer.optimizers:
            optimizer.register_step_post_hook(record)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append({k: v.detach().clone() for k, v in batch.items()})
        self.weights.append({k: v.detach().clone()
                             for k, v in pl_module.model.state_dict().items()})
        self.forwards.append([])
        model = pl_module.model
        layers = model.base_model.encoder.layer

        def reset(*_):
            self._layers_run = 0

        def count(*_):
            self._layers_run += 1

        def record(module, args, output):
            width = layers[0].attention.self.query.weight.shape[0]
            rows = getattr(self, "_query_rows", width)
            self.forwards[-1].append((self._layers_run, rows))

        def query_rows(module, args, output):
            self._query_rows = output.shape[-1]

        self._handles = [model.register_forward_pre_hook(reset),
                         model.register_forward_hook(record),
                         *(layer.register_forward_pre_hook(count) for layer in layers),
                         *(layer.attention.self.query.register_forward_hook(query_rows)
                           for layer in layers)]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grads.append({n: None if p.grad is None else p.grad.detach().clone()
                           for n, p in pl_module.model.named_parameters()})
        self.lrs.append([group["lr"] for group in optimizer.param_groups])
