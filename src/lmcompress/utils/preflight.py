"""The teacher pre-flight check of the distill and dynabert stages (docs/launch.md).

A student distilled from a teacher that scores no better than a trivial predictor learns
nothing worth ranking. Before training, the teacher's dev score on the stage's main metric is
compared with the task's trivial baseline (:func:`trivial_score`: the training split's majority
class, or its mean for a regression, predicted for every dev example); a teacher not above the
baseline by ``preflight.margin`` is refused, naming the teacher and both scores, unless
``preflight.allow_weak_teacher=true`` (then it is logged as a warning).

The teacher's score is the one its own run recorded (``metrics.json`` beside its export, found
through the publication marker of a published teacher, or the run whose best checkpoint it is)
when that run was on the same task; otherwise a quick evaluation on the dev split.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmcompress.metrics import TaskMetrics, predictions
from lmcompress.specs import CORPUS_KIND, SpecError, TaskSpec

log = logging.getLogger("lmcompress")
MARKER = "lmcompress_publication.json"  # utils.artifacts.MARKER (not imported: no cycle)


@dataclass
class PreflightSpec:
    """The check's settings (YAML: top-level ``preflight``)."""

    margin: float = 0.02
    """The teacher must beat the trivial baseline by more than this (metric units, 0.02 = 2
    points of accuracy)."""
    allow_weak_teacher: bool = False
    """true: a weak teacher is logged as a warning instead of refused."""
    eval_limit: int | None = None
    """A quick evaluation reads at most this many dev examples (null: all)."""

    def check(self, key: str) -> None:
        """A non-negative margin below 1, a positive limit."""
        if not 0 <= self.margin < 1:
            raise SpecError(f"{key}.margin={self.margin}: must be in [0, 1) (metric units)")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise SpecError(f"{key}.eval_limit={self.eval_limit}: must be >= 1 (or null)")


def trivial_score(task: TaskSpec, train: list[Any], dev: list[Any]) -> tuple[float, str]:
    """The main metric of the trivial predictor on ``dev`` and its name.

    Classification: the training split's most frequent class (ties: the lowest id) for every
    example; token classification: its most frequent tag for every word; regression: the
    training mean, whose correlations are 0 by the metrics' convention.
    """
    labels = [e.label for e in train if e.label is not None]
    gold = [e.label for e in dev if e.label is not None]
    if task.kind == "token_classification":
        labels = [t for seq in labels for t in seq if t >= 0]
        gold = [t for seq in gold for t in seq if t >= 0]
    if not labels or not gold:
        raise ValueError(f"preflight: task '{task.name}' has no labelled train or dev examples "
                         "to score a trivial baseline on")
    metric = TaskMetrics(task.kind, [task.main_metric], task.num_labels, where="preflight")
    if task.kind == "regression":
        value = sum(labels) / len(labels)
        name = f"training mean {value:.3g}"
        preds = torch.full((len(gold),), float(value))
        metric.update(preds, torch.tensor(gold, dtype=torch.float))
    else:
        counts = Counter(labels)
        majority = min(counts, key=lambda c: (-counts[c], c))
        shown = task.label_names[majority] if task.label_names else majority
        name = f"majority class '{shown}'"
        metric.update(torch.full((len(gold),), majority), torch.tensor(gold))
    with _quiet():
        return float(metric.compute()[task.main_metric]), name


class _quiet:
    """Silence the metrics' constant-predictor warning (the trivial predictor is constant)."""

    def __enter__(self):
        self.logger = logging.getLogger("lmcompress.metrics")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def recorded_score(spec: Any, task: TaskSpec) -> tuple[float, str] | None:
    """The teacher's dev ``task.main_metric`` recorded by its own run, and where it was found.

    None when no ``metrics.json`` of the teacher's run is found or it was on another task.
    """
    found = _metrics_file(spec)
    if found is None:
        return None
    path, submodel = found
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if metrics.get("task") != task.name:
        return None
    if submodel is not None:
        val = ((metrics.get("submodels") or {}).get(submodel) or {}).get("val", {})
        value = val.get(f"val/{task.main_metric}", val.get(task.main_metric))
    else:
        value = (metrics.get("val") or {}).get(f"val/{task.main_metric}")
    if not isinstance(value, int | float):
        return None
    return float(value), str(path) + (f" (sub-model {submodel})" if submodel else "")


