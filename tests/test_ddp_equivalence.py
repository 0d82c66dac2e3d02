"""hardware=ddp_sim (2 gloo processes × batch B/2) ends with one process's weights at batch B.

Dropout is off and one epoch is two optimizer steps of 16 over 32 shuffled examples: the two
ranks' shards of each step are the single process's batch (``data.loader.ShardedRandomSampler``;
Lightning's sampler wrapper reshuffled them, and a whole-set step hid that); every loss is a mean
over the step's examples (CKD's counts are the global batch's, docs/ckd.md §13), so
DDP's mean of the two ranks' gradients is the single run's gradient (within float32 rounding).
Every stage: teacher, distillation (KD + CKD) and DynaBERT (both phases: every sub-network's
gradient accumulated, one all-reduce, one step). The communication counts come from
``callbacks/comm_count.py``. Figures: docs/launch.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers.cli import TINY, run_cli

COUNT = ["+callbacks.comm._target_=lmcompress.callbacks.comm_count.CommCount"]
STUDENT = [o for o in TINY if not o.startswith(("model=", "trainer.max_epochs"))]
COMMON = ["task.source.n_train=32", "trainer.max_epochs=1", "test=false"]


def _no_dropout(*models: str) -> list[str]:
    return [f"+{m}.config.{p}=0.0" for m in models
            for p in ("hidden_dropout_prob", "attention_probs_dropout_prob")]


PADDED = ["data.pad_to_max_length=true", "data.max_length=64"]
STAGES = {
    "teacher": ["-cn", "teacher", *TINY[:1], *STUDENT, *_no_dropout("model")],
    "distill_kd_ckd": ["-cn", "distill", *STUDENT, "teacher=tiny", "student=tiny", "loss=kd_ckd",
                       *_no_dropout("teacher", "student")],
    # DynaBERT's hidden MSE includes padding (official; losses/hidden.py): pad every batch alike
    # phase 1 with CKD as its distillation objective (counts shared per sub-network)
    "dynabert_width_ckd": ["-cn", "dynabert", *STUDENT, "teacher=tiny", "loss=dynabert_ckd",
                           *PADDED, "teacher.config.num_attention_heads=4",
                           *_no_dropout("teacher")],
    "dynabert_width_depth": ["-cn", "dynabert", *STUDENT, "teacher=tiny", "phase=width_depth",
                             *PADDED,
                             "teacher.config.num_attention_heads=4", *_no_dropout("teacher")],
}
BUCKETS = {"teacher": 1, "distill_kd_ckd": 1, "dynabert_width_ckd": 0, "dynabert_width_depth": 0}
"""DDP gradient buckets all-reduced per step (the tiny models fit one 25 MB bucket)."""
CALLS = {"teacher": 1, "distill_kd_ckd": 5, "dynabert_width_ckd": 17, "dynabert_width_depth": 1}
"""Python all_reduce calls per step: the finite-loss flag (teacher, distill) or DynaBERT's single
coalesced gradient reduction, which carries the flag; plus one count per CKD term and
sub-network (the global batch's tokens, docs/ckd.md §13): 4 terms, 4 widths."""


def _weights(metrics: dict) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForSequenceClassification

    import lmcompress  # noqa: F401  (registers the sliced-BERT classes)

    export = metrics["export_dir"] or metrics["submodels"]["w1.00_d1.00"]["export_dir"]
    return AutoModelForSequenceClassification.from_pretrained(export).state_dict()


def _run(args: list[str], run_dir: Path, *extra: str) -> dict:
    proc = run_cli(*args, *COMMON, *COUNT, *extra, f"hydra.run.dir={run_dir}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_two_processes_end_with_the_single_process_weights(tmp_path, stage):
    ddp = _run(STAGES[stage], tmp_path / "ddp", "hardware=ddp_sim")
    single = _run(STAGES[stage], tmp_path / "single")
    assert (ddp["world_size"], single["world_size"]) == (2, 1)
    assert ddp["global_step"] == single["global_step"] == 2
    a, b = _weights(ddp), _weights(single)
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"{stage}: max |w_ddp - w_single| = {worst:.3g}")  # quoted in docs/launch.md
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=2e-6, msg=name)
    counts = json.loads((tmp_path / "ddp" / "comm_counts.json").read_text())["steps"]
    # one gradient reduction per optimizer step: a DDP bucket, or DynaBERT's coalesced call
    assert counts == [{"buckets": BUCKETS[stage], "all_reduce": CALLS[stage]}] * 2, counts
