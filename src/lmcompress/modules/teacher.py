"""Stage ``teacher``: fine-tune a Hugging Face encoder on a task with its gold labels."""

from __future__ import annotations

from typing import Any

from lmcompress.losses import Objective
from lmcompress.models.hub import build_model
from lmcompress.modules.base import TaskModule
from lmcompress.specs import ModelSpec, parse


class TeacherModule(TaskModule):
    """Plain fine-tuning (sequence classification, regression or token classification).

    Built by ``conf/module/teacher.yaml`` (``optim`` starts from ``OptimSpec``'s defaults)::

        defaults: [/schema/optim@optim, _self_]
        _target_: lmcompress.modules.teacher.TeacherModule
        model: ${model}
        task: ${task}
        optim: {weight_decay: 0.01, warmup_ratio: 0.1}

    Args:
        model: the encoder to fine-tune (``ModelSpec``).
        task: the task config.
        optim: optimizer settings.
        loss: the objective (default: the gold-label ``task`` term alone).
    """

    def __init__(self, model: dict[str, Any], task: dict[str, Any], optim: dict[str, Any],
                 loss: dict[str, Any] | None = None):
        super().__init__(task, optim)
        self.model_spec = parse(ModelSpec, model, "model")
        # from_pretrained returns eval-mode modules and Lightning keeps each submodule's mode:
        # switch to train mode here or dropout would stay off for the whole run
        self.model = build_model(self.model_spec, self.task).train()
        self.objective = Objective.from_config(loss or {"weights": {"task": 1.0}})
