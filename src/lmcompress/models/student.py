"""Build a student of any shape for distillation (no Lightning; the teacher: models/teacher.py).

A student is built (a) from the teacher by keeping a layer subset (PKD-style init: embeddings,
the chosen layers, pooler and classifier are copied), (b) from a pretrained directory or hub id,
or (c) from a config of any depth/hidden/heads with random weights. Whatever the route, it must
share the teacher's tokenizer, because relation losses compare the same token positions.
"""

from __future__ import annotations

import logging

from transformers import AutoConfig, PreTrainedModel

from lmcompress.models.hub import (
    build_model,
    load_tokenizer,
    resolve_model_path,
)
from lmcompress.models.layers import select_layers
from lmcompress.models.surgery import encoder_layers, keep_layers
from lmcompress.models.teacher import check_trained_for
from lmcompress.specs import ModelSpec, StudentSpec, TaskSpec

log = logging.getLogger(__name__)


def build_student(spec: StudentSpec, task: TaskSpec, teacher: PreTrainedModel,
                  teacher_tokenizer: str | None = None) -> PreTrainedModel:
    """A student per ``spec.init`` (see the module docstring); checks the tokenizer is shared."""
    if spec.init == "teacher_layers":
        total = len(encoder_layers(teacher))
        layers = select_layers(total, spec.layers or spec.num_layers, spec.strategy)
        log.info("student = teacher layers %s (0-based) of %d", layers, total)
        # the copy must train even though the frozen teacher it comes from does not
        return keep_layers(teacher, layers).requires_grad_(True).train()
    if spec.init == "pretrained":
        check_same_tokenizer(spec.name_or_path, teacher_tokenizer, teacher)
        check_trained_for(AutoConfig.from_pretrained(resolve_model_path(spec.name_or_path)),
                           task, spec.name_or_path, role="student", labels=False)
        student = build_model(ModelSpec(name_or_path=spec.name_or_path), task, key="student")
    else:
        config = {"vocab_size": teacher.config.vocab_size, **spec.config}
        student = build_model(ModelSpec(pretrained=False, config=config), task, key="student")
    if student.config.vocab_size != teacher.config.vocab_size:
        raise ValueError(
            f"student vocab_size {student.config.vocab_size} != teacher vocab_size "
            f"{teacher.config.vocab_size}: teacher and student must share one tokenizer"
        )
    return student.train()


def check_same_tokenizer(student_ref: str, teacher_ref: str | None,
                         teacher: PreTrainedModel) -> None:
    """Refuse a student whose tokenizer differs from the teacher's (vocabulary and lower-casing)."""
    teacher_ref = teacher_ref or getattr(teacher.config, "_name_or_path", None)
    if not teacher_ref:
        return
    try:
        s_tok, t_tok = load_tokenizer(student_ref), load_tokenizer(teacher_ref)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load tokenizers to compare student.name_or_path={student_ref} "
                         f"with teacher.tokenizer={teacher_ref}: {err}") from err
    probe = "Tokenizers MUST agree: Straße, naïve café."
    if s_tok.get_vocab() != t_tok.get_vocab() or s_tok(probe)["input_ids"] != t_tok(probe)[
            "input_ids"]:
        raise ValueError(
            f"the student '{student_ref}' and the teacher '{resolve_model_path(teacher_ref)}' "
            "use different tokenizers; CKD compares token positions, so they must be identical"
        )
