"""Typed specs of what a stage is built from: their field names are the YAML keys.

A stage receives plain dicts from Hydra (so ``save_hyperparameters`` and checkpoints stay plain)
and turns each into one of these dataclasses with :func:`parse`, which names the key the user
typed in every error (``student.num_layers``, ``teacher.checkpoint``, ``task.num_labels``).
The attribute docstrings are the documentation of each key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

T = TypeVar("T")
TASK_KINDS = ("classification", "regression", "token_classification")
CORPUS_KIND = "corpus"
"""Unlabelled text for the general stage (num_labels 0, metric ``loss``; docs/general.md)."""
STUDENT_INITS = ("teacher_layers", "pretrained", "config")
MODEL_HEADS = ("pooler", "scalar_mix_cnn")


class SpecError(ValueError):
    """A config value is missing, unknown or of the wrong type; the message names its key."""


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict or hint is dict:
        return isinstance(value, Mapping)
    return isinstance(value, hint) if isinstance(hint, type) else True


def parse(cls: type[T], data: Mapping[str, Any] | T | None, key: str) -> T:
    """``cls(**data)`` with errors naming ``key.<field>``: unknown, missing or mistyped values."""
    if isinstance(data, cls):
        return data
    if isinstance(data, DictConfig):
        data = OmegaConf.to_container(data, resolve=True)
    if data is not None and not isinstance(data, Mapping):
        raise SpecError(f"{key}={data!r}: expected a mapping of {cls.__name__}'s fields "
                        f"({sorted(f.name for f in dataclasses.fields(cls))})")
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"{key}: unknown key(s) {[f'{key}.{u}' for u in unknown]}; "
                        f"accepted: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SpecError(f"{key}.{name} is required")
            continue
        if not _type_ok(data[name], hints[name]):
            raise SpecError(f"{key}.{name}={data[name]!r}: expected {hints[name]}")
    spec = cls(**data)
    check = getattr(spec, "check", None)
    if check is not None:
        check(key)
    return spec


@dataclass
class TaskSpec:
    """A task: what the data is, how many outputs the head has, how it is scored."""

    name: str
    """Identifies the task in outputs, checkpoints and a teacher's metadata."""
    kind: str
    """classification | regression | token_classification."""
    num_labels: int
    """Size of the prediction head (1 for regression)."""
    metrics: list[str]
    """Metrics computed on dev and test (see ``lmcompress.metrics``)."""
    main_metric: str
    """The dev metric that selects checkpoints; must be one of ``metrics``."""
    label_names: list[str] | None = None
    """Class names in head order (null for regression); must match the data source's."""
    test_split: str | None = None
    """Split evaluated after training (labelled: scored; label-less: predictions only)."""
    report_splits: list[str] = field(default_factory=list)
    """Further labelled splits scored with the best checkpoint (e.g. CoLA's dev halves)."""
    source: dict[str, Any] = field(default_factory=dict)
    """The data source (``_target_`` + arguments), built by the data layer."""

    def check(self, key: str) -> None:
        """Refuse inconsistent task settings, naming the key."""
        if self.kind == CORPUS_KIND:
            if self.num_labels != 0 or self.label_names or list(self.metrics) != ["loss"]:
                raise SpecError(f"{key}: a corpus task has num_labels=0, no label_names and "
                                f"metrics=[loss] (got {self.num_labels}, {self.label_names}, "
                                f"{list(self.metrics)})")
            return
        if self.kind not in TASK_KINDS:
            raise SpecError(f"{key}.kind={self.kind!r}: choose from "
                            f"{(*TASK_KINDS, CORPUS_KIND)}")
        if self.main_metric not in self.metrics:
            raise SpecError(f"{key}.main_metric={self.main_metric!r} is not in "
                            f"{key}.metrics={list(self.metrics)}")
        if self.kind == "regression":
            if self.num_labels != 1 or self.label_names:
                raise SpecError(f"{key}: a regression task has num_labels=1 and no label_names "
                                f"(got {self.num_labels}, {self.label_names})")
            return
        if self.num_labels < 2:
            raise SpecError(f"{key}.num_labels={self.num_labels}: a {self.kind} task needs >= 2")
        if self.label_names is not None and len(self.label_names) != self.num_labels:
            raise SpecError(f"{key}.num_labels={self.num_labels} but {key}.label_names has "
                            f"{len(self.label_names)} names: {list(self.label_names)}")


@dataclass
class ModelSpec:
    """A Hugging Face encoder: pretrained weights by reference, or random init from a config."""

    name_or_path: str | None = None
    """``embedded:minilm-l6``, a ``save_pretrained`` directory, or a hub id; null: config only."""
    tokenizer: str | None = None
    """Model reference whose tokenizer is used (default: ``name_or_path``)."""
    pretrained: bool = True
    """Load the reference's weights (false: random init from its config + ``config``)."""
    config: dict[str, Any] = field(default_factory=dict)
    """Config attributes set on top (depth, width, heads); unknown attributes are refused."""
    head: str = "pooler"
    """pooler: the model's standard HF head | scalar_mix_cnn: the AMoC paper's scalar mix over
    all hidden states + CNN head (sequence classification, fixed-length inputs; docs/amoc.md)."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of storing them (less
    memory, about one more forward pass of time; docs/launch.md "Memory")."""

    def check(self, key: str) -> None:
        """Refuse an unknown head."""
        if self.head not in MODEL_HEADS:
            raise SpecError(f"{key}.head={self.head!r}: choose from {MODEL_HEADS}")


