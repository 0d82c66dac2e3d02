"""Checkpoints you can trust: atomic writes, readable errors, and resume only of the same run.

- :class:`AtomicCheckpointIO` writes to a temporary file in the same folder, fsyncs, then renames:
  a failed save (disk full, a kill) never leaves a truncated ``best-*.ckpt`` behind.
- :func:`resume_checkpoint` finds ``last.ckpt`` (or the checkpoint ``resume=<path>`` names) and
  refuses, before training, one written by another stage, task, or a config that shapes results
  differently (the differing keys are listed), and one that is truncated or foreign. With
  ``resume=false`` an existing ``checkpoints/`` is moved aside (:func:`set_aside`).
"""

from __future__ import annotations

import logging
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lmcompress.utils.io import atomic_write
from lmcompress.utils.run_lock import is_secondary_rank

log = logging.getLogger("lmcompress")

# config keys that shape a run's result; resume refuses a checkpoint whose values differ
IDENTITY_KEYS = ("task", "model", "student", "teacher", "loss", "module", "data", "seed")
_NOT_IDENTITY = ("data.cache_dir", "data.num_workers", "data.eval_batch_size")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, foreign, or from a different run."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` through ``utils.io.atomic_write`` (temporary file, fsync, rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        with atomic_write(path, "wb") as f:
            torch.save(checkpoint, f)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with the project's message for a bad file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable lmcompress checkpoint (truncated by a crash, or written "
            f"by something else: {str(err).splitlines()[0][:120]}); delete it, or run with "
            "resume=false to start over in this folder") from err


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config values that shape a run's result, as flat dotted keys."""
    out: dict[str, Any] = {}
    for key in IDENTITY_KEYS:
        if key in cfg:
            node = cfg[key]
            value = OmegaConf.to_container(node, resolve=True) if isinstance(
                node, DictConfig) else node
            out.update(_flatten(value, key))
    return {k: v for k, v in out.items() if not k.startswith(_NOT_IDENTITY)}


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def resume_checkpoint(cfg: DictConfig, module_name: str) -> str | None:
    """The checkpoint to resume from, per ``cfg.resume`` (conf/base.yaml), checked."""
    if cfg.resume is False or cfg.resume is None:
        set_aside(Path(cfg.paths.output_dir) / "checkpoints")
        return None
    if cfg.resume is True:
        path = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if not path.is_file():
            return None
    else:
        path = Path(str(cfg.resume))
        path = path / "checkpoints" / "last.ckpt" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"resume={cfg.resume}: no checkpoint at {path}")
    meta = read_checkpoint(path).get("lmcompress")
    if meta is None:
        raise CheckpointError(f"resume: {path} was not written by lmcompress; use another "
                              "hydra.run.dir, or resume=false to start over there")
    if (meta["module"], meta["task"]) != (module_name, cfg.task.name):
        raise CheckpointError(
            f"resume: {path} was written by {meta['module']} on task {meta['task']!r}, but this "
            f"run is {module_name} on task {cfg.task.name!r}; use another hydra.run.dir, or "
            "resume=false to start over there")
    saved, now = meta.get("config") or {}, run_identity(cfg)
    differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if saved and differ:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in differ[:8])
        raise CheckpointError(
            f"resume: {path} was trained with another config ({shown}"
            f"{', ...' if len(differ) > 8 else ''}); resuming would mix two runs. Use the same "
            "overrides, another hydra.run.dir, or resume=false")
    return str(path)


def set_aside(folder: Path) -> Path | None:
    """Rename a non-empty ``checkpoints/`` to ``checkpoints.<time>/`` (``resume=false``).

    A fresh start in a used folder would otherwise leave the old ``last.ckpt`` (and
    ``best-*.ckpt``) beside the new run's, for a later ``resume=true`` to pick up. The old files
    are kept, not deleted.
    """
    if is_secondary_rank() or not folder.is_dir() or not any(folder.iterdir()):
        return None  # other DDP ranks re-run this with rank 0's fresh checkpoints/
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    aside, n = folder.with_name(f"{folder.name}.{stamp}"), 1
    while aside.exists():
        aside, n = folder.with_name(f"{folder.name}.{stamp}.{n}"), n + 1
    folder.rename(aside)
    log.warning("resume=false: moved the earlier checkpoints %s aside to %s (delete it when "
                "not needed); this run starts over", folder, aside)
    return aside
