"""Killing a run mid-epoch and re-running the same command resumes from checkpoints/last.ckpt."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from conftest import REPO, TINY, run_cli


@pytest.mark.slow
def test_kill_mid_epoch_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    # 64 examples / batch 8 = 8 steps per epoch, 2 epochs = 16 steps; last.ckpt every 5 steps
    args = ["-cn", "teacher", *TINY, "data.batch_size=8", "trainer.max_epochs=2",
            "checkpoint_every_n_steps=5", f"hydra.run.dir={run_dir}"]
    killed = run_cli(*args, "+callbacks.killer._target_=tests.helpers.kill.KillAtStep",
                     "+callbacks.killer.step=7", env={"PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (run_dir / "metrics.json").exists()
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 5 and ckpt["epoch"] == 0  # mid-epoch 0

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"] == str(last)
    assert metrics["global_step"] == 16  # continued to the planned total, not restarted
    assert metrics["epochs_completed"] == 2
