"""The stage interface ``run.py`` drives: what every ``module._target_`` must provide.

``run.py`` builds the module named by ``module._target_``, trains it with Lightning, then asks it
for its sub-models, their exports, where its inputs came from and which export to publish. Those
questions are this ``Stage`` protocol; ``TaskModule`` (modules/base.py) answers each with a
default (one sub-model ``""``, no provenance, publish the model itself) and a stage overrides
only what differs (``DynaBertModule``: the grid of sub-networks, publishes ``w1.00_d1.00``;
``FrozenTeacher``: the teacher's provenance). :func:`check_stage` refuses a target that misses a
part before any data is read or trained on.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import torch

from lmcompress.specs import TaskSpec


@runtime_checkable
class Stage(Protocol):
    """A LightningModule ``run.py`` can train, evaluate, export and publish."""

    task: TaskSpec
    """The parsed task (``run.py`` reads its label names for predictions)."""
    model: torch.nn.Module
    """The trained model (its statistics go to ``metrics.json`` when there is no ``""`` export)."""
    run_identity: dict[str, Any]
    """Set by ``run.py``: the config that shapes results (resume refuses other checkpoints)."""
    test_prefix: str
    """Metric prefix of ``trainer.test`` (``run.py`` renames it to score report splits)."""
    published_submodel: str
    """The ``export_models()`` entry ``publish_as`` copies (``""``: the model itself)."""

    def subnets(self) -> list[str]:
        """Names of the evaluated sub-models; ``[""]`` is the model itself."""

    def subnet(self, name: str) -> AbstractContextManager[None]:
        """A context in which sub-model ``name`` is the active forward."""

    def export_models(self) -> dict[str, torch.nn.Module]:
        """``{name: model}`` saved with ``save_pretrained`` (``""`` -> ``export/``)."""

    def provenance(self) -> dict[str, Any]:
        """Entries merged into ``metrics.json`` saying where the inputs came from."""

    def check_state_keys(self, state: dict[str, torch.Tensor]) -> None:
        """Refuse a checkpoint state that does not fit (frozen prefixes excepted)."""


STAGE_PARTS = (*Stage.__annotations__,
               *(name for name, v in vars(Stage).items() if callable(v) and name[0] != "_"))
"""Every member of :class:`Stage`, attributes first."""


def check_stage(module: Any, target: str) -> Stage:
    """``module`` if it provides every part of :class:`Stage`; else name the missing ones."""
    if isinstance(module, Stage):
        return module
    missing = [name for name in STAGE_PARTS if not hasattr(module, name)]
    raise TypeError(f"module._target_={target}: {type(module).__name__} is not a stage; it lacks "
                    f"{missing} (subclass lmcompress.modules.base.TaskModule, which provides "
                    "defaults; modules/protocol.py)")