def _metrics_file(spec: Any) -> tuple[Path, str | None] | None:
    """``(metrics.json, sub-model name or None)`` of the run that produced the teacher."""
    if spec.checkpoint:
        run = Path(spec.checkpoint).resolve().parent.parent
        path = run / "metrics.json"
        if path.is_file():
            best = json.loads(path.read_text()).get("best_checkpoint") or ""
            if best and Path(best).resolve() == Path(spec.checkpoint).resolve():
                return path, None
        return None
    if not spec.name_or_path or not Path(spec.name_or_path).is_dir():
        return None
    folder = Path(spec.name_or_path).resolve()
    marker = folder / MARKER
    if marker.is_file():  # a published teacher: the export it was copied from
        try:
            folder = Path(json.loads(marker.read_text())["source"])
        except (OSError, ValueError, KeyError):
            return None
    if folder.name == "export" and (folder.parent / "metrics.json").is_file():
        return folder.parent / "metrics.json", None
    if folder.parent.name == "export" and (folder.parent.parent / "metrics.json").is_file():
        return folder.parent.parent / "metrics.json", folder.name
    return None


@torch.no_grad()
def evaluated_score(teacher: Any, task: TaskSpec, datamodule: Any, limit: int | None) -> float:
    """The teacher's ``task.main_metric`` on (the first ``limit`` examples of) the dev split."""
    metric = TaskMetrics(task.kind, [task.main_metric], task.num_labels, where="preflight")
    was_training, seen = teacher.training, 0
    teacher.eval()
    for batch in datamodule.eval_dataloader(datamodule.val_split):
        labels = batch["labels"]
        logits = teacher(**{k: v for k, v in batch.items() if k not in ("labels", "index")}).logits
        take = len(labels) if limit is None else min(len(labels), limit - seen)
        metric.update(predictions(task.kind, logits[:take]), labels[:take])
        seen += take
        if limit is not None and seen >= limit:
            break
    teacher.train(was_training)
    return float(metric.compute()[task.main_metric])


def check_teacher(module: Any, datamodule: Any, spec: PreflightSpec) -> dict[str, Any] | None:
    """Refuse (or warn about) a teacher no better than the trivial baseline; None: no teacher.

    Returns what ``metrics.json`` records under ``preflight``.

    Raises:
        ValueError: the teacher's dev score is not above the baseline by ``spec.margin`` and
            ``spec.allow_weak_teacher`` is false.
    """
    teacher, teacher_spec = getattr(module, "teacher", None), getattr(module, "teacher_spec", None)
    if teacher is None or teacher_spec is None or module.task.kind == CORPUS_KIND:
        return None  # no teacher, or general distillation's (a pretrained encoder, no task)
    task: TaskSpec = module.task
    name = teacher_spec.checkpoint or teacher_spec.name_or_path or "(random-init teacher config)"
    recorded = recorded_score(teacher_spec, task)
    if recorded is not None:
        score, source = recorded
    else:
        score = evaluated_score(teacher, task, datamodule, spec.eval_limit)
        source = f"evaluated on dev split '{datamodule.val_split}'"
    baseline, baseline_name = trivial_score(
        task, datamodule._examples("train"), datamodule._examples(datamodule.val_split))
    result = {"teacher": str(name), "metric": task.main_metric, "teacher_score": score,
              "score_source": source, "baseline": baseline_name, "baseline_score": baseline,
              "margin": spec.margin, "passed": score > baseline + spec.margin}
    if not result["passed"]:
        what = (f"teacher '{name}' scores dev {task.main_metric} {100 * score:.2f} ({source}), "
                f"not above the trivial baseline ({baseline_name}: {100 * baseline:.2f}) by "
                f"preflight.margin={spec.margin}: its students would rank nothing")
        if not spec.allow_weak_teacher:
            raise ValueError(f"{what}. Train a better teacher, or set "
                             "preflight.allow_weak_teacher=true to distill from it anyway")
        log.warning("%s (preflight.allow_weak_teacher=true: continuing)", what)
    else:
        log.info("preflight: teacher dev %s %.4f vs %s %.4f (%s)", task.main_metric, score,
                 baseline_name, baseline, source)
    return result
