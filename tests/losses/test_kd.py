"""Prediction-layer losses against float64 formulas written here."""

from __future__ import annotations

import math

import pytest
import torch

from lmcompress.losses.kd import hard_ce, hard_mse, kd_mse, soft_cross_entropy


def _naive_soft_ce(s, t, temperature):
    total = 0.0
    rows = s.reshape(-1, s.shape[-1]).tolist(), t.reshape(-1, t.shape[-1]).tolist()
    for zs, zt in zip(*rows, strict=True):
        et = [math.exp(v / temperature) for v in zt]
        p = [v / sum(et) for v in et]
        log_z = math.log(sum(math.exp(v / temperature) for v in zs))
        total -= sum(pi * (v / temperature - log_z) for pi, v in zip(p, zs, strict=True))
    return total / len(rows[0])


@pytest.mark.parametrize("temperature", [1.0, 3.0, 0.5])
@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 7)])
def test_soft_cross_entropy_equals_formula(temperature, shape):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
    t = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
    got = soft_cross_entropy(s, t, temperature=temperature)
    assert got.item() == pytest.approx(_naive_soft_ce(s, t, temperature), rel=1e-12)
    scaled = soft_cross_entropy(s, t, temperature=temperature, scale_by_t2=True)
    assert scaled.item() == pytest.approx(got.item() * temperature**2, rel=1e-12)


def test_soft_cross_entropy_is_minimal_at_the_teacher_and_never_updates_it():
    t = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    s = t.detach().clone().requires_grad_()
    soft_cross_entropy(s, t, temperature=3.0).backward()
    assert s.grad.abs().max() < 1e-12 and t.grad is None
    moved = soft_cross_entropy(s.detach() + torch.tensor([1.0, 0, 0]), t, temperature=3.0)
    assert moved > soft_cross_entropy(s.detach(), t, temperature=3.0)


def test_temperature_flattens_the_target():
    s = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([[4.0, 0.0]], dtype=torch.float64)
    # with a uniform student the loss is log 2 whatever the target; its gradient shrinks with T
    grads = []
    for temperature in (1.0, 4.0):
        x = s.clone().requires_grad_()
        loss = soft_cross_entropy(x, t, temperature=temperature)
        assert loss.item() == pytest.approx(math.log(2))
        loss.backward()
        grads.append(x.grad.abs().max().item())
    assert grads[1] < grads[0]


def test_bad_kd_arguments():
    with pytest.raises(ValueError, match="temperature"):
        soft_cross_entropy(torch.zeros(2, 2), torch.zeros(2, 2), temperature=0)
    with pytest.raises(ValueError, match="shapes differ"):
        soft_cross_entropy(torch.zeros(2, 2), torch.zeros(2, 3))


def test_kd_mse_and_hard_losses():
    s = torch.tensor([[1.0], [3.0]])
    t = torch.tensor([[2.0], [1.0]])
    assert kd_mse(s, t, temperature=2.0).item() == pytest.approx(((0.5**2) + 1.0**2) / 2)
    assert hard_mse(s, torch.tensor([1.0, 1.0])).item() == pytest.approx(2.0)
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]]])
    labels = torch.tensor([[0, 0, -100]])  # the last token (padding / later sub-token) is ignored
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))) / 2
    assert hard_ce(logits, labels).item() == pytest.approx(expected, rel=1e-6)
