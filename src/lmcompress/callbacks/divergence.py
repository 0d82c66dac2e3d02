"""Stop a run whose training loss grows by orders of magnitude (docs/launch.md, "Divergence").

A loss that is still finite but has exploded (the tiny teacher at ``module.optim.lr=1e3`` goes
from 0.69 to 5e7 in 8 steps) would otherwise train to the end, evaluate and export garbage. The
NaN/Inf case is caught earlier, in the module's ``check_finite``; this callback catches the
finite one. Every stage is covered the same way, DynaBERT's manual optimization included, since
it reads the loss each ``training_step`` returns.

The reference is the smallest loss of the run's first ``reference_steps`` training batches (the
smallest, not the mean: a run that explodes within those batches must not raise its own bar),
floored at ``min_reference`` so that a loss that starts near zero (a student that begins as its
teacher's copy) does not make any later rise look like an explosion. A batch whose loss exceeds
``factor`` × reference stops the run::

    divergence:            # conf/base.yaml; divergence=null switches the check off
      factor: 1000
      reference_steps: 5
      min_reference: 0.01
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch


class DivergenceError(FloatingPointError):
    """The training loss grew past ``divergence.factor`` × its reference: nothing is exported."""


class DivergenceCheck(pl.Callback):
    """Raise :class:`DivergenceError` at the first batch whose loss exceeds factor × reference.

    Args:
        factor: how many times the reference loss a batch's loss may reach (> 1).
        reference_steps: the reference is the smallest loss of this many first batches (>= 1).
        min_reference: floor of the reference (>= 0).
    """

    def __init__(self, factor: float = 1000.0, reference_steps: int = 5,
                 min_reference: float = 0.01):
        if not factor > 1:
            raise ValueError(f"divergence.factor={factor}: must be > 1 (null switches it off)")
        if reference_steps < 1:
            raise ValueError(f"divergence.reference_steps={reference_steps}: must be >= 1")
        if not min_reference >= 0:
            raise ValueError(f"divergence.min_reference={min_reference}: must be >= 0")
        self.factor, self.reference_steps = float(factor), int(reference_steps)
        self.min_reference = float(min_reference)
        self.first: list[float] = []  # the first batches' losses (kept in checkpoints)
        self._step = 0  # the global step the current batch's loss was computed at

    @property
    def reference(self) -> float | None:
        """The smallest of the first losses seen, floored; None before the first batch."""
        return max(min(self.first), self.min_reference) if self.first else None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._step = trainer.global_step  # as check_finite numbers steps: updates done before

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = _loss_value(outputs)
        if loss is None or not math.isfinite(loss):
            return  # no loss returned, or NaN/Inf: the module's check_finite owns that case
        if len(self.first) < self.reference_steps:
            self.first.append(loss)
        reference = self.reference
        diverged = loss > self.factor * reference
        if trainer.world_size > 1:  # every rank stops together, or the others would hang
            diverged = trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:
            raise DivergenceError(self.message(trainer, pl_module, loss, reference))

    def message(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: float,
                reference: float) -> str:
        """Step, loss, reference, threshold and what to change."""
        lr = getattr(getattr(pl_module, "optim_spec", None), "lr", None)
        return (f"training diverged at step {self._step} (epoch {trainer.current_epoch}):"
                f" loss {loss:.4g} > divergence.factor={self.factor:g} x reference {reference:.4g}"
                f" (smallest loss of the first {len(self.first)} batches); stopping before "
                f"anything is exported. Lower module.optim.lr"
                f"{f' (now {lr:g})' if lr is not None else ''}; or raise divergence.factor, or "
                "set divergence=null to switch the check off")

    def state_dict(self) -> dict[str, Any]:
        return {"first": list(self.first)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.first = list(state_dict.get("first", []))  # a resumed run keeps its reference


def _loss_value(outputs: Any) -> float | None:
    """The loss of a ``training_step`` (a tensor, or a dict with ``loss``) as a float."""
    if isinstance(outputs, dict):
        outputs = outputs.get("loss")
    if isinstance(outputs, torch.Tensor) and outputs.numel() == 1:
        return float(outputs.detach())
    return None


def build_divergence(node: Any) -> list[DivergenceCheck]:
    """``[DivergenceCheck(**node)]``, or ``[]`` for ``divergence: null``."""
    if node is None:
        return []
    from omegaconf import DictConfig, OmegaConf

    kwargs = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    unknown = sorted(set(kwargs) - {"factor", "reference_steps", "min_reference"})
    if unknown:
        raise TypeError(f"divergence: unknown key(s) {unknown}; accepted: factor, "
                        "reference_steps, min_reference (or divergence=null)")
    return [DivergenceCheck(**kwargs)]
