"""Stage ``distill``: train a student of any depth/width/heads against a frozen fine-tuned teacher.

Objective (weights from the ``loss`` config group; a zero weight skips the term entirely)::

    L = w_task·CE(y) + w_kd·SoftCE(z_S/T, z_T/T)
        + w_wr_pair·WR-pair + w_wr_triple·WR-triple + w_ltr_pair·LTR-pair + w_ltr_triple·LTR-triple

The WR/LTR terms are CKD's relations (Park, Kim & Yang, EMNLP 2021, arXiv:2109.08359), computed
in each model's own space on the matched layers (``emb+skip`` by default), so no projection layer
exists whatever the student's hidden size.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch

from lmcompress.losses import ckd as ckd_losses
from lmcompress.losses.kd import kd_mse, soft_cross_entropy
from lmcompress.models.student import build_student, build_teacher, resolve_layer_map
from lmcompress.modules.base import TaskModule

log = logging.getLogger(__name__)
CKD_TERMS = tuple(ckd_losses.CKD_LOSSES)  # wr_pair, wr_triple, ltr_pair, ltr_triple
TERMS = ("task", "kd", *CKD_TERMS)


class DistillModule(TaskModule):
    """Knowledge distillation with logit KD and CKD's Word/Layer-Transforming relations.

    Args:
        model: the student spec: ``{init: teacher_layers|pretrained|config, num_layers, layers,
            name_or_path, config}`` (see ``models.student.build_student``).
        task: the task config.
        optim: optimizer settings (see ``TaskModule``).
        teacher: ``{name_or_path, checkpoint, config, pretrained}`` of the fine-tuned teacher.
        loss: ``{weights: {task, kd, wr_pair, wr_triple, ltr_pair, ltr_triple}, temperature,
            kd_t2, ckd: {...options of losses.ckd}}``.
        layer_map: ``{teacher: [...], student: [...]}`` hidden-state indices (0 = embeddings)
            overriding the ``emb+skip`` matching.
        allow_uninformative_ltr: accept a student depth co-prime with the teacher's (only the
            embedding and last layer match, so LTR carries no information).
    """

    def __init__(
        self,
        model: dict[str, Any],
        task: dict[str, Any],
        optim: dict[str, Any],
        teacher: dict[str, Any],
        loss: dict[str, Any],
        layer_map: dict[str, list[int]] | None = None,
        allow_uninformative_ltr: bool = False,
    ):
        self._teacher_spec = teacher
        super().__init__(model, task, optim)
        weights = dict(loss.get("weights", {}))
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise ValueError(f"loss.weights: unknown term(s) {unknown}; known: {list(TERMS)}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        if not self.weights:
            raise ValueError("loss.weights: every weight is 0, nothing to train")
        self.temperature = float(loss.get("temperature", 1.0))
        self.kd_t2 = bool(loss.get("kd_t2", False))
        self.ckd_options = dict(loss.get("ckd", {}))
        known = [k for k, p in inspect.signature(ckd_losses.ckd_terms).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY]
        bad = sorted(set(self.ckd_options) - set(known))
        if bad:
            raise ValueError(f"loss.ckd: unknown option(s) {bad}; known: {known}")
        self.teacher_idx, self.student_idx = resolve_layer_map(
            self.teacher.config.num_hidden_layers, self.model.config.num_hidden_layers,
            layer_map, uses_ltr=any(k.startswith("ltr") for k in self.weights),
            allow_uninformative_ltr=allow_uninformative_ltr,
        )
        self.strict_loading = False  # checkpoints do not carry the frozen teacher

    def build_task_model(self, spec: dict[str, Any], task: dict[str, Any]) -> torch.nn.Module:
        """Build the frozen teacher first, then the student (which may start from its layers)."""
        self.teacher = build_teacher(self._teacher_spec, task).requires_grad_(False).eval()
        spec = {**spec, "teacher_tokenizer": self._teacher_spec.get("tokenizer")}
        return build_student(spec, task, self.teacher)

    def train(self, mode: bool = True) -> DistillModule:
        """Switch the student's mode; the teacher stays in eval mode (dropout off) throughout."""
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        needs_teacher = any(k != "task" for k in self.weights)
        needs_hidden = any(k in CKD_TERMS for k in self.weights)
        student = self(batch, output_hidden_states=needs_hidden)
        teacher = None
        if needs_teacher:
            with torch.no_grad():
                teacher = self.teacher(**self.model_inputs(batch),
                                       output_hidden_states=needs_hidden)
        terms = self.loss_terms(batch, student, teacher)
        total = sum(self.weights[name] * value for name, value in terms.items())
        for name, value in terms.items():
            self.log(f"train/loss_{name}", value.detach())
        self.log("train/loss", total.detach(), prog_bar=True)
        return total

    def loss_terms(self, batch: dict[str, torch.Tensor], student: Any, teacher: Any
                   ) -> dict[str, torch.Tensor]:
        """Every weighted term's unweighted value (terms with weight 0 are not computed)."""
        terms: dict[str, torch.Tensor] = {}
        if "task" in self.weights:
            terms["task"] = self.task_loss(student.logits, batch["labels"])
        if "kd" in self.weights:
            terms["kd"] = self.kd_loss(student.logits, teacher.logits, batch)
        ckd_names = [n for n in CKD_TERMS if n in self.weights]
        if ckd_names:
            s_h = torch.stack([student.hidden_states[i] for i in self.student_idx], dim=1)
            t_h = torch.stack([teacher.hidden_states[i] for i in self.teacher_idx], dim=1)
            # ckd_terms runs in fp32 outside autocast whatever the trainer's precision
            terms.update(ckd_losses.ckd_terms(s_h, t_h, batch["attention_mask"], ckd_names,
                                              **self.ckd_options))
        return terms

    def kd_loss(self, s_logits: torch.Tensor, t_logits: torch.Tensor,
                batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Soft cross-entropy at temperature T (MSE for regression); tokens: real tokens only."""
        if self.kind == "regression":
            return kd_mse(s_logits.float(), t_logits.float(), temperature=self.temperature)
        if self.kind == "token_classification":
            keep = batch["attention_mask"].bool()
            s_logits, t_logits = s_logits[keep], t_logits[keep]
        return soft_cross_entropy(s_logits.float(), t_logits.float(),
                                  temperature=self.temperature, scale_by_t2=self.kd_t2)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the frozen teacher's weights: it is rebuilt from its spec on load."""
        super().on_save_checkpoint(checkpoint)
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("teacher.")]:
            del state[key]
