"""The teacher pre-flight check: trivial baselines, recorded vs evaluated scores, refusal."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lmcompress.data.base import Example
from lmcompress.run import run_stage
from lmcompress.specs import SpecError, TaskSpec, TeacherSpec, parse
from lmcompress.utils.preflight import (
    PreflightSpec,
    check_teacher,
    recorded_score,
    trivial_score,
)

TASK = TaskSpec(name="toy", kind="classification", num_labels=2, metrics=["accuracy", "f1"],
                main_metric="accuracy", label_names=["neg", "pos"])


def _examples(labels):
    return [Example(f"s{i}", None, y) for i, y in enumerate(labels)]


def test_trivial_score_is_the_training_majority_on_dev():
    # train majority: 1 (3 of 4); dev has 1 in 2 of 5 -> accuracy 0.4 (not dev's own majority)
    score, name = trivial_score(TASK, _examples([1, 1, 1, 0]), _examples([1, 1, 0, 0, 0]))
    assert score == pytest.approx(0.4) and "pos" in name
    f1_task = TaskSpec(**{**TASK.__dict__, "main_metric": "f1"})
    score, _ = trivial_score(f1_task, _examples([1, 1, 0]), _examples([1, 0, 0, 0]))
    assert score == pytest.approx(2 * 1 / (2 * 1 + 3))  # MRPC-style: all-positive F1
    reg = TaskSpec(name="r", kind="regression", num_labels=1, metrics=["spearman"],
                   main_metric="spearman")
    assert trivial_score(reg, _examples([1.0, 3.0]), _examples([0.5, 2.0]))[0] == 0.0


class _Loader:
    """A dev split of batches, as ``datamodule.eval_dataloader`` serves them."""

    def __init__(self, labels):
        self.val_split = "validation"
        self.labels = labels
        self.examples = {"train": _examples([1, 1, 1, 0]), "validation": _examples(labels)}

    def eval_dataloader(self, name):
        ids = torch.arange(len(self.labels)).unsqueeze(1)
        yield {"input_ids": ids, "labels": torch.tensor(self.labels),
               "index": torch.arange(len(self.labels))}

    def _examples(self, name):
        return self.examples[name]


class _Teacher(torch.nn.Module):
    """Predicts class 1 for even input ids, ``flip`` of it for odd ones."""

    def __init__(self, always: int | None = None):
        super().__init__()
        self.always, self.calls = always, 0

    def forward(self, input_ids):
        self.calls += 1
        pred = (input_ids[:, 0] % 2 == 0).long() if self.always is None else torch.full(
            (len(input_ids),), self.always)
        return SimpleNamespace(logits=torch.nn.functional.one_hot(pred, 2).float())


def _module(teacher, name_or_path=None):
    spec = TeacherSpec(name_or_path=name_or_path, pretrained=False)
    return SimpleNamespace(teacher=teacher, teacher_spec=spec, task=TASK)


def test_a_teacher_at_the_majority_baseline_is_refused_naming_both_scores(caplog):
    data = _Loader([1, 1, 1, 0, 0, 1, 1, 1])  # majority 1: baseline 6/8 = 75.00
    with pytest.raises(ValueError) as err:
        check_teacher(_module(_Teacher(always=1)), data, PreflightSpec())
    message = str(err.value)
    assert "75.00" in message and "majority class 'pos'" in message
    assert "random-init teacher config" in message and "preflight.allow_weak_teacher" in message
    result = check_teacher(_module(_Teacher(always=1)), data,
                           PreflightSpec(allow_weak_teacher=True))
    assert result["passed"] is False and result["teacher_score"] == pytest.approx(0.75)
    assert "continuing" in caplog.text


def test_a_teacher_above_the_margin_passes_and_the_margin_is_a_key():
    labels = [1, 0, 1, 0, 1, 1, 1, 1]  # teacher right on the even ids: 6/8; majority 6/8
    data = _Loader([1, 0, 1, 0, 1, 0, 1, 0])  # teacher 8/8, majority (1) 4/8
    assert check_teacher(_module(_Teacher()), data, PreflightSpec())["passed"]
    with pytest.raises(ValueError, match="not above"):
        check_teacher(_module(_Teacher()), _Loader(labels), PreflightSpec(margin=0.0))
    with pytest.raises(SpecError, match="preflight.margin"):
        parse(PreflightSpec, {"margin": 1.5}, "preflight")


def test_no_teacher_no_check():
    assert check_teacher(SimpleNamespace(task=TASK), _Loader([1]), PreflightSpec()) is None


def test_the_recorded_dev_score_of_the_teachers_run_is_used(tmp_path):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"task": "toy", "val": {"val/accuracy": 0.9}}))
    published = tmp_path / "teachers" / "toy_teacher"
    published.mkdir(parents=True)
    (published / "lmcompress_publication.json").write_text(
        json.dumps({"source": str(run / "export")}))
    spec = TeacherSpec(name_or_path=str(published))
    assert recorded_score(spec, TASK)[0] == 0.9
    teacher = _Teacher(always=1)  # would score 75.00 if evaluated
    result = check_teacher(_module(teacher, str(published)), _Loader([1, 1, 1, 0]),
                           PreflightSpec())
    assert result["passed"] and teacher.calls == 0 and "metrics.json" in result["score_source"]
    other = TaskSpec(**{**TASK.__dict__, "name": "other"})  # another task: evaluated instead
    assert recorded_score(spec, other) is None
    # a DynaBERT sub-model's export (phase 2's teacher): its own entry of the run's metrics.json
    dyna = tmp_path / "dyna"
    (dyna / "export" / "w1.00_d1.00").mkdir(parents=True)
    (dyna / "metrics.json").write_text(json.dumps({"task": "toy", "val": {"val/accuracy": 0.5},
        "submodels": {"w1.00_d1.00": {"val": {"val/accuracy": 0.8}}}}))
    sub = TeacherSpec(name_or_path=str(dyna / "export" / "w1.00_d1.00"))
    assert recorded_score(sub, TASK)[0] == 0.8


def test_the_distill_stage_refuses_a_random_teacher_before_training(make_cfg):
    cfg = make_cfg("distill", "teacher=tiny", "student=tiny", "loss=kd",
                   "preflight.allow_weak_teacher=false", "preflight.margin=0.5")
    with pytest.raises(ValueError, match="teacher '.*' scores dev accuracy"):
        run_stage(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()
