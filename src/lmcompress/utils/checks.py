"""Refusals before training: settings that would train nothing or fail on the first long input."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel


def check_plan(cfg: DictConfig) -> None:
    """Refuse trainer settings that plan zero optimizer steps (an untrained export, exit 0)."""
    trainer = cfg.trainer
    zero = {"trainer.max_epochs": trainer.get("max_epochs"),
            "trainer.max_steps": trainer.get("max_steps"),
            "trainer.limit_train_batches": trainer.get("limit_train_batches")}
    for key, value in zero.items():
        if value is not None and value == 0:
            raise ValueError(f"{key}=0 plans no optimizer step: the run would export an "
                             "untrained model")


def usable_positions(model: PreTrainedModel) -> int | None:
    """How many token positions a model can embed (RoBERTa-style models reserve two)."""
    cfg = model.config
    limit = getattr(cfg, "max_position_embeddings", None)
    if limit is None:
        return None
    offset = 2 if any(t in cfg.model_type for t in ("roberta", "camembert")) else 0
    return limit - offset


def check_max_length(module: torch.nn.Module, max_length: int) -> None:
    """Refuse ``data.max_length`` beyond any model's position embeddings, naming both numbers."""
    for name, child in module.named_children():
        if isinstance(child, PreTrainedModel):
            limit = usable_positions(child)
            if limit is not None and max_length > limit:
                role = "student" if name == "model" else name
                raise ValueError(f"data.max_length={max_length} exceeds the {role}'s "
                                 f"{limit} position embeddings (max_position_embeddings of "
                                 f"{type(child).__name__}); lower data.max_length")


def check_took_steps(trainer: Any) -> None:
    """After fit: no optimizer step at all means nothing was trained."""
    if trainer.global_step == 0:
        raise RuntimeError("training took no optimizer step (empty training split, or a limit "
                           "such as trainer.limit_train_batches); nothing is exported")
