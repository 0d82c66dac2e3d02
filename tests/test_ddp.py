"""hardware=ddp_sim: two CPU processes (gloo) run to the end with the documented step count."""

from __future__ import annotations

import json
import math

import pytest

from helpers.cli import TINY, run_cli


@pytest.mark.slow
def test_ddp_sim_global_batch_arithmetic(tmp_path):
    n_train, batch, world, epochs = 70, 16, 2, 2
    run_dir = tmp_path / "ddp"
    # odd dev/test sizes: the two ranks get uneven evaluation shards (33 = 17 + 16, 31 = 16 + 15)
    proc = run_cli("-cn", "teacher", *TINY, "hardware=ddp_sim", f"task.source.n_train={n_train}",
                   "task.source.n_validation=33", "task.source.n_test=31",
                   f"data.batch_size={batch}", f"trainer.max_epochs={epochs}",
                   f"hydra.run.dir={run_dir}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # each process gets ceil(N / W) examples in batches of B / W (conf/data/default.yaml)
    steps_per_epoch = math.ceil(math.ceil(n_train / world) / (batch // world))
    assert metrics["world_size"] == world
    assert metrics["global_step"] == epochs * steps_per_epoch == 10
    assert metrics["data_sizes"] == {"train": n_train, "validation": 33, "test": 31}
    # every example evaluated once: accuracy is a multiple of 1/33 and 1/31
    assert round(metrics["val"]["val/accuracy"] * 33, 4).is_integer()
    assert round(metrics["test"]["test/accuracy"] * 31, 4).is_integer()


@pytest.mark.slow
def test_ddp_sim_distill_with_ckd(tmp_path):
    """The frozen teacher lives inside the DDP-wrapped module; CKD terms run on each rank."""
    run_dir = tmp_path / "ddp_distill"
    student = [o for o in TINY if not o.startswith("model=")]
    proc = run_cli("-cn", "distill", *student, "teacher=tiny", "student=tiny", "loss=kd_ckd",
                   "hardware=ddp_sim", "task.source.n_train=70", "trainer.max_epochs=2",
                   f"hydra.run.dir={run_dir}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["stage"] == "distill" and metrics["world_size"] == 2
    assert metrics["global_step"] == 2 * math.ceil(35 / 8) == 10  # batch 16 = 8 per process
    logged = (run_dir / "csv" / "metrics.csv").read_text()
    assert all(f"train/loss_{t}" in logged for t in ("kd", "wr_triple", "ltr_triple"))
