"""Distillation across tokenizers: the student with its own tokenizer, and each side's inputs.

docs/ckd.md §12. ``student.tokenizer`` names the student's tokenizer; when it differs from the
teacher's, the data module serves the student's tokens as the model inputs, the teacher's as
``teacher_*`` columns, and both sides' token -> word indices, which the CKD relations pool to
words. Logit KD (sentence-level) and the task loss are unchanged. What cannot work is refused
here by key before training: a student copied from the teacher's layers (its embeddings index
the teacher's vocabulary), a tagging task, terms on token positions (``hidden_mse``).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, PreTrainedModel

from lmcompress.data.words import TEACHER_PREFIX, TEACHER_WORD_INDEX, WORD_INDEX, WORD_MASK
from lmcompress.data.words import load_tokenizers as _load_tokenizers
from lmcompress.models.hub import build_model, resolve_model_path
from lmcompress.models.teacher import check_trained_for
from lmcompress.specs import ModelSpec, StudentSpec, TaskSpec, TeacherSpec

WORD_KEYS = (WORD_INDEX, TEACHER_WORD_INDEX, WORD_MASK)
TOKEN_POSITION_TERMS = ("hidden_mse",)
"""Terms comparing the two models token by token: refused across tokenizers."""


def student_tokenizer(student: StudentSpec, teacher: TeacherSpec) -> Any | None:
    """The student's own tokenizer if ``student.tokenizer`` names one unlike the teacher's."""
    if student.tokenizer is None:
        return None
    teacher_ref = teacher.tokenizer or teacher.name_or_path
    if teacher_ref is None:
        raise ValueError(f"student.tokenizer={student.tokenizer} is set, but the teacher's "
                         "tokenizer is unknown: set teacher.tokenizer")
    own, teacher_tok = _load_tokenizers(teacher_ref, student.tokenizer)
    return None if teacher_tok is None else own


def check_cross(spec: StudentSpec, task: TaskSpec, terms: set[str]) -> None:
    """Refuse, by key, what distillation across tokenizers cannot do."""
    where = f"student.tokenizer={spec.tokenizer} differs from the teacher's tokenizer"
    if spec.init == "teacher_layers":
        raise ValueError(f"{where}, but student.init=teacher_layers copies the teacher's "
                         "embeddings, which index the teacher's vocabulary: use student.init="
                         "config or student.init=pretrained (docs/ckd.md §12)")
    if task.kind == "token_classification":
        raise ValueError(f"{where}, but task.kind=token_classification: token-level logit KD "
                         "needs one token sequence (docs/ckd.md §12)")
    bad = sorted(set(TOKEN_POSITION_TERMS) & terms)
    if bad:
        raise ValueError(f"{where}, but loss.weights.{bad[0]} compares the two models token by "
                         "token; set it to 0 (the CKD relations compare words)")


def build_own_student(spec: StudentSpec, task: TaskSpec, tokenizer: Any) -> PreTrainedModel:
    """The student for its own tokenizer: a pretrained model, or a config sized to the vocabulary.

    Raises:
        ValueError: the student's embeddings are smaller than its tokenizer's vocabulary.
    """
    size = len(tokenizer)
    if spec.init == "pretrained":
        check_trained_for(AutoConfig.from_pretrained(resolve_model_path(spec.name_or_path)),
                          task, spec.name_or_path, role="student", labels=False)
        model = build_model(ModelSpec(name_or_path=spec.name_or_path), task, key="student")
    else:
        config = {"vocab_size": size, **spec.config}
        if tokenizer.pad_token_id is not None:
            config.setdefault("pad_token_id", tokenizer.pad_token_id)
        model = build_model(ModelSpec(pretrained=False, config=config), task, key="student")
    if model.config.vocab_size < size:
        raise ValueError(f"the student's vocab_size {model.config.vocab_size} is smaller than "
                         f"student.tokenizer={spec.tokenizer}'s {size} tokens")
    return model.train()


def split_batch(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                         dict[str, torch.Tensor] | None]:
    """``(the student's model inputs, the teacher's or None)``; labels, index and words dropped."""
    drop = ("labels", "index", *WORD_KEYS)
    student = {k: v for k, v in batch.items() if k not in drop
               and not k.startswith(TEACHER_PREFIX)}
    if WORD_MASK not in batch:
        return student, None
    return student, {k[len(TEACHER_PREFIX):]: v for k, v in batch.items()
                     if k.startswith(TEACHER_PREFIX) and k != TEACHER_WORD_INDEX}
