"""Loss config keys reach the maths: each checked against a computation written here.

``loss.temperature`` and ``loss.kd_t2`` against a hand-written softmax cross-entropy on a 2x3
case, then through the distill stage's config; ``module.layer_map`` (and the default matching)
against the objective fed hidden states that were selected by hand.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from lmcompress.losses import Objective, TermInputs
from lmcompress.specs import LayerMapSpec
from lmcompress.utils.instantiate import instantiate_plain

S = [[1.0, -0.5, 2.0], [0.3, 0.0, -1.2]]
T = [[0.2, 1.5, -0.7], [2.2, -0.4, 0.1]]


def _hand_kd(student, teacher, temperature):
    """-(1/N) sum_rows sum_c softmax(t/T)_c log softmax(s/T)_c, in plain floats."""
    total = 0.0
    for zs, zt in zip(student, teacher, strict=True):
        et = [math.exp(v / temperature) for v in zt]
        es = [math.exp(v / temperature) for v in zs]
        total -= sum(a / sum(et) * math.log(b / sum(es)) for a, b in zip(et, es, strict=True))
    return total / len(student)


def _outputs(logits, hidden=None):
    return SimpleNamespace(logits=torch.tensor(logits, dtype=torch.float64),
                           hidden_states=hidden)


@pytest.mark.parametrize("temperature", [1.0, 2.5, 4.0])
@pytest.mark.parametrize("kd_t2", [False, True])
def test_kd_term_uses_the_configured_temperature(temperature, kd_t2):
    objective = Objective.from_config({"weights": {"kd": 1.0}, "temperature": temperature,
                                       "kd_t2": kd_t2})
    inputs = TermInputs(_outputs(S), _outputs(T), {"attention_mask": torch.ones(2, 1)})
    total, parts = objective(inputs)
    expected = _hand_kd(S, T, temperature) * (temperature**2 if kd_t2 else 1.0)
    assert parts["kd"].item() == pytest.approx(expected, rel=1e-6)
    assert total.item() == pytest.approx(expected, rel=1e-6)


def _batch():
    return {"input_ids": torch.tensor([[101, 2204, 3185, 2307, 102], [101, 2919, 102, 0, 0]]),
            "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
            "labels": torch.tensor([1, 0])}


def test_distill_stage_routes_loss_temperature_and_weights(make_cfg):
    cfg = make_cfg("distill", "teacher=tiny", "student=tiny", "loss=kd", "loss.temperature=2.5",
                   "loss.weights.task=0.25", "loss.weights.kd=0.75")
    module = instantiate_plain(cfg.module).eval()
    with torch.no_grad():  # random-init logits are ~0.01, where T hardly matters: widen them
        for model in (module.model, module.teacher):
            model.classifier.weight.mul_(300.0)
    batch = _batch()
    with torch.no_grad():
        total, parts = module.objective(module.term_inputs(batch))
        s = module(batch).logits.double().tolist()
        t = module.teacher(**module.model_inputs(batch)).logits.double().tolist()
    kd = _hand_kd(s, t, 2.5)
    ce = -sum(math.log(math.exp(row[y]) / sum(math.exp(v) for v in row))
              for row, y in zip(s, batch["labels"].tolist(), strict=True)) / 2
    assert parts["kd"].item() == pytest.approx(kd, rel=1e-5)
    assert abs(_hand_kd(s, t, 1.0) - kd) > 1e-2 * kd  # T = 1 would be told apart
    assert parts["task"].item() == pytest.approx(ce, rel=1e-5)
    assert total.item() == pytest.approx(0.25 * ce + 0.75 * kd, rel=1e-5)


@pytest.mark.parametrize("layer_map", [None, {"teacher": [0, 1, 4], "student": [0, 1, 2]}])
def test_ckd_reads_each_model_with_its_own_layer_indices(make_cfg, layer_map):
    """Teacher 4 layers, student 2: the terms equal the objective on hand-picked states."""
    overrides = ["teacher=tiny", "student=tiny", "loss=kd_ckd",
                 "teacher.config.num_hidden_layers=4", "loss.ckd.window=3"]
    if layer_map:
        overrides.append(f"module.layer_map={{teacher: {layer_map['teacher']}, "
                         f"student: {layer_map['student']}}}".replace("'", ""))
    torch.manual_seed(0)
    module = instantiate_plain(make_cfg("distill", *overrides).module).eval()
    # emb+skip of 4 -> 2: teacher states 0, 2, 4 against student states 0, 1, 2
    picked = layer_map or {"teacher": [0, 2, 4], "student": [0, 1, 2]}
    batch = _batch()
    with torch.no_grad():
        _, parts = module.objective(module.term_inputs(batch))
        student = module(batch, output_hidden_states=True)
        teacher = module.teacher(**module.model_inputs(batch), output_hidden_states=True)
    by_hand = TermInputs(
        SimpleNamespace(logits=student.logits,
                        hidden_states=[student.hidden_states[i] for i in picked["student"]]),
        SimpleNamespace(logits=teacher.logits,
                        hidden_states=[teacher.hidden_states[i] for i in picked["teacher"]]),
        batch, "classification", LayerMapSpec(teacher=[0, 1, 2], student=[0, 1, 2]))
    _, expected = module.objective(by_hand)
    for name in ("wr_pair", "wr_triple", "ltr_pair", "ltr_triple"):
        assert parts[name].item() == pytest.approx(expected[name].item(), rel=1e-5), name
    # a wrong teacher map moves the values by over 100x the tolerance above (random-init
    # layers are alike, so the margin is small in absolute terms but far from float noise)
    wrong = TermInputs(by_hand.student, SimpleNamespace(
        logits=teacher.logits, hidden_states=[teacher.hidden_states[i] for i in (0, 1, 2)]),
        batch, "classification", by_hand.layer_map)
    _, other = module.objective(wrong)
    for name in ("wr_pair", "ltr_pair"):
        assert abs(other[name].item() - expected[name].item()) > 1e-3 * expected[name].item()


@pytest.mark.parametrize("mask_padding", [False, True])
def test_hidden_mse_uses_the_layer_map_and_loss_hidden_mask_padding(mask_padding):
    """Sum over matched pairs of the mean squared difference, by hand (real tokens only when
    ``loss.hidden.mask_padding``)."""
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(2, 3, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    teacher = [torch.randn(2, 3, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    objective = Objective.from_config({"weights": {"hidden_mse": 1.0},
                                       "hidden": {"mask_padding": mask_padding}})
    inputs = TermInputs(_outputs(S, student), _outputs(T, teacher), {"attention_mask": mask},
                        "classification", LayerMapSpec(teacher=[0, 2], student=[0, 1]))
    _, parts = objective(inputs)
    expected = 0.0
    for s, t in ((student[0], teacher[0]), (student[1], teacher[2])):
        values = [float((s[b, i, d] - t[b, i, d]) ** 2) for b in range(2) for i in range(3)
                  for d in range(4) if not mask_padding or mask[b, i]]
        expected += sum(values) / len(values)
    assert parts["hidden_mse"].item() == pytest.approx(expected, rel=1e-6)
