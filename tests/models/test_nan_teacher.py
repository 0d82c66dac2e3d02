"""A teacher whose weights hold NaN or Inf is refused at load, naming file and tensor (#16 c. 2)."""

from __future__ import annotations

import json

import pytest
import torch

from lmcompress.models.hub import build_model
from lmcompress.models.teacher import build_teacher
from lmcompress.specs import ModelSpec, TaskSpec, TeacherSpec

TASK = TaskSpec(name="tiny", kind="classification", num_labels=2, metrics=["accuracy"],
                main_metric="accuracy", label_names=["negative", "positive"])
TINY = {"model_type": "bert", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32}
BAD = "bert.encoder.layer.1.attention.self.query.weight"


def _tiny_model(bad: float | None):
    model = build_model(ModelSpec(pretrained=False, config=TINY), TASK)
    if bad is not None:
        with torch.no_grad():
            model.get_parameter(BAD)[0, :3] = bad
    return model


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_export_with_a_bad_tensor_is_refused_naming_file_and_tensor(tmp_path, bad):
    _tiny_model(bad).save_pretrained(tmp_path / "export")
    with pytest.raises(ValueError) as err:
        build_teacher(TeacherSpec(name_or_path=str(tmp_path / "export")), TASK)
    text = str(err.value)
    assert str(tmp_path / "export" / "model.safetensors") in text and f"'{BAD}'" in text
    assert ("3 NaN" if bad != bad else "3 Inf") in text


def test_teacher_checkpoint_with_a_bad_tensor_is_refused_naming_the_checkpoint(tmp_path):
    model = _tiny_model(float("nan"))
    ckpt = tmp_path / "teacher.ckpt"
    torch.save({"hyper_parameters": {"model": {"pretrained": False, "config": TINY},
                                     "task": vars(TASK)},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    with pytest.raises(ValueError, match=rf"teacher weights {ckpt}: tensor '{BAD}' holds 3 NaN"):
        build_teacher(TeacherSpec(checkpoint=str(ckpt)), TASK)


def test_finite_export_loads(tmp_path):
    _tiny_model(None).save_pretrained(tmp_path / "export")
    teacher = build_teacher(TeacherSpec(name_or_path=str(tmp_path / "export")), TASK)
    assert teacher.config.num_hidden_layers == 2


def test_sharded_export_names_the_shard_holding_the_tensor(tmp_path):
    _tiny_model(float("nan")).save_pretrained(tmp_path / "export", max_shard_size="20KB")
    index = tmp_path / "export" / "model.safetensors.index.json"
    assert index.is_file()
    shard = json.loads(index.read_text())["weight_map"][BAD]
    with pytest.raises(ValueError, match=rf"teacher weights {tmp_path / 'export' / shard}: "
                                         rf"tensor '{BAD}'"):
        build_teacher(TeacherSpec(name_or_path=str(tmp_path / "export")), TASK)


def test_the_teacher_stages_own_model_is_refused_too(tmp_path):
    # model=hf model.name_or_path=<a corrupt export>: the model the teacher stage fine-tunes
    _tiny_model(float("nan")).save_pretrained(tmp_path / "export")
    with pytest.raises(ValueError, match=rf"model weights .*model.safetensors: tensor '{BAD}'"):
        build_model(ModelSpec(name_or_path=str(tmp_path / "export")), TASK)
