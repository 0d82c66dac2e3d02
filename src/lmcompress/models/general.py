"""Teacher and student encoders of general distillation: no task head, an MLM head if asked.

The general stage distils an encoder, not a classifier: the teacher is a pretrained encoder
(``AutoModel``; ``AutoModelForMaskedLM`` when the ``mlm`` term is on, which needs the teacher's
own MLM head), and the student is the same kind of model, built (a) from teacher layers, (b) from
a pretrained folder, or (c) from a config of any depth, width and head count. The student is
exported with ``save_pretrained`` and read back by the task stages as ``student=pretrained`` or
``model.name_or_path=...``: their heads are new, the encoder is this one (docs/general.md).
"""

from __future__ import annotations

import logging

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, PreTrainedModel

from lmcompress.models.hub import check_finite_weights, resolve_model_path
from lmcompress.models.layers import select_layers
from lmcompress.models.student import check_same_tokenizer
from lmcompress.models.surgery import encoder_layers, keep_layers
from lmcompress.specs import StudentSpec, TeacherSpec

log = logging.getLogger(__name__)


def build_general_teacher(spec: TeacherSpec, mlm: bool) -> PreTrainedModel:
    """The frozen teacher encoder; with ``mlm``, its MLM head too (refused if it has none)."""
    auto = AutoModelForMaskedLM if mlm else AutoModel
    if not spec.pretrained:  # tests only: a random teacher from spec.config
        fields = dict(spec.config)
        return auto.from_config(AutoConfig.for_model(fields.pop("model_type", "bert"),
                                                     **fields)).requires_grad_(False).eval()
    if not spec.name_or_path:
        raise ValueError("teacher.name_or_path: general distillation needs a pretrained encoder "
                         "(a folder, a hub id or embedded:minilm-l6)")
    path = resolve_model_path(spec.name_or_path)
    if not mlm:
        model = AutoModel.from_pretrained(path)
    else:
        model, info = AutoModelForMaskedLM.from_pretrained(path, output_loading_info=True)
        head = [k for k in info["missing_keys"] if not k.startswith(model.base_model_prefix)]
        if head:
            raise ValueError(f"loss.weights.mlm > 0, but the teacher '{spec.name_or_path}' has no "
                             f"MLM head (missing {head[:3]}...): set loss.weights.mlm=0 or use a "
                             "teacher saved with its masked-LM head")
    check_finite_weights(model, spec.name_or_path, "teacher")
    return model.requires_grad_(False).eval()


def build_general_student(spec: StudentSpec, teacher: PreTrainedModel,
                          teacher_tokenizer: str | None, mlm: bool) -> PreTrainedModel:
    """The student encoder per ``spec.init``, the same kind of model as ``teacher``."""
    auto = AutoModelForMaskedLM if mlm else AutoModel
    if spec.init == "teacher_layers":
        total = len(encoder_layers(teacher))
        layers = select_layers(total, spec.layers or spec.num_layers, spec.strategy)
        log.info("student = teacher layers %s (0-based) of %d", layers, total)
        student = keep_layers(teacher, layers)
    elif spec.init == "pretrained":
        check_same_tokenizer(spec.name_or_path, teacher_tokenizer, teacher)
        student = auto.from_pretrained(resolve_model_path(spec.name_or_path))
        check_finite_weights(student, spec.name_or_path, "student")
    else:
        fields = {"vocab_size": teacher.config.vocab_size, **spec.config}
        model_type = fields.pop("model_type", teacher.config.model_type)
        student = auto.from_config(AutoConfig.for_model(model_type, **fields))
    if student.config.vocab_size != teacher.config.vocab_size:
        raise ValueError(f"student vocab_size {student.config.vocab_size} != teacher vocab_size "
                         f"{teacher.config.vocab_size}: teacher and student must share one "
                         "tokenizer")
    student.requires_grad_(True)
    pooler = getattr(student.base_model, "pooler", None)
    if pooler is not None:  # no relation reads it: kept as built (the teacher's, for teacher
        pooler.requires_grad_(False)  # layers), not trained, and no unused parameter under DDP
    return student.train()
