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


@pytest.mark.parametrize("rank", [0, 1])
def test_ddp_predictions_are_gathered_and_written_by_rank_zero_alone(tmp_path, monkeypatch, rank):
    """Each rank predicts its shard; one file holds every example once, written by rank 0."""
    import torch.distributed as dist

    from lmcompress.utils.evaluation import write_gathered_predictions

    shards = [[{"index": torch.tensor([0, 2, 4]), "prediction": torch.tensor([1, 0, 1])}],
              [{"index": torch.tensor([1, 3]), "prediction": torch.tensor([0, 0])}]]

    def all_gather_object(out, obj):
        assert obj is shards[rank]
        out[:] = shards

    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    trainer = type("T", (), {"world_size": 2, "is_global_zero": rank == 0})()
    path = tmp_path / "test.tsv"
    assert write_gathered_predictions(trainer, shards[rank], ["neg", "pos"], path) == str(path)
    if rank:
        assert not path.exists()
    else:
        assert path.read_text().split() == ["index", "prediction", "0", "pos", "1", "neg", "2",
                                            "neg", "3", "neg", "4", "pos"]


def test_loaders_pin_memory_for_a_cuda_device_only():
    from types import SimpleNamespace

    from lmcompress.data.datamodule import TextDataModule
    from lmcompress.data.synthetic import SyntheticSource

    dm = TextDataModule(SyntheticSource(seed=0, n_train=8, n_validation=4, n_test=4),
                        tokenizer="embedded:minilm-l6", cache_dir=None, batch_size=4)
    dm.validate()
    for device, pinned in (("cuda", True), ("cpu", False)):
        dm.trainer = SimpleNamespace(world_size=1, global_rank=0,
                                     strategy=SimpleNamespace(root_device=torch.device(device)))
        assert dm.train_dataloader().pin_memory is pinned
        assert dm.eval_dataloader("validation").pin_memory is pinned


def test_a_cuda_run_sets_the_float32_matmul_precision(monkeypatch):
    from types import SimpleNamespace

    from lmcompress.utils.device import set_matmul_precision

    calls = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    on = lambda d: SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(d)))  # noqa: E731
    assert not set_matmul_precision(on("cpu")) and calls == []
    assert set_matmul_precision(on("cuda")) and calls == ["high"]
    source = (SRC / "run.py").read_text()
    assert "set_matmul_precision(trainer" in source  # the stage calls it once its trainer exists
