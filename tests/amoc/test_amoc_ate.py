"""ATE = mean total-variation distance, checked against hand computations."""

from __future__ import annotations

import pytest
import torch

from lmcompress.amoc.ate import ate, total_variation


def test_classification_ate_by_hand():
    base = [torch.tensor([[0.9, 0.1], [0.5, 0.5]]), torch.tensor([[0.2, 0.8]])]
    cand = [torch.tensor([[0.6, 0.4], [0.5, 0.5]]), torch.tensor([[0.7, 0.3]])]
    # TV per example: 0.3, 0.0, 0.5 -> mean over 3 examples (not over batches)
    assert ate(base, cand) == pytest.approx((0.3 + 0.0 + 0.5) / 3)
    three = total_variation(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.3, 0.5]))
    assert float(three) == pytest.approx(0.5 * (0.3 + 0.0 + 0.3))
    assert ate(base, base) == 0.0


def test_token_ate_averages_over_counted_tokens():
    base = [torch.tensor([[[1.0, 0.0], [0.5, 0.5], [0.3, 0.7]]])]
    cand = [torch.tensor([[[0.0, 1.0], [0.4, 0.6], [0.3, 0.7]]])]
    mask = [torch.tensor([[True, True, False]])]  # the last token is padding / a later piece
    assert ate(base, cand, mask) == pytest.approx((1.0 + 0.1) / 2)
    assert ate(base, cand) == pytest.approx((1.0 + 0.1 + 0.0) / 3)


def test_ate_refusals():
    with pytest.raises(ValueError, match="shapes differ"):
        total_variation(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty split"):
        ate([torch.zeros(1, 1, 2)], [torch.zeros(1, 1, 2)], [torch.zeros(1, 1, dtype=torch.bool)])
