"""hardware=ddp_sim: two CPU processes (gloo) run to the end with the documented step count."""

from __future__ import annotations

import json
import math

import pytest
import torch

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


NO_DROPOUT = [f"+{m}.config.{p}=0.0" for m in ("teacher", "student")
              for p in ("hidden_dropout_prob", "attention_probs_dropout_prob")]


@pytest.mark.slow
def test_ddp_sim_distill_weights_equal_the_single_process_run(tmp_path, make_cfg):
    """Two ranks of 8 examples each end with the weights of one process on the same 16.

    Each epoch is one step on the whole training set (16 examples, batch 16), so both runs see
    the same examples per step whatever the shard order; the loss (0.1 CE + 0.9 KD) is a mean
    over examples and dropout is off, so the all-reduced mean gradient is the single run's.
    """
    from transformers import AutoModelForSequenceClassification

    from lmcompress.run import run_stage

    student = [o for o in TINY if not o.startswith(("model=", "trainer.max_epochs"))]
    common = [*student, "teacher=tiny", "student=tiny", "loss=kd", "task.source.n_train=16",
              "trainer.max_epochs=2", "test=false", *NO_DROPOUT]
    run_dir = tmp_path / "ddp_weights"
    proc = run_cli("-cn", "distill", *common, "hardware=ddp_sim", f"hydra.run.dir={run_dir}",
                   timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((run_dir / "metrics.json").read_text())
    assert ddp["world_size"] == 2 and ddp["global_step"] == 2
    single = run_stage(make_cfg("distill", *[o for o in common if o != "logger=csv"]))
    assert single["world_size"] == 1 and single["global_step"] == 2
    a = AutoModelForSequenceClassification.from_pretrained(ddp["export_dir"]).state_dict()
    b = AutoModelForSequenceClassification.from_pretrained(single["export_dir"]).state_dict()
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)
