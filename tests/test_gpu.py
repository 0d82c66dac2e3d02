"""One smoke run per stage on a CUDA device with bf16 autocast (``pytest -m gpu``).

Skipped here (no CUDA). On a GPU machine: ``PYTHONPATH=$PWD/src python -m pytest -m gpu
tests/test_gpu.py``; each run is a tiny random model on generated data, seconds each.
"""

from __future__ import annotations

import math

import pytest
import torch

from lmcompress.run import run_stage

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is "
    "False); run `pytest -m gpu tests/test_gpu.py` on a GPU machine")]

BF16 = ["hardware=bf16_mixed", "trainer.max_steps=3", "test=false", "export=false"]
STAGES = {
    "teacher": ("teacher", []),
    "distill": ("distill", ["teacher=tiny", "student=tiny", "loss=kd_ckd"]),
    "dynabert": ("dynabert", ["teacher=tiny", "student=tiny"]),
    "amoc": ("amoc_tiny", ["callbacks.amoc.features_only=true", "callbacks.amoc.budgets=[1]",
                           "callbacks.amoc.independent_subset=0"]),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_runs_on_cuda_in_bf16(make_cfg, stage):
    if stage in ("teacher", "distill") and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    name, overrides = STAGES[stage]
    result = run_stage(make_cfg(name, *overrides, *BF16))
    assert result["global_step"] >= 1
    assert all(math.isfinite(v) for v in result["val"].values() if isinstance(v, float))
