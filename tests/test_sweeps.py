"""The pattern sweep is a Hydra multirun: one metrics.json and one offline wandb run per job."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.cli import REPO, run_cli


@pytest.mark.slow
def test_teacher_tiny_sweep(tmp_path):
    proc = run_cli("-cd", str(REPO / "sweeps" / "teacher_tiny"), "-cn", "sweep",
                   f"hydra.sweep.dir={tmp_path}", "trainer.max_epochs=1",
                   env={"WANDB_MODE": "offline"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        seen.add((metrics["task"], metrics["seed"]))
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, f"{job}: {runs}"
        assert list(runs[0].glob("*.wandb")), "offline run has no data file"
    assert len(seen) == 4  # 2 tasks x 2 seeds, each job its own output dir
    report = subprocess.run(
        [sys.executable, "-m", "lmcompress.report", str(tmp_path),
         "--config", str(REPO / "sweeps" / "teacher_tiny" / "report.yaml")],
        capture_output=True, text=True, check=True).stdout
    rows = [line for line in report.splitlines() if line.startswith("| tiny")]
    assert len(rows) == 2 and all("± " in row for row in rows)  # 2 task rows with 2 seeds each
    assert "0 failed or missing" in report
    assert (tmp_path / "report" / "teacher_tiny.md").is_file()
