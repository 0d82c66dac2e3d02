"""Stage ``general``: task-agnostic CKD on unlabelled text (docs/general.md).

A frozen pretrained teacher encoder and a student of any shape read the same packed corpus
blocks; the objective is CKD's relations (WR and LTR, pair and triple) on the matched layers,
optionally ``hidden_mse`` and, with a teacher that has an MLM head, the student's ``mlm`` loss.
No labels exist anywhere: the held-out blocks' objective (``val/loss``, lower is better) selects
the checkpoint, and the student encoder is exported for the task stages to start from
(``student=pretrained``, or ``model.name_or_path`` of the teacher stage).

    python -m lmcompress.run -cn general                         # embedded offline default
    python -m lmcompress.run -cn general task=corpus/shared_cpu student.num_layers=3
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import MeanMetric

from lmcompress.losses import REGISTRY, Objective
from lmcompress.models.general import build_general_student, build_general_teacher
from lmcompress.models.memory import set_checkpointing
from lmcompress.modules.base import TaskModule
from lmcompress.modules.frozen_teacher import FrozenTeacher
from lmcompress.specs import StudentSpec, TeacherSpec, parse

ALLOWED_FAMILIES = ("ckd", "hidden_mse", "mlm")
"""Loss families that need no label and no task logits."""


class GeneralModule(FrozenTeacher, TaskModule):
    """General (task-agnostic) distillation of an encoder on a corpus task.

    Args:
        student: the student (``StudentSpec``: teacher_layers | pretrained | config).
        teacher: the pretrained teacher encoder (``TeacherSpec``; ``name_or_path`` only).
        task: a corpus task (``task.kind=corpus``).
        loss: the objective; only ``ckd`` relations, ``hidden_mse`` and ``mlm`` are allowed.
        optim: optimizer settings.
        layer_map: matched hidden-state indices overriding ``emb+skip``.
        allow_uninformative_ltr: accept a student depth co-prime with the teacher's.
        mlm_probability: ``data.mlm_probability``; must be > 0 exactly when the ``mlm`` term is
            on (masked text without the term would only blur the relations' inputs).
    """

    reads_corpus = True

    def __init__(self, student: dict[str, Any], teacher: dict[str, Any], task: dict[str, Any],
                 loss: dict[str, Any], optim: dict[str, Any],
                 layer_map: dict[str, list[int]] | None = None,
                 allow_uninformative_ltr: bool = False, mlm_probability: float = 0.0):
        super().__init__(task, optim)
        self.teacher_spec = parse(TeacherSpec, teacher, "teacher")
        self.student_spec = parse(StudentSpec, student, "student")
        self.objective = Objective.from_config(loss)
        bad = sorted(t for t in self.objective.uses if REGISTRY[t].name not in ALLOWED_FAMILIES)
        if bad:
            raise ValueError(f"loss.weights: {bad} need labels or task logits, which general "
                             f"distillation does not have; use terms of {ALLOWED_FAMILIES}")
        mlm = "mlm" in self.objective.uses
        if mlm != (mlm_probability > 0):
            raise ValueError(f"loss.weights.mlm={self.objective.weights.get('mlm', 0)} with "
                             f"data.mlm_probability={mlm_probability}: set both (> 0) or neither")
        self.teacher = build_general_teacher(self.teacher_spec, mlm)
        self.model = set_checkpointing(
            build_general_student(self.student_spec, self.teacher, self.teacher_spec.tokenizer,
                                  mlm), self.student_spec.gradient_checkpointing, "student")
        self.objective.check_models(self.teacher.config, self.model.config)
        self.layer_map = self.matched_layers(layer_map, allow_uninformative_ltr)
        self.best_score = float("inf")  # val/loss: lower is better
        self.val_loss = MeanMetric()

    @staticmethod
    def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch without the MLM targets (the objective reads those)."""
        return {k: v for k, v in batch.items() if k not in ("mlm_labels", "labels", "index")}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        total, _ = self.objective(self.term_inputs(batch))
        self.val_loss.update(total.detach().float(), weight=batch["input_ids"].shape[0])

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()  # a weighted mean over every rank's blocks
        self.val_loss.reset()
        values = {"val/loss": loss}
        if not self.trainer.sanity_checking and self.trainer.state.fn == "fit":
            self.best_score = min(self.best_score, float(loss))
            values["val/loss_best"] = torch.tensor(self.best_score, device=loss.device)
        self.log_dict(values)  # MeanMetric has synchronised already

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        raise RuntimeError("the general stage has no test split (task.test_split must be null)")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        raise RuntimeError("the general stage predicts nothing: it exports an encoder")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.best_score = checkpoint.get("best_score", float("inf"))