@dataclass
class TeacherSpec(ModelSpec):
    """The frozen fine-tuned teacher of a distillation stage."""

    checkpoint: str | None = None
    """A teacher-stage Lightning checkpoint (``.ckpt``) instead of an export directory."""

    def check(self, key: str) -> None:
        """A teacher needs weights: a reference or a checkpoint."""
        super().check(key)
        if not self.name_or_path and not self.checkpoint and self.pretrained:
            raise SpecError(f"{key}: set {key}.name_or_path (an export) or {key}.checkpoint")


@dataclass
class StudentSpec:
    """The student of a distillation stage (the teacher's tokenizer unless ``tokenizer`` is set)."""

    init: str = "teacher_layers"
    """teacher_layers (copy a subset of the teacher's layers) | pretrained | config."""
    num_layers: int | None = None
    """Student depth for ``init=teacher_layers`` (layers picked by ``strategy``)."""
    layers: list[int] | None = None
    """Explicit 0-based teacher layers to copy (overrides ``num_layers``/``strategy``)."""
    strategy: str = "skip"
    """skip: every (L/k)-th layer ending at the last one; first: layers 0..k-1."""
    name_or_path: str | None = None
    """Pretrained student for ``init=pretrained`` (the teacher's tokenizer unless ``tokenizer``)."""
    tokenizer: str | None = None
    """The student's own tokenizer (init=config or pretrained): the CKD relations then compare
    words, not tokens (docs/ckd.md §12). Null, or one identical to the teacher's: it shares the
    teacher's."""
    pretrained: bool = True
    """Unused except by ``init=pretrained`` (always loads its weights)."""
    config: dict[str, Any] = field(default_factory=dict)
    """Config attributes for ``init=config`` (random init of any depth/width/heads)."""
    gradient_checkpointing: bool = False
    """Recompute the student's activations in the backward pass (docs/launch.md "Memory")."""

    def check(self, key: str) -> None:
        """Each init needs its own keys."""
        if self.init not in STUDENT_INITS:
            raise SpecError(f"{key}.init={self.init!r}: choose from {STUDENT_INITS}")
        if self.init == "teacher_layers" and self.num_layers is None and not self.layers:
            raise SpecError(f"{key}.num_layers (or {key}.layers) is required for "
                            "init=teacher_layers")
        if self.init == "pretrained" and not self.name_or_path:
            raise SpecError(f"{key}.name_or_path is required for init=pretrained")
        if self.strategy not in ("skip", "first"):
            raise SpecError(f"{key}.strategy={self.strategy!r}: choose skip or first")


@dataclass
class LayerMapSpec:
    """Hidden-state indices matched between teacher and student (0 = embedding output)."""

    teacher: list[int]
    """Teacher hidden-state indices, e.g. [0, 2, 4, 6]."""
    student: list[int]
    """Student hidden-state indices of the same length, e.g. [0, 1, 2, 3]."""


@dataclass
class OptimSpec:
    """AdamW with linear warm-up then linear decay to 0."""

    lr: float = 5e-5
    """Peak learning rate."""
    weight_decay: float = 0.0
    """Decoupled weight decay (never on biases and LayerNorm weights)."""
    warmup_ratio: float = 0.0
    """Fraction of the planned optimizer steps spent warming up."""
    eps: float = 1e-8
    """AdamW epsilon."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""

    def check(self, key: str) -> None:
        """Positive learning rate, sensible ratios."""
        if not self.lr > 0:
            raise SpecError(f"{key}.lr={self.lr}: must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise SpecError(f"{key}.warmup_ratio={self.warmup_ratio}: must be in [0, 1)")
        if self.weight_decay < 0:
            raise SpecError(f"{key}.weight_decay={self.weight_decay}: must be >= 0")


WIDTHS = (1.0, 0.75, 0.5, 0.25)
"""DynaBERT's official width multipliers, widest first (the order of a training step)."""
DEPTHS = (1.0, 0.75, 0.5)
"""DynaBERT's official depth multipliers, deepest first."""


IMPORTANCE_MODES = ("clean", "official")
"""How DynaBERT's importance accumulates gradients (docs/dynabert.md)."""


@dataclass
class ImportanceSpec:
    """Where DynaBERT's head and neuron importance is computed, before the first step."""

    split: str = "train"
    """A slice of this split (the official code uses dev, which also selects checkpoints)."""
    examples: int = 512
    """How many of its examples."""
    mode: str = "clean"
    """clean: per-batch |grad|; official: the un-zeroed cumulative gradient."""

    def check(self, key: str) -> None:
        if isinstance(self.examples, bool) or self.examples < 1:
            raise SpecError(f"{key}.examples={self.examples!r}: must be an integer >= 1")
        if self.mode not in IMPORTANCE_MODES:
            raise SpecError(f"{key}.mode={self.mode!r}: choose from {IMPORTANCE_MODES}")


@dataclass
class DynaBertSpec:
    """The grid and schedule keys of ``module`` in stage dynabert (``DynaBertModule``)."""

    phase: str
    """width | width_depth: required, set by the ``phase`` group (conf/phase/)."""
    widths: list[float] = field(default_factory=lambda: list(WIDTHS))
    """Width multipliers in (0, 1]."""
    depths: list[float] = field(default_factory=lambda: list(DEPTHS))
    """Depth multipliers in (0, 1]; the ``width`` phase trains the depth-1.0 row only."""
    importance: ImportanceSpec = field(default_factory=ImportanceSpec)
    """``ImportanceSpec`` keys."""
    rewire: bool = True
    """Reorder heads and neurons by importance before training (``width`` phase)."""
    clip_grad_norm: float | None = 1.0
    """Gradient-norm clipping of the accumulated step (manual optimization:
    ``trainer.gradient_clip_val`` must stay null)."""
    aggregate: str = "mean"
    """How the sub-networks' dev metrics combine into ``val/<metric>`` (selects checkpoints)."""
