"""Multiruns as users launch them: wandb runs per job, failures, submitit, Optuna, recipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from helpers.cli import REPO, TINY, run_cli
from helpers.wandb_records import read_offline_run
from lmcompress.utils.paths import conf_dir


def _jobs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name))


@pytest.mark.slow
def test_offline_wandb_multirun_leaves_one_run_per_job_with_its_metrics(tmp_path):
    proc = run_cli("-m", "-cn", "teacher", *[o for o in TINY if not o.startswith("logger")],
                   "seed=1,2", "+sweep_id=wandb_check", f"hydra.sweep.dir={tmp_path}",
                   env={"WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in _jobs(tmp_path):
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        run = read_offline_run(runs[0])
        metrics = json.loads((job / "metrics.json").read_text())
        assert run["group"] == "wandb_check" and run["job_type"] == "teacher"
        assert run["config"]["seed"] == metrics["seed"] and "trainer" in run["config"]
        assert run["summary"]["val/accuracy"] == pytest.approx(metrics["val"]["val/accuracy"])
        assert "train/loss" in run["history_keys"]


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_sweep_and_the_report_lists_it(tmp_path):
    proc = run_cli("-m", "-cn", "teacher", *TINY, "data.max_length=600,32",
                   f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode != 0  # the multirun reports the failure at the end
    jobs = _jobs(tmp_path)
    assert not (jobs[0] / "metrics.json").exists() and (jobs[1] / "metrics.json").is_file()
    report = subprocess.run([sys.executable, "-m", "lmcompress.report", str(tmp_path)],
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "1 failed or missing" in report.stdout and "data.max_length=600" in report.stdout
    assert "exceeds the model's 512 position embeddings" in report.stdout


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_two_job_sweep(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    proc = run_cli("-m", "-cn", "teacher", *TINY, "seed=1,2", "+launcher=local",
                   f"hydra.sweep.dir={tmp_path}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seeds = sorted(json.loads((j / "metrics.json").read_text())["seed"] for j in _jobs(tmp_path))
    assert seeds == [1, 2] and list((tmp_path / ".submitit").iterdir())
    assert not list(tmp_path.rglob("%j")), "a literal %j folder: submitit_folder in launcher/local"


@pytest.mark.slow
def test_optuna_sweep_runs_trials_and_reports_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    base = [o for o in TINY if not o.startswith("model=")]
    proc = run_cli("-cd", str(REPO / "sweeps" / "hp_ckd_sst2_cpu"), "-cn", "sweep", *base,
                   "task=tiny", "teacher=tiny", "student=tiny", "~experiment",
                   "data.train_limit=null", "hydra.sweeper.n_trials=2",
                   f"hydra.sweep.dir={tmp_path}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_jobs(tmp_path)) == 2
    best = (tmp_path / "optimization_results.yaml").read_text()
    assert "best_params" in best and "loss.temperature" in best


def _compose(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_and_multinode_ddp_compose_consistently():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = _compose("distill", ["+launcher=slurm", "hardware=ddp_multinode"])
    launcher = cfg.hydra.launcher
    assert "SlurmLauncher" in launcher._target_ and launcher.max_num_timeout == 0
    assert launcher.nodes == cfg.trainer.num_nodes == 2
    assert launcher.tasks_per_node == launcher.gpus_per_node == cfg.trainer.devices == 4
    single = _compose("teacher", ["+launcher=slurm", "hardware=bf16_mixed"])
    assert single.hydra.launcher.tasks_per_node == single.hydra.launcher.nodes == 1


@pytest.mark.slow
def test_ddp_inside_a_basic_launcher_multirun_is_refused(tmp_path):
    proc = run_cli("-m", "-cn", "teacher", *TINY, "hardware=ddp_sim", "seed=1,2",
                   f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode != 0
    assert "+launcher=slurm" in proc.stderr + proc.stdout
    assert not list(tmp_path.glob("*/metrics.json"))


@pytest.mark.slow
def test_chained_recipe_runs_every_stage_and_skips_them_when_rerun(tmp_path):
    command = [sys.executable, "-m", "lmcompress.recipe", str(REPO / "recipes" / "tiny.yaml"),
               "--out", str(tmp_path)]
    env = {**__import__("os").environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "CI": "1"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]
    steps = ["teacher", "student", "dynabert_w", "dynabert_wd", "amoc"]
    metrics = {s: json.loads((tmp_path / s / "metrics.json").read_text()) for s in steps}
    assert metrics["student"]["teacher"]["name_or_path"] == str(
        Path(metrics["teacher"]["export_dir"]).resolve())
    assert metrics["dynabert_wd"]["teacher"]["name_or_path"].endswith("w1.00_d1.00")
    assert (tmp_path / "amoc" / "amoc" / "candidates.csv").is_file()
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and again.stdout.count("skipped") == len(steps)


@pytest.mark.parametrize("override", ["trainer.devices=-1", "trainer.devices=auto"])
def test_slurm_refuses_a_job_sized_all_gpus_and_takes_a_stated_count(override):
    """hardware=ddp asks for devices=-1: SLURM would be asked for -1 tasks and GPUs per node."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from omegaconf.errors import InterpolationResolutionError

    from lmcompress.utils.paths import register_resolvers

    register_resolvers()
    cfg = _compose("teacher", ["+launcher=slurm", "hardware=ddp", override])
    with pytest.raises(InterpolationResolutionError, match=r"trainer.devices=.*GPUs per node"):
        _ = cfg.hydra.launcher.tasks_per_node
    sized = _compose("teacher", ["+launcher=slurm", "hardware=ddp", "trainer.devices=4"])
    assert sized.hydra.launcher.tasks_per_node == sized.hydra.launcher.gpus_per_node == 4
