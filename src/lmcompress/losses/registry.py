"""The objective registry: loss terms by config name, and the weighted objective a stage calls.

A *term* is a function of :class:`TermInputs` (student and teacher outputs, the batch, the task
kind, the matched layers) registered under the name used in ``loss.weights``. Terms that share
work (CKD's four relations share one Gram matrix per model) form a *family*, computed by one
call. A stage builds ``objective = Objective.from_config(loss_cfg)`` once and calls
``total, parts = objective(inputs)`` per batch; adding a term is one function plus its
registration, and no stage changes. The loss config (``conf/loss/*.yaml``)::

    weights: {task: 0.1, kd: 0.9, wr_pair: 1.0}   # term name -> weight (0 = not computed)
    temperature: 3.0                              # options read by the terms that declare them
    ckd: {window: 21}                             # option group of a family

Options are checked when the objective is built, so a bad value fails before training with
the config key (``loss.ckd.window=20: ...``), not inside the first step.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from lmcompress.specs import LayerMapSpec


@dataclass(frozen=True)
class TermInputs:
    """Everything a term may read for one batch."""

    student: Any
    """The student's HF output (``.logits``, ``.hidden_states`` when requested)."""
    teacher: Any | None
    """The frozen teacher's output, or None when no active term needs it."""
    batch: Mapping[str, torch.Tensor]
    """The batch (``attention_mask``, ``labels`` when labelled, ...)."""
    kind: str = "classification"
    """Task kind: classification | regression | token_classification."""
    layer_map: LayerMapSpec | None = None
    """Matched hidden-state indices (teacher, student) for terms on hidden states."""


