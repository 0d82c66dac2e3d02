"""How many optimizer steps a run takes, from the training-set size (Lightning's arithmetic).

``trainer.estimated_stepping_batches`` gives the same number, but asking it before training
builds and primes the training loader before a checkpoint's data position is restored, so a
resumed run would restart its epoch (callbacks/exact_resume.py). ``TaskModule`` plans its
learning-rate schedule with :func:`planned_steps` and refuses an unreachable budget with
:func:`check_step_budget` at the start of training.
"""

from __future__ import annotations

import math
from typing import Any


def steps_per_epoch(trainer: Any) -> int | None:
    """Optimizer steps in one pass over the training set (None: the data module cannot say)."""
    datamodule = trainer.datamodule
    if datamodule is None or not hasattr(datamodule, "train_size"):
        return None
    world = trainer.world_size
    per_rank = math.ceil(datamodule.train_size() / world)
    batches = math.ceil(per_rank / (datamodule.batch_size // world))
    limit = trainer.limit_train_batches
    batches = min(batches, int(limit)) if isinstance(limit, int) else int(batches * limit)
    return math.ceil(batches / trainer.accumulate_grad_batches)


def planned_steps(trainer: Any) -> int:
    """Optimizer steps of the whole run."""
    per_epoch = steps_per_epoch(trainer)
    if per_epoch is None:
        return int(trainer.estimated_stepping_batches)
    if trainer.max_epochs in (None, -1):  # no epoch limit: max_steps (check_plan: not -1 too)
        return int(trainer.max_steps)
    steps = per_epoch * trainer.max_epochs
    return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps


def check_step_budget(trainer: Any) -> None:
    """Refuse a ``trainer.max_steps`` that ``trainer.max_epochs`` stops short of.

    Lightning ends at whichever limit comes first, so such a budget is silently not trained
    (a 1,200-step general-distillation budget with ``max_epochs: 1`` ran 733 steps).
    """
    per_epoch = steps_per_epoch(trainer)
    if per_epoch is None or trainer.max_steps in (None, -1) or trainer.max_epochs in (None, -1):
        return
    reachable = per_epoch * trainer.max_epochs
    if reachable < trainer.max_steps:
        raise ValueError(
            f"trainer.max_steps={trainer.max_steps} is never reached: "
            f"trainer.max_epochs={trainer.max_epochs} x {per_epoch} optimizer steps per epoch "
            f"= {reachable}. Set trainer.max_epochs=-1 to train for max_steps, or lower "
            "trainer.max_steps (or set it to -1 to train for max_epochs)")
