"""Which layers a smaller model keeps, and which hidden states of two models are compared.

Layer numbers: ``layers`` are 0-based Transformer layer indices; a *hidden-state index* counts
the embedding output as 0, so layer ``i``'s output is hidden state ``i + 1`` (HF
``output_hidden_states`` order).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from lmcompress.specs import LayerMapSpec


def select_layers(num_layers: int, keep: int | Sequence[int], strategy: str = "skip",
                  key: str = "student.layers") -> list[int]:
    """0-based indices of the layers a ``keep``-layer model starts from.

    ``strategy="first"`` takes layers 0..k-1 (PKD "first" init); ``"skip"`` takes every
    (L/k)-th layer ending at the last one (12 -> 4: 2, 5, 8, 11). A list is validated and returned.
    """
    if not isinstance(keep, int):
        idx = [int(i) for i in keep]
        bad = [i for i in idx if not 0 <= i < num_layers]
        if bad or not idx:
            raise IndexError(f"{key}: layer indices {bad or idx} out of range for "
                             f"{num_layers} layers (0-based)")
        if len(set(idx)) != len(idx):
            raise ValueError(f"{key}: duplicate layer indices in {idx}")
        return idx
    if not 1 <= keep <= num_layers:
        raise ValueError(f"{key.rsplit('.', 1)[0]}.num_layers={keep}: cannot keep {keep} of "
                         f"{num_layers} layers")
    if strategy == "first":
        return list(range(keep))
    if strategy == "skip":
        step = num_layers / keep
        return [round(step * (i + 1)) - 1 for i in range(keep)]
    raise ValueError(f"unknown layer selection strategy '{strategy}' (first | skip)")


def match_layers(num_teacher_layers: int, num_student_layers: int) -> LayerMapSpec:
    """Hidden-state indices of CKD's ``emb+skip`` matching (docs/ckd.md, "Layer matching").

    With ``G = gcd(L_T, L_S)``: teacher ``k·L_T/G`` <-> student ``k·L_S/G`` for ``k = 0..G``.
    12 -> 6 gives teacher [0, 2, 4, 6, 8, 10, 12] and student [0..6]; co-prime depths give K = 2.
    """
    if num_teacher_layers < 1 or num_student_layers < 1:
        raise ValueError(f"layer counts must be >= 1, got {num_teacher_layers}, "
                         f"{num_student_layers}")
    g = math.gcd(num_teacher_layers, num_student_layers)
    return LayerMapSpec(teacher=[k * num_teacher_layers // g for k in range(g + 1)],
                        student=[k * num_student_layers // g for k in range(g + 1)])


def resolve_layer_map(num_teacher_layers: int, num_student_layers: int,
                      layer_map: LayerMapSpec | None, uses_ltr: bool,
                      allow_uninformative_ltr: bool = False,
                      key: str = "module.layer_map", teacher_h0: bool = True,
                      student_h0: bool = True) -> LayerMapSpec:
    """The matched hidden-state indices: ``layer_map`` if given (validated), else ``emb+skip``.

    ``teacher_h0`` / ``student_h0`` say whether that model's hidden state 0 carries absolute
    positions (``FamilyAdapter.positions_in_embeddings``); when one does not, the default
    matching leaves out the embedding pair ``(0, 0)`` (docs/ckd.md, "Layer matching").

    Raises:
        IndexError: an explicit map names a hidden state the model does not have.
        ValueError: mismatched map lengths; an explicit map matching hidden state 0 of a model
            without positions in it; or a co-prime depth pair with LTR terms on (K = 2,
            LTR is then constant) unless ``allow_uninformative_ltr``.
    """
    if layer_map is not None:
        if len(layer_map.teacher) != len(layer_map.student) or not layer_map.teacher:
            raise ValueError(f"{key}: teacher {layer_map.teacher} and student "
                             f"{layer_map.student} differ in length")
        for name, idx, top in (("teacher", layer_map.teacher, num_teacher_layers),
                               ("student", layer_map.student, num_student_layers)):
            bad = [i for i in idx if not 0 <= i <= top]
            if bad:
                raise IndexError(f"{key}.{name}: index {bad[0]} out of range 0..{top} "
                                 f"(0 = embeddings, {top} = last layer)")
        for name, idx, usable in (("teacher", layer_map.teacher, teacher_h0),
                                  ("student", layer_map.student, student_h0)):
            if 0 in idx and not usable:
                raise ValueError(f"{key}.{name}: hidden state 0 of this {name} carries no "
                                 "positions (equal tokens have equal states; CKD's angles "
                                 "divide by their zero difference): match layers >= 1")
        matched = layer_map
    else:
        matched = match_layers(num_teacher_layers, num_student_layers)
        if not (teacher_h0 and student_h0):
            matched = LayerMapSpec(teacher=matched.teacher[1:], student=matched.student[1:])
    if uses_ltr and len(matched.teacher) <= 2:
        why = (f"student depth {num_student_layers} and teacher depth {num_teacher_layers} "
               f"share no divisor (gcd={math.gcd(num_teacher_layers, num_student_layers)})")
        if layer_map is None and not (teacher_h0 and student_h0):
            why = (f"gcd({num_teacher_layers}, {num_student_layers}) = "
                   f"{math.gcd(num_teacher_layers, num_student_layers)} and hidden state 0 is "
                   "left out (no positions in it)")
        msg = (f"{why}: only {len(matched.teacher)} layers match, so the LTR terms carry no "
               "information")
        if not allow_uninformative_ltr:
            raise ValueError(msg + f"; pick a depth dividing the teacher's, give {key}, or set "
                             "module.allow_uninformative_ltr=true")
        warnings.warn(msg, stacklevel=2)
    return matched
