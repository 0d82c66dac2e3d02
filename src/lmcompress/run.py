"""The single entry point: ``python -m lmcompress.run -cn <stage> [overrides]`` (or ``lmcompress``).

seed -> validate data -> build module -> fit (resuming from last.ckpt) -> validate/test the best
checkpoint -> export it with ``save_pretrained`` -> write ``metrics.json`` atomically.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from lmcompress.callbacks.progress import PlainProgress
from lmcompress.models.hf import model_stats
from lmcompress.utils.instantiate import build_callbacks, build_loggers, instantiate_plain
from lmcompress.utils.io import write_json_atomic
from lmcompress.utils.paths import conf_dir, register_resolvers
from lmcompress.utils.task_wrapper import task_wrapper

log = logging.getLogger("lmcompress")
register_resolvers()


def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint to resume from, per ``cfg.resume`` (see conf/base.yaml)."""
    if cfg.resume is False or cfg.resume is None:
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
    _check_resumable(path, cfg)
    return str(path)


def _check_resumable(path: Path, cfg: DictConfig) -> None:
    """Refuse (before training) to resume a checkpoint written by another stage or task."""
    meta = torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("lmcompress")
    want = {"module": cfg.module._target_.rsplit(".", 1)[-1], "task": cfg.task.name}
    if meta is not None and meta != want:
        raise ValueError(
            f"resume: {path} was written by {meta['module']} on task {meta['task']!r}, but this "
            f"run is {want['module']} on task {want['task']!r}; use another hydra.run.dir, or "
            "resume=false to start over there")


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _metrics(results: list[dict[str, Any]]) -> dict[str, float]:
    return {k: float(v) for r in results for k, v in r.items()}


def _export(module: pl.LightningModule, datamodule: Any, out: Path, best: str) -> str:
    """Load the best weights and save model + tokenizer for ``AutoModelFor*.from_pretrained``."""
    if best:
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state, strict=False)
    export_dir = out / "export"
    module.export_model().save_pretrained(export_dir)
    datamodule.tokenizer.save_pretrained(export_dir)
    return str(export_dir)


def publish(export_dir: str, artifact_dir: str, name: str) -> str:
    """Copy an export to ``<artifact_dir>/teachers/<name>`` (replacing it only once complete)."""
    target = Path(artifact_dir) / "teachers" / name
    staging = target.with_name(f".{name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(export_dir, staging)
    old = target.with_name(f".{name}.old")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("published %s -> %s", export_dir, target)
    return str(target)


@task_wrapper
def run_stage(cfg: DictConfig) -> dict[str, Any]:
    """Run one stage as configured; returns the dict written to ``metrics.json``."""
    start = time.time()
    out = Path(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    sizes = datamodule.validate()  # bad data fails here, before any model is built
    log.info("data: %s", sizes)
    module = instantiate_plain(cfg.module)
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    callbacks = build_callbacks(cfg.get("callbacks"))
    if not interactive:
        callbacks.append(PlainProgress(cfg.log_every_n_steps))
    loggers = build_loggers(cfg.get("logger"), cfg)
    trainer: pl.Trainer = instantiate_plain(
        cfg.trainer, callbacks=callbacks, logger=loggers or False,
        enable_progress_bar=interactive, enable_checkpointing=bool(cfg.get("callbacks")),
    )
    ckpt = resume_checkpoint(cfg)
    if ckpt:
        log.info("resuming from %s", ckpt)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
    selected = best or None
    val = _metrics(trainer.validate(module, datamodule=datamodule, ckpt_path=selected,
                                    verbose=False))
    test = {}
    if cfg.test and cfg.data.test_split:
        test = _metrics(trainer.test(module, datamodule=datamodule, ckpt_path=selected,
                                     verbose=False))
    if not trainer.is_global_zero:
        return {}
    result = {
        "stage": cfg.task_name,
        "task": cfg.task.name,
        "seed": cfg.seed,
        "main_metric": f"val/{cfg.task.main_metric}",
        "val": val,
        "test": test,
        "best_checkpoint": best,
        "resumed_from": ckpt,
        "global_step": trainer.global_step,
        "epochs_completed": trainer.current_epoch,
        "data_sizes": sizes,
        "model": model_stats(module.export_model()),
        "world_size": trainer.world_size,
        "export_dir": _export(module, datamodule, out, best) if cfg.export else None,
        "wall_time_s": round(time.time() - start, 1),
        "overrides": _overrides(),
    }
    if cfg.get("publish_as") and result["export_dir"]:
        result["published"] = publish(result["export_dir"], cfg.paths.artifact_dir, cfg.publish_as)
    write_json_atomic(out / "metrics.json", result)
    log.info("val %s test %s -> %s", val, test, out / "metrics.json")
    return result


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="teacher")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the dev main metric for sweepers."""
    result = run_stage(cfg)
    return result.get("val", {}).get(f"val/{cfg.task.main_metric}")


if __name__ == "__main__":
    main()
