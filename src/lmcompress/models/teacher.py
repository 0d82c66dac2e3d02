"""The frozen teacher of the distillation stages: built, checked for the task, and recorded.

A teacher is an export (``save_pretrained`` folder or hub id) or a teacher-stage checkpoint.
Before its weights are used it is checked against the task: the kind of task it was trained for
(token vs sequence classification), its label set and output count, and that no weight is NaN
or Inf. :func:`teacher_provenance` is what a run records of it (resolved path, weights digest).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from lmcompress.models.hub import (
    build_model,
    check_finite_weights,
    resolve_model_path,
    trained_labels,
    weights_digest,
)
from lmcompress.specs import ModelSpec, TaskSpec, TeacherSpec, parse


def build_teacher(spec: TeacherSpec, task: TaskSpec) -> PreTrainedModel:
    """The fine-tuned teacher, from an export/id or a teacher-stage checkpoint, checked for task.

    Raises:
        ValueError: the teacher was fine-tuned for another label set or task kind (its config
            records what it was trained on).
    """
    if spec.checkpoint:
        teacher, trained_for = from_checkpoint(Path(spec.checkpoint))
        check_trained_for(trained_for, task, spec.checkpoint)
        check_finite_weights(teacher, spec.checkpoint)  # exports are checked by build_model
    else:
        # what the export says it was trained on, read before the task's labels are applied, and
        # checked before loading (another kind's head would fail to load with a size error)
        if spec.name_or_path and spec.pretrained:
            check_trained_for(AutoConfig.from_pretrained(resolve_model_path(spec.name_or_path)),
                               task, spec.name_or_path)
        teacher = build_model(spec, task, key="teacher")
    return teacher


def from_checkpoint(path: Path) -> tuple[PreTrainedModel, PretrainedConfig]:
    """Rebuild a teacher-stage model from its Lightning checkpoint (hyper-parameters + weights)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"teacher.checkpoint={path}: not a readable checkpoint ({err})") from err
    hp = ckpt.get("hyper_parameters", {})
    if "model" not in hp or "task" not in hp:
        raise ValueError(f"teacher.checkpoint={path} was not written by the teacher stage "
                         "(no model/task hyper-parameters)")
    spec = parse(ModelSpec, {**hp["model"], "pretrained": False}, "teacher.checkpoint:model")
    trained_task = parse(TaskSpec, hp["task"], "teacher.checkpoint:task")
    model = build_model(spec, trained_task, key="teacher")
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()
             if k.startswith("model.")}
    model.load_state_dict(state, strict=True)
    model.config.architectures = [type(model).__name__]  # what an export would record
    return model, model.config


KIND_WORDS = {"ForTokenClassification": "token classification (one label per word)",
              "ForSequenceClassification": "sequence classification (one label per input)"}


def check_trained_for(cfg: PretrainedConfig, task: TaskSpec, ref: str | None,
                       role: str = "teacher", labels: bool = True) -> None:
    """Refuse a model trained for another kind of task than ``task``, in one sentence.

    ``role`` (teacher | student) names the model; with ``labels``, also refuse another label
    set or output count.
    """
    task_kind = KIND_WORDS["ForTokenClassification" if task.kind == "token_classification"
                           else "ForSequenceClassification"]
    for arch in getattr(cfg, "architectures", None) or []:
        kind = next((w for suffix, w in KIND_WORDS.items() if arch.endswith(suffix)), None)
        if kind is not None and kind != task_kind:
            raise ValueError(f"the {role} '{ref}' is a {kind} model ({arch}), but task "
                             f"'{task.name}' (task.kind={task.kind}) is {task_kind}.")
    if not labels:
        return
    trained = trained_labels(cfg)
    trained_task = getattr(cfg, "finetuning_task", None)
    if trained is None and not trained_task:
        return  # no record of a fine-tuning task (e.g. a raw pretrained encoder): nothing to check
    was = f" (fine-tuned on '{trained_task}')" if trained_task else ""
    if task.kind == "regression" and cfg.num_labels != 1:
        raise ValueError(f"teacher '{ref}'{was} has {cfg.num_labels} outputs, but task "
                         f"'{task.name}' is a regression")
    if task.label_names and trained is not None and trained != list(task.label_names):
        raise ValueError(f"teacher '{ref}'{was} was trained with labels {trained}, but task "
                         f"'{task.name}' has labels {list(task.label_names)}: use a teacher "
                         "fine-tuned on this task")
    if task.kind != "regression" and cfg.num_labels != task.num_labels:
        raise ValueError(f"teacher '{ref}'{was} has {cfg.num_labels} outputs, but task "
                         f"'{task.name}' has task.num_labels={task.num_labels}")


def teacher_provenance(spec: TeacherSpec) -> dict[str, str | None]:
    """What a distillation run was taught by: the resolved reference and a digest of its weights."""
    if spec.checkpoint:
        path = Path(spec.checkpoint).resolve()
        return {"checkpoint": str(path), "sha256": weights_digest(path)}
    if spec.name_or_path is None:
        return {"name_or_path": None, "sha256": None}
    resolved = resolve_model_path(spec.name_or_path)
    local = Path(resolved)
    return {"name_or_path": str(local.resolve()) if local.is_dir() else resolved,
            "sha256": weights_digest(local) if local.is_dir() else None}
