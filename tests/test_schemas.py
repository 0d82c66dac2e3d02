"""Every default of a typed spec lives in its dataclass: conf/ starts from the ``schema/*`` nodes
(lmcompress/schemas.py) and only overrides. Changing a dataclass default changes the composed
config, so no YAML file holds a second copy of it."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from lmcompress.amoc.regression import RegressionSpec
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.train import TrainSpec
from lmcompress.schemas import SCHEMAS, defaults
from lmcompress.specs import (
    DynaBertSpec,
    ImportanceSpec,
    ModelSpec,
    OptimSpec,
    SpecError,
    StudentSpec,
    TaskSpec,
    TeacherSpec,
    parse,
)
from lmcompress.utils.instantiate import instantiate_plain
from lmcompress.utils.paths import conf_dir

TINY_DYNA = ["teacher=tiny", "teacher.config.num_attention_heads=4"]


def _patch_default(monkeypatch, cls: type, name: str, value) -> None:
    field = cls.__dataclass_fields__[name]
    if field.default_factory is not dataclasses.MISSING:
        monkeypatch.setattr(field, "default_factory", lambda: value)
    else:
        monkeypatch.setattr(field, "default", value)


# (stage, overrides, dataclass, field, where it lands in the composed config, a new default)
CASES = [
    ("dynabert", [], DynaBertSpec, "widths", "module.widths", [1.0, 0.5]),
    ("dynabert", [], DynaBertSpec, "clip_grad_norm", "module.clip_grad_norm", 0.5),
    ("dynabert", ["phase=width_depth"], DynaBertSpec, "depths", "module.depths", [1.0, 0.5]),
    ("dynabert", [], ImportanceSpec, "examples", "module.importance.examples", 64),
    ("dynabert", [], OptimSpec, "betas", "module.optim.betas", [0.8, 0.99]),
    ("teacher", [], OptimSpec, "lr", "module.optim.lr", 1e-3),
    ("distill", [], OptimSpec, "eps", "module.optim.eps", 1e-6),
    ("amoc", [], SearchSpec, "budgets", "callbacks.amoc.budgets", [2]),
    ("amoc", [], SearchSpec, "trainable", "callbacks.amoc.trainable", "all"),
    ("amoc", [], TrainSpec, "epochs", "callbacks.amoc.train.epochs", 2),
    ("amoc", [], RegressionSpec, "p_remove", "callbacks.amoc.regression.p_remove", 0.2),
    ("teacher", [], TaskSpec, "report_splits", "task.report_splits", ["validation"]),
    ("amoc", [], ModelSpec, "pretrained", "model.pretrained", False),  # (teacher: model=tiny)
    ("distill", [], TeacherSpec, "checkpoint", "teacher.checkpoint", "x.ckpt"),
    ("distill", [], StudentSpec, "strategy", "student.strategy", "first"),
]


@pytest.mark.parametrize(("stage", "overrides", "cls", "name", "key", "value"), CASES,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_dataclass_default_is_the_composed_default(make_cfg, monkeypatch, stage, overrides,
                                                     cls, name, key, value):
    before = OmegaConf.select(make_cfg(stage, *overrides), key)
    assert before == defaults(cls)[name]  # YAML keeps it
    _patch_default(monkeypatch, cls, name, value)
    assert OmegaConf.select(make_cfg(stage, *overrides), key) == value


def test_every_schema_is_used_by_conf():
    used = "".join(p.read_text() for p in conf_dir().rglob("*.yaml"))
    assert all(f"/schema/{name}@" in used for name in SCHEMAS)


def test_the_dynabert_module_refuses_unknown_importance_keys(make_cfg):
    cfg = make_cfg("dynabert", *TINY_DYNA, "+module.importance.exampels=64")
    with pytest.raises(SpecError, match=r"module.importance.exampels"):
        instantiate_plain(cfg.module)


@pytest.mark.parametrize("value", ["kd_ckd", True, 3])
def test_a_plain_value_where_a_spec_belongs_is_refused_by_its_key(value):
    with pytest.raises(SpecError, match=rf"task={value!r}: expected a mapping of TaskSpec's"):
        parse(TaskSpec, value, "task")
