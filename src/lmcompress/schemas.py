"""The typed specs' defaults as Hydra config nodes: ``conf/`` YAML only overrides them.

Each spec's defaults are written once, in its dataclass; :func:`register_schemas` stores them in
Hydra's ConfigStore under the group ``schema``, and a YAML file of ``conf/`` starts from one in
its defaults list, then sets only what differs, e.g. ``conf/module/dynabert.yaml``::

    defaults:
      - /schema/dynabert@_here_    # DynaBertSpec: phase, widths, depths, importance, ...
      - /schema/optim@optim        # OptimSpec: lr, weight_decay, warmup_ratio, eps, betas
      - _self_
    optim: {lr: 2e-5}

The nodes are plain (untyped) dicts of the defaults: the values are checked where they are
read, by ``specs.parse``, whose errors name the key the user typed. A typed OmegaConf node would
not do: it cannot hold ``SearchSpec.train`` (a union with a dict), and it closes the node to
the keys the dataclass lacks (``_target_``, a module's ``task: ${task}``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore

from lmcompress.amoc.regression import RegressionSpec
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.specs import (
    DynaBertSpec,
    ModelSpec,
    OptimSpec,
    StudentSpec,
    TaskSpec,
    TeacherSpec,
)
from lmcompress.utils.preflight import PreflightSpec

SCHEMAS: dict[str, type] = {
    "optim": OptimSpec,              # module.optim of every stage
    "dynabert": DynaBertSpec,        # module of stage dynabert
    "amoc_search": SearchSpec,       # callbacks.amoc (with its train node, TrainSpec)
    "amoc_regression": RegressionSpec,  # callbacks.amoc.regression
    "task": TaskSpec,                # conf/task/* (name, kind, num_labels, metrics: required)
    "model": ModelSpec,              # conf/model/*
    "teacher": TeacherSpec,          # conf/teacher/*
    "student": StudentSpec,          # conf/student/*
    "preflight": PreflightSpec,      # preflight (the teacher check of distill / dynabert)
}
"""``schema/<name>`` -> the dataclass whose defaults it holds."""


def defaults(cls: type) -> dict[str, Any]:
    """The default of every field of ``cls`` that has one (nested dataclasses as dicts).

    Read from the fields, not from an instance, so a nested spec's own defaults are the home of
    its values too (``SearchSpec.train`` -> ``TrainSpec``).
    """
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif dataclasses.is_dataclass(f.default_factory):  # a nested spec: its own defaults
            value = defaults(f.default_factory)
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            continue  # required: the YAML sets it
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


def register_schemas() -> None:
    """Store ``schema/<name>`` for every entry of :data:`SCHEMAS` (idempotent)."""
    store = ConfigStore.instance()
    for name, cls in SCHEMAS.items():
        store.store(group="schema", name=name, node=defaults(cls))
