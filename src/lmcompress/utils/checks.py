"""Refusals before training: settings that would train nothing or fail on the first long input."""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

log = logging.getLogger(__name__)

# key -> (smallest allowed integer, other allowed values, allowed range in words)
INTEGER_SETTINGS = {
    "trainer.max_epochs": (1, (None, -1), "an integer >= 1, or -1 (no limit)"),
    "trainer.min_epochs": (0, (None,), "an integer >= 0"),
    "trainer.max_steps": (1, (None, -1), "an integer >= 1, or -1 (no limit)"),
    "trainer.accumulate_grad_batches": (1, (None,), "an integer >= 1"),
    "data.batch_size": (1, (), "an integer >= 1 (the global batch)"),
    "data.eval_batch_size": (1, (None,), "an integer >= 1, or null (= data.batch_size)"),
    "data.num_workers": (0, (None,), "an integer >= 0, or null (0 on the CPU, up to 4 per GPU)"),
}


def check_numbers(cfg: DictConfig) -> None:
    """Refuse a batch size, epoch or step count that is not an integer in its range, by key."""
    for key, (low, also, allowed) in INTEGER_SETTINGS.items():
        section, name = key.split(".")
        node = cfg.get(section)
        if node is None or name not in node:
            continue
        value = node.get(name)
        if value in also and not isinstance(value, bool | float):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{key}={value!r}: must be {allowed}")


def check_groups(cfg: DictConfig) -> None:
    """Refuse a config group whose node is a plain value instead of the group's settings.

    ``loss: kd_ckd`` in a config's body does not select ``conf/loss/kd_ckd.yaml``: Hydra merges
    the string over the group's node, and the stage would fail later on a message that names
    nothing. Groups whose options are ``@package _global_`` (experiment, hardware) have no node.
    """
    from lmcompress.utils.paths import conf_dir

    for group in sorted(p.name for p in conf_dir().iterdir() if p.is_dir()):
        if group not in cfg:
            continue
        value = cfg.get(group)
        if isinstance(value, str | int | float | bool):
            raise ValueError(
                f"{group}={value!r}: `{group}` is a config group (conf/{group}/) and this value "
                f"replaced its settings; a config's body cannot select a group. Select it in the "
                f"defaults list (`- override /{group}: {value}`) or on the command line "
                f"({group}={value})")


def check_seed(cfg: DictConfig) -> None:
    """Refuse a ``seed`` that is not an integer numpy and torch can both take (0 to 2**32-1)."""
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed={seed!r}: must be an integer from 0 to {2**32 - 1}")


def check_plan(cfg: DictConfig) -> None:
    """Refuse trainer settings that plan zero optimizer steps (an untrained export, exit 0).

    Also refuses, with the key and its allowed range, batch sizes and epoch or step counts
    that are not integers in range (:func:`check_numbers`); run.py calls this before building
    the data module or any model.
    """
    trainer = cfg.trainer
    zero = {"trainer.max_epochs": trainer.get("max_epochs"),
            "trainer.max_steps": trainer.get("max_steps"),
            "trainer.limit_train_batches": trainer.get("limit_train_batches")}
    for key, value in zero.items():
        if value is not None and value == 0:
            raise ValueError(f"{key}=0 plans no optimizer step: the run would export an "
                             "untrained model")
    check_numbers(cfg)
    if trainer.get("max_epochs") == -1 and trainer.get("max_steps") in (None, -1):
        raise ValueError("trainer.max_epochs=-1 with trainer.max_steps=-1 plans no end: set "
                         "one of them")
    check_device(cfg)


def check_device(cfg: DictConfig) -> None:
    """Refuse a GPU setting this machine cannot run, naming the keys (before any model is built).

    ``hardware=gpu|bf16_mixed|fp16_mixed|ddp*`` need CUDA; bf16 autocast on a CUDA device also
    needs bf16 support (Ampere or newer: otherwise ``hardware=fp16_mixed``).
    """
    trainer = cfg.trainer
    accelerator, precision = str(trainer.get("accelerator")), str(trainer.get("precision"))
    if accelerator == "cpu" and precision.startswith("bf16") and not cpu_has_native_bf16():
        log.warning("trainer.precision=%s on a CPU without native bf16 (no AVX512-BF16 or AMX): "
                    "torch emulates bf16 here, and a step ran about 17x slower than fp32 on such "
                    "a CPU (docs/launch.md). Use hardware=cpu for fp32.", precision)
    if accelerator not in ("gpu", "cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"trainer.accelerator={accelerator} (precision {precision}) needs a "
                         "CUDA device, and torch.cuda.is_available() is False here: use "
                         "hardware=cpu, or add trainer.accelerator=cpu (bf16-mixed runs on a "
                         "CPU too)")
    if precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        raise ValueError(f"trainer.precision={precision}: this GPU has no bf16 support; use "
                         "hardware=fp16_mixed (fp16 autocast with loss scaling)")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls in hardware (AVX512-BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


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
                role = "student" if name == "model" and hasattr(module, "teacher") else name
                raise ValueError(f"data.max_length={max_length} exceeds the {role}'s "
                                 f"{limit} position embeddings (max_position_embeddings of "
                                 f"{type(child).__name__}); lower data.max_length")


def check_took_steps(trainer: Any) -> None:
    """After fit: no optimizer step at all means nothing was trained."""
    if trainer.global_step == 0:
        raise RuntimeError("training took no optimizer step (empty training split, or a limit "
                           "such as trainer.limit_train_batches); nothing is exported")


def check_launch(cfg: DictConfig) -> None:
    """Refuse DDP inside a multirun run by the basic launcher (docs/launch.md).

    The basic launcher runs a sweep's jobs one after another in one process; DDP's launcher
    re-executes the command for each extra rank, which would re-run the whole sweep there.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    trainer = cfg.trainer
    processes = trainer.get("devices", 1) not in (1, "1", "auto") or trainer.get("num_nodes", 1) > 1
    ddp = "ddp" in str(trainer.get("strategy", ""))
    if (hydra_cfg.mode == RunMode.MULTIRUN and ddp and processes
            and hydra_cfg.runtime.choices.get("hydra/launcher") == "basic"):
        raise ValueError(
            f"trainer.strategy={trainer.strategy} with trainer.devices={trainer.devices} inside a "
            "multirun: the basic launcher runs every job in this one process, and DDP would "
            "re-run the whole sweep for each extra rank. Use +launcher=slurm (one SLURM job per "
            "sweep job), or run this configuration as a single run")
