"""The single entry point: ``python -m lmcompress.run -cn <stage> [overrides]`` (or ``lmcompress``).

seed -> validate data and settings -> build module -> fit (resuming from last.ckpt) ->
evaluate the best checkpoint on dev, test and report splits (every sub-model) -> export each
sub-model with ``save_pretrained`` -> write ``metrics.json`` atomically. Anything wrong stops the
run before ``metrics.json`` is written.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from lmcompress.callbacks.divergence import build_divergence
from lmcompress.callbacks.exact_resume import ExactResume
from lmcompress.callbacks.progress import PlainProgress
from lmcompress.deploy.card import write_cards
from lmcompress.models.hub import model_stats
from lmcompress.modules.protocol import Stage, check_stage
from lmcompress.specs import TaskSpec, parse
from lmcompress.utils import artifacts
from lmcompress.utils.checkpoints import AtomicCheckpointIO, resume_checkpoint, run_identity
from lmcompress.utils.checks import (
    check_groups,
    check_launch,
    check_max_length,
    check_plan,
    check_seed,
    check_took_steps,
)
from lmcompress.utils.device import set_matmul_precision
from lmcompress.utils.evaluation import dev_lines, evaluate, submodel_entries
from lmcompress.utils.instantiate import build_callbacks, build_loggers, instantiate_plain
from lmcompress.utils.io import write_json_atomic
from lmcompress.utils.latency import measure_latency
from lmcompress.utils.logs import quiet_libraries
from lmcompress.utils.paths import check_code_matches_checkout, conf_dir, register_resolvers
from lmcompress.utils.preflight import PreflightSpec, check_teacher
from lmcompress.utils.run_lock import run_folder_lock
from lmcompress.utils.task_wrapper import Interrupted, task_wrapper

log = logging.getLogger("lmcompress")
register_resolvers()


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured callbacks, loggers, atomic saves."""
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    callbacks = [*build_callbacks(cfg.get("callbacks")), ExactResume(),
                 *build_divergence(cfg.get("divergence"))]
    if not interactive:
        callbacks.append(PlainProgress(cfg.log_every_n_steps))
    return instantiate_plain(
        cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg.get("logger"), cfg) or False,
        enable_progress_bar=interactive, enable_checkpointing=bool(cfg.get("callbacks")),
        plugins=[AtomicCheckpointIO()],
        # the data modules shard every loader themselves (data/loader.py): Lightning's wrapper
        # would reshuffle the training order and has no state to resume from
        use_distributed_sampler=False)


@task_wrapper
def run_stage(cfg: DictConfig) -> dict[str, Any]:
    """Run one stage as configured; returns the dict written to ``metrics.json``."""
    with run_folder_lock(cfg.paths.output_dir):  # one process per run folder
        return _stage(cfg)


def _stage(cfg: DictConfig) -> dict[str, Any]:
    start, out = time.time(), Path(cfg.paths.output_dir)
    check_seed(cfg)
    check_groups(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    check_launch(cfg)
    if cfg.fit:
        check_plan(cfg)
    publish_to = (artifacts.publish_target(cfg.paths.artifact_dir, cfg.publish_as,
                                           cfg.get("publish_overwrite", False))
                  if cfg.get("publish_as") and cfg.export else None)
    task = parse(TaskSpec, cfg.task, "task")
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    sizes = datamodule.validate(task)  # bad data fails here, before any model is built
    log.info("data: %s", sizes)
    module: Stage = check_stage(instantiate_plain(cfg.module), cfg.module._target_)
    check_max_length(module, datamodule.max_length)
    preflight = check_teacher(module, datamodule, parse(
        PreflightSpec, cfg.get("preflight") or {}, "preflight")) if cfg.fit else None
    module.run_identity = run_identity(cfg)
    trainer = build_trainer(cfg)
    set_matmul_precision(trainer, cfg.get("matmul_precision", "high"))
    ckpt = resume_checkpoint(cfg, type(module).__name__) if cfg.fit else None
    if ckpt:
        log.info("resuming from %s", ckpt)
    if cfg.fit:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        if trainer.received_sigterm:  # Lightning stops its loops on SIGTERM: not a finished fit
            raise Interrupted(signal.SIGTERM)
        check_took_steps(trainer)
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    scores = evaluate(trainer, module, datamodule, best, out, cfg)
    if not trainer.is_global_zero:
        return {}
    if best:
        artifacts.load_weights(module, best)
    exports = artifacts.export(module, datamodule.tokenizer, out) if cfg.export else {}
    result = {
        "status": "ok", "stage": cfg.task_name, "task": cfg.task.name, "seed": cfg.seed,
        "main_metric": f"val/{cfg.task.main_metric}", **scores,
        "best_checkpoint": best or "", "resumed_from": ckpt, "global_step": trainer.global_step,
        "epochs_completed": trainer.current_epoch, "data_sizes": sizes,
        "model": stats(module.export_models().get("", module.model), cfg),
        "world_size": trainer.world_size, "export_dir": exports.get(""),
        "wall_time_s": round(time.time() - start, 1), "overrides": _overrides(),
        **module.provenance(), **({"preflight": preflight} if preflight else {}),
    }
    if "" not in module.subnets():
        result["submodels"] = submodel_entries(module, scores, exports,
                                               lambda model: stats(model, cfg))
    write_cards(result, cfg)  # README.md + lmcompress_export.json per export, before publishing
    if publish_to is not None:
        result["published"] = artifacts.publish(
            exports[module.published_submodel], publish_to)
    delete = bool(cfg.get("delete_checkpoints") and exports)
    result["checkpoints_deleted"] = delete
    write_json_atomic(out / "metrics.json", result)
    if delete:
        artifacts.delete_checkpoints(out)
    for line in dev_lines(scores["val"], module.subnets(), getattr(module, "aggregate", "mean")):
        log.info("%s", line)
    log.info("run folder: %s", out)
    return result


def stats(model: Any, cfg: DictConfig) -> dict[str, float]:
    """Parameter counts and size; with ``latency:`` set, the measured inference latency too."""
    out = model_stats(model)
    if cfg.get("latency"):
        out.update(measure_latency(model, **cfg.latency))
    return out


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="teacher")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the dev main metric for sweepers."""
    quiet_libraries()
    result = run_stage(cfg)
    return result.get("val", {}).get(f"val/{cfg.task.main_metric}")


def cli() -> None:
    """``lmcompress`` / ``python -m lmcompress.run``: refuse mixed checkouts, then run Hydra."""
    check_code_matches_checkout()
    main()


if __name__ == "__main__":
    cli()
