"""Every task metric against scikit-learn / SciPy, on ordinary and degenerate predictions."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from lmcompress.metrics import (
    TaskMetrics,
    accuracy,
    binary_f1,
    macro_f1,
    matthews,
    pearson,
    spearman,
)

RNG = np.random.default_rng(0)
CLASS_CASES = {
    "ordinary": (RNG.integers(0, 3, 200), RNG.integers(0, 3, 200)),
    "constant prediction": (np.ones(50, int), RNG.integers(0, 2, 50)),
    "one class in target": (RNG.integers(0, 2, 40), np.zeros(40, int)),
    "both constant, equal": (np.zeros(30, int), np.zeros(30, int)),
    "perfect": (np.arange(30) % 3, np.arange(30) % 3),
}


@pytest.mark.parametrize("case", CLASS_CASES)
def test_classification_metrics_equal_sklearn(case):
    preds, target = CLASS_CASES[case]
    p, t = torch.tensor(preds), torch.tensor(target)
    assert accuracy(p, t) == pytest.approx(skm.accuracy_score(target, preds))
    assert matthews(p, t, 3) == pytest.approx(skm.matthews_corrcoef(target, preds), abs=1e-12)
    assert macro_f1(p, t) == pytest.approx(
        skm.f1_score(target, preds, average="macro", zero_division=0.0))
    if max(preds.max(), target.max()) <= 1:
        assert binary_f1(p, t) == pytest.approx(skm.f1_score(target, preds, zero_division=0.0))


def test_constant_predictor_has_zero_matthews_correlation():
    # the CoLA case: answering "acceptable" for all 527 in-domain dev sentences
    target = torch.tensor([1] * 363 + [0] * 164)
    assert matthews(torch.ones(527, dtype=torch.long), target, 2) == 0.0


REG_CASES = {
    "ordinary": (RNG.normal(size=100), RNG.normal(size=100)),
    "ties": (np.round(RNG.normal(size=80)), np.round(RNG.normal(size=80), 1)),
    "monotone": (np.arange(20.0) ** 3, np.arange(20.0)),
}


@pytest.mark.parametrize("case", REG_CASES)
def test_correlations_equal_scipy(case):
    x, y = REG_CASES[case]
    assert pearson(torch.tensor(x), torch.tensor(y)) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(torch.tensor(x), torch.tensor(y)) == pytest.approx(stats.spearmanr(x, y)[0])


def test_correlation_with_a_constant_is_zero_where_scipy_is_nan():
    x, y = torch.full((10,), 2.5), torch.arange(10.0)
    with pytest.warns(stats.ConstantInputWarning):
        assert np.isnan(stats.pearsonr(x.numpy(), y.numpy())[0])
    assert pearson(x, y) == 0.0 and spearman(x, y) == 0.0


def test_task_metrics_ignore_padding_tokens_and_warn_on_constant_predictions(caplog):
    tokens = TaskMetrics("token_classification", ["token_accuracy"], 4, where="val")
    tokens.update(torch.tensor([[1, 2, 3], [0, 0, 0]]), torch.tensor([[1, -100, 3], [0, 1, -100]]))
    assert tokens.compute()["token_accuracy"].item() == pytest.approx(3 / 4)
    labels = TaskMetrics("classification", ["accuracy", "matthews"], 2, ["neg", "pos"], "val")
    labels.update(torch.ones(6, dtype=torch.long), torch.tensor([0, 1, 1, 0, 1, 1]))
    with caplog.at_level(logging.WARNING, logger="lmcompress.metrics"):
        values = labels.compute()
    assert values["matthews"].item() == 0.0
    assert "all 6 predictions are 'pos'" in caplog.text


def test_unknown_or_kind_incompatible_metrics_are_refused():
    with pytest.raises(ValueError, match="choose from"):
        TaskMetrics("regression", ["accuracy"], 1)
    with pytest.raises(ValueError, match="binary F1"):
        TaskMetrics("classification", ["f1"], 3)
