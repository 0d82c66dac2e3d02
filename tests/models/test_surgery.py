"""Layer surgery: a kept-layer model equals an HF model built with only those layers."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from lmcompress.models.layers import select_layers
from lmcompress.models.surgery import drop_layers, keep_layers


def _bert(layers: int = 4) -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=layers,
                     num_attention_heads=2, intermediate_size=32, num_labels=2)
    return BertForSequenceClassification(cfg).eval()


def test_select_layers():
    assert select_layers(12, 4, "skip") == [2, 5, 8, 11]
    assert select_layers(6, 3, "skip") == [1, 3, 5]
    assert select_layers(6, 3, "first") == [0, 1, 2]
    assert select_layers(6, [0, 5]) == [0, 5]
    with pytest.raises(IndexError, match="out of range"):
        select_layers(6, [0, 6])
    with pytest.raises(ValueError):
        select_layers(6, 7)


def test_drop_layer_matches_model_built_without_it():
    model = _bert(4)
    smaller = drop_layers(model, [1])
    assert smaller.config.num_hidden_layers == 3 and model.config.num_hidden_layers == 4
    reference = _bert(3)
    state = model.state_dict()
    mapping = {0: 0, 1: 2, 2: 3}
    ref_state = {}
    for key in reference.state_dict():
        src = key
        for new, old in mapping.items():
            prefix = f"bert.encoder.layer.{new}."
            if key.startswith(prefix):
                src = f"bert.encoder.layer.{old}." + key[len(prefix):]
        ref_state[key] = state[src]
    reference.load_state_dict(ref_state)
    ids = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(smaller(input_ids=ids).logits, reference(input_ids=ids).logits)
    n_params = sum(p.numel() for p in smaller.parameters())
    assert n_params == sum(p.numel() for p in reference.parameters())


def test_keep_all_layers_is_identity_and_save_roundtrip(tmp_path):
    model = _bert(3)
    same = keep_layers(model, [0, 1, 2])
    ids = torch.randint(0, 50, (1, 5))
    torch.testing.assert_close(same(input_ids=ids).logits, model(input_ids=ids).logits)
    keep_layers(model, [2]).save_pretrained(tmp_path)
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path)
    assert reloaded.config.num_hidden_layers == 1


def test_student_from_frozen_teacher_layers_is_trainable():
    from lmcompress.models.student import build_student
    from lmcompress.specs import StudentSpec, TaskSpec

    teacher = _bert(4).requires_grad_(False).eval()
    task = TaskSpec(name="t", kind="classification", num_labels=2, metrics=["accuracy"],
                    main_metric="accuracy")
    student = build_student(StudentSpec(init="teacher_layers", num_layers=2), task, teacher)
    assert student.training and all(p.requires_grad for p in student.parameters())
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    logits = student(input_ids=torch.tensor([[1, 2, 3]])).logits
    logits.sum().backward()
    assert student.classifier.weight.grad is not None and teacher.classifier.weight.grad is None
