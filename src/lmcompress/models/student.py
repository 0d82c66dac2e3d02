"""Build the frozen teacher and a student of any shape for distillation (no Lightning).

A student is built (a) from the teacher by keeping a layer subset (PKD-style init: embeddings,
the chosen layers, pooler and classifier are copied), (b) from a pretrained directory or hub id,
or (c) from a config of any depth/hidden/heads with random weights. Whatever the route, it must
share the teacher's tokenizer, because relation losses compare the same token positions.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

from transformers import PreTrainedModel

from lmcompress.losses.ckd import match_layers
from lmcompress.models.hf import build_model, load_tokenizer, resolve_model_path
from lmcompress.models.surgery import encoder_layers, keep_layers, select_layers

log = logging.getLogger(__name__)
STUDENT_INITS = ("teacher_layers", "pretrained", "config")


def build_teacher(spec: dict[str, Any], task: dict[str, Any]) -> PreTrainedModel:
    """The fine-tuned teacher: a ``save_pretrained`` export/id, or a teacher-stage checkpoint."""
    ckpt = spec.get("checkpoint")
    if ckpt:
        from lmcompress.modules.finetune import FinetuneModule  # lazy: models/ stays Lightning-free

        module = FinetuneModule.load_from_checkpoint(ckpt, map_location="cpu")
        return module.model
    return build_model(spec.get("name_or_path"), task["kind"], task["num_labels"],
                       config_overrides=spec.get("config"),
                       pretrained=spec.get("pretrained", True),
                       label_names=task.get("label_names"))


def build_student(spec: dict[str, Any], task: dict[str, Any],
                  teacher: PreTrainedModel) -> PreTrainedModel:
    """A student per ``spec['init']`` (see module docstring); checks the tokenizer is shared."""
    init = spec.get("init", "teacher_layers")
    if init not in STUDENT_INITS:
        raise ValueError(f"student init '{init}' is not one of {STUDENT_INITS}")
    if init == "teacher_layers":
        num = len(encoder_layers(teacher))
        keep = spec.get("layers") or spec.get("num_layers")
        if keep is None:
            raise ValueError("model.num_layers (or model.layers) is required for teacher_layers")
        idx = select_layers(num, keep if isinstance(keep, int) else list(keep),
                            spec.get("strategy", "skip"))
        log.info("student = teacher layers %s (0-based) of %d", idx, num)
        # the copy must train even though the frozen teacher it comes from does not
        return keep_layers(teacher, idx).requires_grad_(True).train()
    if init == "pretrained":
        ref = spec.get("name_or_path")
        if not ref:
            raise ValueError("model.name_or_path is required for init=pretrained")
        check_same_tokenizer(ref, spec.get("teacher_tokenizer"), teacher)
        student = build_model(ref, task["kind"], task["num_labels"], pretrained=True,
                              label_names=task.get("label_names"))
    else:
        overrides = dict(spec.get("config") or {})
        overrides.setdefault("vocab_size", teacher.config.vocab_size)
        student = build_model(None, task["kind"], task["num_labels"], overrides,
                              pretrained=False, label_names=task.get("label_names"))
    if student.config.vocab_size != teacher.config.vocab_size:
        raise ValueError(
            f"student vocab_size {student.config.vocab_size} != teacher vocab_size "
            f"{teacher.config.vocab_size}: teacher and student must share one tokenizer"
        )
    return student


def check_same_tokenizer(student_ref: str, teacher_ref: str | None,
                         teacher: PreTrainedModel) -> None:
    """Refuse a student whose tokenizer differs from the teacher's (vocabulary and lower-casing)."""
    teacher_ref = teacher_ref or getattr(teacher.config, "_name_or_path", None)
    if not teacher_ref:
        return
    try:
        s_tok, t_tok = load_tokenizer(student_ref), load_tokenizer(teacher_ref)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load tokenizers to compare '{student_ref}' with "
                         f"'{teacher_ref}': {err}") from err
    probe = "Tokenizers MUST agree: Straße, naïve café."
    if s_tok.get_vocab() != t_tok.get_vocab() or s_tok(probe)["input_ids"] != t_tok(probe)[
            "input_ids"]:
        raise ValueError(
            f"the student '{student_ref}' and the teacher '{resolve_model_path(teacher_ref)}' "
            "use different tokenizers; CKD compares token positions, so they must be identical"
        )


def resolve_layer_map(teacher_layers: int, student_layers: int,
                      layer_map: dict[str, list[int]] | None, uses_ltr: bool,
                      allow_uninformative_ltr: bool = False) -> tuple[list[int], list[int]]:
    """Hidden-state indices (0 = embeddings) matched between teacher and student.

    Raises:
        IndexError: an explicit map names a layer the model does not have.
        ValueError: mismatched map lengths, or a co-prime depth pair with LTR terms on (K = 2,
            LTR is then constant) unless ``allow_uninformative_ltr``.
    """
    if layer_map:
        t_idx, s_idx = list(layer_map["teacher"]), list(layer_map["student"])
        if len(t_idx) != len(s_idx) or not t_idx:
            raise ValueError(f"layer_map: teacher {t_idx} and student {s_idx} differ in length")
        for name, idx, top in (("teacher", t_idx, teacher_layers),
                               ("student", s_idx, student_layers)):
            bad = [i for i in idx if not 0 <= i <= top]
            if bad:
                raise IndexError(f"layer_map.{name}: index {bad[0]} out of range 0..{top} "
                                 f"(0 = embeddings, {top} = last layer)")
    else:
        t_idx, s_idx = match_layers(teacher_layers, student_layers)
    if uses_ltr and len(t_idx) <= 2:
        msg = (f"student depth {student_layers} and teacher depth {teacher_layers} share no "
               f"divisor (gcd={math.gcd(teacher_layers, student_layers)}): only {len(t_idx)} "
               "layers match, so the LTR terms carry no information")
        if not allow_uninformative_ltr:
            raise ValueError(msg + "; pick a depth dividing the teacher's, give layer_map, or "
                             "set allow_uninformative_ltr=true")
        warnings.warn(msg, stacklevel=2)
    return t_idx, s_idx

