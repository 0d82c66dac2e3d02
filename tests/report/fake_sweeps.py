"""Fake Hydra multirun folders (no training): what ``lmcompress.run`` leaves behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# The MRPC-like sweep below: dev F1 / accuracy per (loss, seed); kd seed 4 fails, kd_ckd seed 4
# never starts (the basic launcher stopped at the failure).
F1 = {"kd": {1: 0.80, 2: 0.82, 3: 0.81}, "kd_ckd": {1: 0.83, 2: 0.82, 3: 0.85}}
ACC = {"kd": {1: 0.70, 2: 0.72, 3: 0.71}, "kd_ckd": {1: 0.74, 2: 0.73, 3: 0.76}}
ERROR = "RuntimeError: DefaultCPUAllocator: not enough memory"


def write_multirun(sweep: Path, params: dict[str, str], task: list[str] | None = None,
                   config_dir: Path | None = None, target: str = BASIC_SWEEPER) -> None:
    sources = [{"path": "hydra.conf", "schema": "pkg", "provider": "hydra"}]
    if config_dir is not None:
        sources.append({"path": str(config_dir), "schema": "file", "provider": "command-line"})
    hydra = {"sweeper": {"_target_": target, "max_batch_size": None, "params": params},
             "overrides": {"hydra": [f"hydra.sweep.dir={sweep}"], "task": task or []},
             "runtime": {"config_sources": sources}}
    sweep.mkdir(parents=True, exist_ok=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "sweep_id": "fake"}))


def write_job(sweep: Path, number: int, overrides: list[str], metrics: dict[str, Any] | None,
              log: str | None = None) -> Path:
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text("seed: 0\n")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if log is not None:
        (job / "run.log").write_text(log)
    return job


def job_metrics(seed: int, val: dict[str, float], params: int = 17_000_000,
                layers: int = 3, hidden: int = 384, **extra: Any) -> dict[str, Any]:
    return {"stage": "distill", "task": "glue_mrpc", "seed": seed, "main_metric": "val/f1",
            "val": val, "test": {}, "reports": {}, "wall_time_s": 60.0 + seed,
            "model": {"params_total": params, "num_layers": layers, "hidden_size": hidden,
                      "size_mb": params * 4 / 2**20, "latency_ms_b1": params / 1e6},
            "teacher": {"name_or_path": "teacher/", "sha256": "0" * 64}, **extra}


def mrpc_sweep(root: Path) -> Path:
    """loss in {kd, kd_ckd} x seed in range(1, 5) + trainer.max_epochs=1: 8 planned jobs."""
    sweep = root / "ckd_mrpc"
    write_multirun(sweep, {"loss": "kd,kd_ckd", "seed": "range(1,5)"}, ["trainer.max_epochs=1"])
    number = 0
    for loss in ("kd", "kd_ckd"):
        for seed in (1, 2, 3):
            overrides = [f"loss={loss}", f"seed={seed}", "trainer.max_epochs=1"]
            val = {"val/f1": F1[loss][seed], "val/accuracy": ACC[loss][seed]}
            write_job(sweep, number, overrides, job_metrics(seed, val))
            number += 1
        if loss == "kd":
            log = ("[2026-11-25 10:00:00,000][lmcompress][INFO] - data: {}\n"
                   "[2026-11-25 10:00:05,000][lmcompress][ERROR] - stage failed\n"
                   "Traceback (most recent call last):\n  File \"run.py\", line 1, in <module>\n"
                   f"{ERROR}\n")
            write_job(sweep, number, ["loss=kd", "seed=4", "trainer.max_epochs=1"], None, log)
            number += 1
    return sweep  # job 7 (loss=kd_ckd seed=4) has no folder
