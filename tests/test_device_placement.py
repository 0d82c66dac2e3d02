"""What a first GPU run would hit, shown on CPU: tensors built without a device (issue 19).

NCCL all-reduces only CUDA tensors and CUDA kernels refuse CPU indices, while gloo on CPU accepts
everything, so ``hardware=ddp_sim`` cannot show these. The checks use the ``meta`` device as a
stand-in for a GPU, or read the source where no CPU run can tell.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from lmcompress.metrics import TaskMetrics, matthews

SRC = Path(__file__).resolve().parents[1] / "src" / "lmcompress"
FACTORIES = {"tensor", "zeros", "ones", "full", "empty", "arange", "zeros_like"}


def _factory_calls_without_device(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                and node.func.attr in FACTORIES
                and not any(k.arg == "device" for k in node.keywords)):
            bad.append(f"{path.name}:{node.lineno} torch.{node.func.attr}")
    return bad


@pytest.mark.parametrize("rel", ["metrics.py", "modules/base.py", "modules/dynabert.py",
                                 "modules/distill.py", "modules/teacher.py"])
def test_tensors_logged_or_indexed_are_built_on_a_device(rel):
    """Every torch factory call in the metric and module code names its device."""
    assert _factory_calls_without_device(SRC / rel) == []


def test_metric_values_are_on_the_metric_device():
    """``compute()`` returns tensors on the metric's device (sync_dist all-reduces them)."""
    metrics = TaskMetrics("classification", ["accuracy", "matthews"], 2)
    metrics.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    metrics._device = torch.device("meta")  # what .to("cuda") sets, without moving the states
    values = metrics.compute()
    assert {v.device.type for v in values.values()} == {"meta"}


def test_matthews_confusion_matrix_follows_the_predictions_device(monkeypatch):
    """CoLA's MCC indexes its confusion matrix with the predictions: both on one device."""
    devices = []
    real_zeros = torch.zeros

    def spy(*args, **kwargs):
        out = real_zeros(*args, **kwargs)
        devices.append(out.device.type)
        return out

    monkeypatch.setattr(torch, "zeros", spy)
    preds, target = torch.tensor([0, 1, 1], device="meta"), torch.tensor([0, 1, 0], device="meta")
    with pytest.raises((RuntimeError, NotImplementedError)) as err:
        matthews(preds, target, 2)  # a meta tensor has no value: float() refuses at the end
    assert devices == ["meta"], err.value
