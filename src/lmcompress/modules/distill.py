"""Stage ``distill``: train a student of any depth/width/heads against a frozen fine-tuned teacher.

The objective comes from the ``loss`` config group through the registry (``lmcompress.losses``),
e.g. ``conf/loss/kd_ckd.yaml``::

    L = 0.1·CE(y) + 0.9·SoftCE(z_S/T, z_T/T)
        + 1·WR-pair + 10·WR-triple + 1·LTR-pair + 10·LTR-triple

The WR/LTR terms are CKD's relations (Park, Kim & Yang, EMNLP 2021, arXiv:2109.08359; docs/ckd.md),
computed in each model's own space on the matched layers (``emb+skip`` by default), so no
projection layer exists whatever the student's hidden size. A student with its own tokenizer
(``student.tokenizer``) compares words instead of tokens (``cross_tokenizer.py``, docs/ckd.md §12).
"""

from __future__ import annotations

from typing import Any

import torch

from lmcompress.losses import Objective
from lmcompress.models.memory import set_checkpointing
from lmcompress.models.student import build_student
from lmcompress.models.teacher import build_teacher
from lmcompress.modules.base import TaskModule
from lmcompress.modules.cross_tokenizer import (
    build_own_student,
    check_cross,
    split_batch,
    student_tokenizer,
)
from lmcompress.modules.frozen_teacher import FrozenTeacher
from lmcompress.specs import StudentSpec, TeacherSpec, parse


class DistillModule(FrozenTeacher, TaskModule):
    """Knowledge distillation into a student with any registered loss terms.

    Args:
        student: the student (``StudentSpec``: ``init``, ``num_layers``, ``layers``, ``config``...).
        teacher: the fine-tuned teacher (``TeacherSpec``: an export or a teacher checkpoint).
        task: the task config.
        loss: the objective (``weights`` per term and the terms' options).
        optim: optimizer settings.
        layer_map: ``{teacher: [...], student: [...]}`` hidden-state indices (0 = embeddings)
            overriding the ``emb+skip`` matching.
        allow_uninformative_ltr: accept a student depth co-prime with the teacher's (only the
            embedding and last layer match, so LTR carries no information).
        aggregate: see ``TaskModule``.
    """

    def __init__(self, student: dict[str, Any], teacher: dict[str, Any], task: dict[str, Any],
                 loss: dict[str, Any], optim: dict[str, Any],
                 layer_map: dict[str, list[int]] | None = None,
                 allow_uninformative_ltr: bool = False, aggregate: str = "mean"):
        super().__init__(task, optim, aggregate)
        self.teacher_spec = parse(TeacherSpec, teacher, "teacher")
        self.student_spec = parse(StudentSpec, student, "student")
        self.objective = Objective.from_config(loss)
        own = student_tokenizer(self.student_spec, self.teacher_spec)
        self.cross_tokenizer = own is not None
        if own is not None:
            check_cross(self.student_spec, self.task, self.objective.uses)
        self.teacher = build_teacher(self.teacher_spec, self.task).requires_grad_(False).eval()
        self.model = set_checkpointing(
            build_own_student(self.student_spec, self.task, own) if own is not None
            else build_student(self.student_spec, self.task, self.teacher,
                               self.teacher_spec.tokenizer),
            self.student_spec.gradient_checkpointing, "student")
        self.objective.check_models(self.teacher.config, self.model.config)
        self.layer_map = self.matched_layers(layer_map, allow_uninformative_ltr)

    @staticmethod
    def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
        """The student's inputs: no labels, index, word indices or ``teacher_*`` columns."""
        return split_batch(batch)[0]

    def teacher_outputs(self, batch: dict[str, Any]) -> Any:
        """The frozen teacher on its own inputs (its own tokens across tokenizers)."""
        student, teacher = split_batch(batch)
        if (teacher is not None) != self.cross_tokenizer:
            raise ValueError("the batch and the student disagree on the tokenizers: set "
                             "student.tokenizer and data.student_tokenizer together (conf/"
                             "distill.yaml wires one to the other)")
        with torch.no_grad():
            return self.teacher(**(teacher or student),
                                output_hidden_states=self.objective.needs_hidden)
