"""Killing a run mid-epoch and re-running the same command resumes exactly where it stopped."""

from __future__ import annotations

import csv
import json
import os
import signal

import pytest
import torch
from safetensors.torch import load_file

from helpers.cli import REPO, TINY, run_cli

# tests.helpers.kill for the killer callback, and this checkout's own code (src/) first
PATHS = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}


def _csv_rows(run_dir) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open() as f:
        return [{k: v for k, v in row.items() if v != "" and not k.startswith("model/")}
                for row in csv.DictReader(f)]


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path):
    # 64 examples / batch 8 = 8 steps per epoch, 2 epochs = 16 steps; last.ckpt every 5 steps
    args = ["-cn", "teacher", *TINY, "data.batch_size=8", "trainer.max_epochs=2",
            "checkpoint_every_n_steps=5", "trainer.deterministic=true", "log_every_n_steps=1",
            "module.optim.lr=1e-3"]
    straight, run_dir = tmp_path / "straight", tmp_path / "run"
    done = run_cli(*args, f"hydra.run.dir={straight}")
    assert done.returncode == 0, done.stderr[-3000:]

    killed = run_cli(*args, f"hydra.run.dir={run_dir}",
                     "+callbacks.killer._target_=tests.helpers.kill.KillAtStep",
                     "+callbacks.killer.step=7", env=PATHS)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (run_dir / "metrics.json").exists()
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 5 and ckpt["epoch"] == 0  # mid-epoch 0

    resumed = run_cli(*args, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    assert "not resumable" not in resumed.stderr + resumed.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    reference = json.loads((straight / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(last)
    assert metrics["global_step"] == reference["global_step"] == 16
    assert metrics["val"] == reference["val"] and metrics["test"] == reference["test"]
    for a, b in ((load_file(straight / "export" / "model.safetensors"),
                  load_file(run_dir / "export" / "model.safetensors")),
                 (torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)[
                     "state_dict"], torch.load(last, weights_only=True)["state_dict"])):
        assert a.keys() == b.keys()
        for key in a:  # bit for bit: same batches, same dropout masks, same updates
            torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
    # the history logged before the kill is kept, and equals the uninterrupted run's
    assert _csv_rows(run_dir) == _csv_rows(straight)


@pytest.mark.slow
def test_ddp_kill_mid_epoch_then_resume_equals_the_uninterrupted_ddp_run(tmp_path):
    # two gloo processes x 4 examples, 8 steps per epoch, dropout on: every rank's data shard and
    # dropout masks must resume where they were (one rank's generators in the checkpoint, or
    # Lightning's stateless sampler wrapper, broke this; docs/launch.md)
    args = ["-cn", "teacher", *TINY, "hardware=ddp_sim", "data.batch_size=8",
            "trainer.max_epochs=2", "checkpoint_every_n_steps=5", "log_every_n_steps=1",
            "module.optim.lr=1e-3", "test=false"]
    straight, run_dir = tmp_path / "straight", tmp_path / "run"
    done = run_cli(*args, f"hydra.run.dir={straight}", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = run_cli(*args, f"hydra.run.dir={run_dir}",
                     "+callbacks.killer._target_=tests.helpers.kill.KillAtStep",
                     "+callbacks.killer.step=7", env=PATHS, timeout=900)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 5 and ckpt["epoch"] == 0
    states = ckpt["callbacks"]["ExactResume"]["rng_per_rank"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])

    resumed = run_cli(*args, f"hydra.run.dir={run_dir}", timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    reference = json.loads((straight / "metrics.json").read_text())
    assert metrics["global_step"] == reference["global_step"] == 16
    assert metrics["world_size"] == reference["world_size"] == 2
    assert metrics["val"] == reference["val"]
    a = load_file(straight / "export" / "model.safetensors")
    b = load_file(run_dir / "export" / "model.safetensors")
    for key in a:  # bit for bit: same shards, same per-rank dropout masks, same updates
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow
def test_resume_refuses_a_different_config_naming_the_keys(tmp_path):
    run_dir = tmp_path / "run"
    args = ["-cn", "teacher", *TINY, "data.batch_size=8", "trainer.max_epochs=2",
            "checkpoint_every_n_steps=3", f"hydra.run.dir={run_dir}"]
    killed = run_cli(*args, "+callbacks.killer._target_=tests.helpers.kill.KillAtStep",
                     "+callbacks.killer.step=4", env=PATHS)
    assert killed.returncode == -signal.SIGKILL
    other = run_cli(*args, "seed=7", "module.optim.lr=1e-4")
    assert other.returncode != 0
    text = other.stderr + other.stdout
    assert "trained with another config" in text and "seed: 42 -> 7" in text
    assert "module.optim.lr" in text and "resume=false" in text


def test_truncated_checkpoint_gets_the_projects_message(tmp_path, make_cfg):
    from lmcompress.utils.checkpoints import CheckpointError, resume_checkpoint

    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    cfg = make_cfg("teacher", run_dir=run_dir)
    with pytest.raises(CheckpointError, match=r"last.ckpt is not a readable .*resume=false"):
        resume_checkpoint(cfg, "TeacherModule")


def test_failed_save_leaves_no_truncated_checkpoint(tmp_path, monkeypatch):
    from lmcompress.utils.checkpoints import AtomicCheckpointIO

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    target = tmp_path / "checkpoints" / "best-epoch00-step4.ckpt"
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, target)
    assert not target.exists() and list(target.parent.iterdir()) == []


def test_a_checkpoint_of_two_processes_is_refused_by_one():
    from lmcompress.callbacks.exact_resume import ExactResume
    from lmcompress.utils import rng

    state = rng.capture()
    with pytest.raises(ValueError, match=r"written by 2 processes and 1 resume it"):
        ExactResume().load_state_dict({"rng": state, "rng_per_rank": [state, state]})
    ExactResume().load_state_dict({"rng": state, "rng_per_rank": [state]})  # as many: accepted