FamilyFn = Callable[..., dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Family:
    """Terms computed by one function ``fn(inputs, names, **options) -> {name: value}``."""

    name: str
    terms: tuple[str, ...]
    fn: FamilyFn
    options: str | None
    """Loss-config key of the family's option dict; None: top-level keys named like its
    keyword parameters (``temperature``)."""
    check: Callable[[dict[str, Any], str], None] | None = None
    needs_teacher: bool = True
    needs_hidden: bool = False
    needs_labels: bool = False
    check_models: Callable[[Any, Any], None] | None = None
    """Optional check of (teacher config, student config) when a stage builds the objective."""
    doc: str = ""

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The keyword options ``fn`` accepts, with their defaults."""
        return {n: p for n, p in inspect.signature(self.fn).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}


REGISTRY: dict[str, Family] = {}
"""Term name -> the family that computes it."""


def register_family(name: str, terms: Sequence[str], *, options: str | None = None,
                    check: Callable[[dict[str, Any], str], None] | None = None,
                    needs_teacher: bool = True, needs_hidden: bool = False,
                    needs_labels: bool = False,
                    check_models: Callable[[Any, Any], None] | None = None
                    ) -> Callable[[FamilyFn], FamilyFn]:
    """Register ``fn(inputs, names, **options) -> {term: value}`` under each name in ``terms``."""

    def decorate(fn: FamilyFn) -> FamilyFn:
        summary = (fn.__doc__ or "").strip().split("\n")[0]
        family = Family(name, tuple(terms), fn, options, check, needs_teacher, needs_hidden,
                        needs_labels, check_models, summary)
        for term in terms:
            if term in REGISTRY and REGISTRY[term].fn is not fn:
                raise ValueError(f"loss term '{term}' is already registered")
            REGISTRY[term] = family
        return fn

    return decorate


def register_term(name: str, **kwargs: Any) -> Callable[[Callable[..., torch.Tensor]],
                                                        Callable[..., torch.Tensor]]:
    """Register ``fn(inputs, **options) -> scalar`` as a family of one term named ``name``."""

    def decorate(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def family(inputs: TermInputs, names: Sequence[str], **options: Any):
            return {name: fn(inputs, **options)}

        family.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("inputs", inspect.Parameter.POSITIONAL_ONLY),
             inspect.Parameter("names", inspect.Parameter.POSITIONAL_ONLY),
             *(p for p in inspect.signature(fn).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY)])
        family.__doc__ = fn.__doc__
        register_family(name, [name], **kwargs)(family)
        return fn

    return decorate


@dataclass
class Objective:
    """``total = Σ weight_t · term_t`` over the terms with a non-zero weight."""

    weights: dict[str, float]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Family name -> its validated keyword options."""

    @classmethod
    def from_config(cls, loss: Mapping[str, Any] | None, key: str = "loss") -> Objective:
        """Validate a loss config (names, weights, options) and build the objective.

        Raises:
            ValueError: an unknown term or option, a negative or non-finite weight, no weight
                above 0, or an option value its term refuses; the message names the key.
        """
        import lmcompress.losses  # noqa: F401  (registers the built-in terms)

        loss = dict(loss or {})
        raw = dict(loss.pop("weights", None) or {})
        unknown = sorted(set(raw) - set(REGISTRY))
        if unknown:
            raise ValueError(f"{key}.weights: unknown term(s) {unknown}; known: {sorted(REGISTRY)}")
        weights = {}
        for name, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key}.weights.{name}={value!r}: weights must be numbers")
            value = float(value)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{key}.weights.{name}={value}: weights must be finite and >= 0")
            if value > 0:
                weights[name] = value
        if not weights:
            raise ValueError(f"{key}.weights: every weight is 0, nothing to train")
        return cls(weights, _family_options(loss, {REGISTRY[n] for n in weights}, key))

    # -- what the stage must provide -----------------------------------------------------------
    @property
    def families(self) -> list[Family]:
        """Active families, in registration order of their first term."""
        seen: dict[str, Family] = {}
        for name in self.weights:
            seen.setdefault(REGISTRY[name].name, REGISTRY[name])
        return list(seen.values())

    @property
    def needs_teacher(self) -> bool:
        """Whether the teacher must run (any term reads it)."""
        return any(f.needs_teacher for f in self.families)

    @property
    def needs_hidden(self) -> bool:
        """Whether hidden states must be returned (``output_hidden_states=True``)."""
        return any(f.needs_hidden for f in self.families)

    @property
    def needs_labels(self) -> bool:
        """Whether the batch must hold gold labels."""
        return any(f.needs_labels for f in self.families)

    @property
    def uses(self) -> set[str]:
        """Names of the active terms."""
        return set(self.weights)

    def check_models(self, teacher_config: Any, student_config: Any) -> None:
        """Let each active family refuse a teacher/student pair it cannot compare."""
        for family in self.families:
            if family.check_models is not None:
                family.check_models(teacher_config, student_config)

    # -- the call --------------------------------------------------------------------------------
    def __call__(self, inputs: TermInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(total, {term: unweighted value})`` for one batch."""
        parts: dict[str, torch.Tensor] = {}
        for family in self.families:
            names = [n for n in family.terms if n in self.weights]
            parts.update(family.fn(inputs, names, **self.options.get(family.name, {})))
        total = sum(self.weights[name] * parts[name] for name in self.weights)
        return total, {name: parts[name] for name in self.weights}


def _family_options(loss: dict[str, Any], active: set[Family], key: str) -> dict[str, dict]:
    """Each active family's options from the loss config; unknown keys are refused."""
    groups = {f.options for f in REGISTRY.values() if f.options}
    top_level = {p for f in REGISTRY.values() if not f.options for p in f.parameters()}
    unknown = sorted(set(loss) - groups - top_level)
    if unknown:
        raise ValueError(f"{key}: unknown key(s) {[f'{key}.{u}' for u in unknown]}; known: "
                         f"weights, {sorted(groups | top_level)}")
    out = {}
    for family in sorted(active, key=lambda f: f.name):
        accepted = family.parameters()
        if family.options:
            given = dict(loss.get(family.options) or {})
            where = f"{key}.{family.options}"
            bad = sorted(set(given) - set(accepted))
            if bad:
                raise ValueError(f"{where}: unknown option(s) {bad}; known: {sorted(accepted)}")
        else:
            given, where = {k: v for k, v in loss.items() if k in accepted}, key
        for name, value in given.items():  # "no" for a switch would read as True
            if isinstance(accepted[name].default, bool) and not isinstance(value, bool):
                raise ValueError(f"{where}.{name}={value!r}: must be true or false")
        if family.check is not None:
            family.check(given, where)
        out[family.name] = given
    return out
