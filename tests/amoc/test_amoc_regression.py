"""Stepwise OLS on a synthetic design, leave-one-target-domain-out, and the selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmcompress.amoc.regression import (
    RegressionRefused,
    RegressionSpec,
    leave_one_target_out,
    stepwise_ols,
    training_rows,
)
from lmcompress.amoc.select import analyse, select, summarize


def _design(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 8)), columns=[f"x{i}" for i in range(8)])
    x["x7"] = x["x0"] * 0.3 + rng.normal(scale=1.0, size=n)  # correlated with a true variable
    x["const_feature"] = 4.2
    x["y"] = 3.0 * x["x0"] - 2.0 * x["x3"] + 0.8 * x["x5"] + rng.normal(scale=1.0, size=n)
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stepwise_recovers_the_true_variables(seed):
    data = _design(seed=seed)
    features = [*(f"x{i}" for i in range(8)), "const_feature"]
    # at p_enter=0.05 each of the 5 null features enters by chance 5% of the time (seed 0: two
    # do, after the true ones); a strict threshold recovers exactly the true set
    loose = stepwise_ols(data, features, "y")
    assert loose.selected[:3] == ["x0", "x3", "x5"]
    fit = stepwise_ols(data, features, "y", p_enter=0.001, p_remove=0.002)
    assert sorted(fit.selected) == ["x0", "x3", "x5"]
    assert fit.constant == ["const_feature"]
    assert fit.r2 > 0.9 and fit.adj_r2 <= fit.r2
    assert all(fit.pvalues[f] < 0.05 for f in fit.selected)
    # standardised coefficients: the true slope times the feature's std
    assert fit.coef["x0"] == pytest.approx(3.0 * data["x0"].std(ddof=0), rel=0.1)
    assert np.corrcoef(fit.predict(data), data["y"])[0, 1] > 0.95
    assert len(fit.steps) == 3 and fit.steps[0].startswith("+x")


def test_stepwise_refusals():
    data = _design(5)
    with pytest.raises(RegressionRefused, match="5 rows with 9 features"):
        stepwise_ols(data, [*(f"x{i}" for i in range(8)), "const_feature"], "y")
    with pytest.raises(RegressionRefused, match="constant"):
        stepwise_ols(_design().assign(y=1.0), ["x0"], "y")
    with pytest.raises(ValueError, match="p_enter"):
        stepwise_ols(_design(), ["x0"], "y", p_enter=0.2, p_remove=0.1)
    with pytest.raises(ValueError, match="response"):
        RegressionSpec(response="accuracy").check("callbacks.amoc.regression")


def _table(seed: int = 0) -> pd.DataFrame:
    """Candidates of 3 domains x 2 targets each: target score falls with the target ATE."""
    rng = np.random.default_rng(seed)
    rows = []
    for source in ("a", "b", "c"):
        for target in {"a", "b", "c"} - {source}:
            for removed in ("0", "1", "2", "3", "0+1", "2+3", "1+3", "0+2"):
                layers = [int(i) for i in removed.split("+")]
                ate = 0.05 * len(layers) + 0.02 * (3 in layers) + rng.uniform(0, 0.03)
                rows.append({"source": source, "target": target, "removed": removed,
                             "n_removed": len(layers), "ate_target": ate,
                             "ate_source": ate + rng.normal(0, 0.01),
                             **{f"removed_{i}": int(i in layers) for i in range(4)},
                             "base_target_score": 0.9,
                             "target_score": 0.9 - 1.5 * ate + rng.normal(0, 0.005)})
    return pd.DataFrame(rows)


def test_leave_one_target_out_never_sees_the_target():
    table = _table()
    rows = training_rows(table, "b")
    assert set(rows["target"]) == {"a", "c"} and "b" not in set(rows["source"])
    predicted, fits = leave_one_target_out(table, ["ate_target", "ate_source", "n_removed"],
                                           "target_score")
    assert set(fits) == {(s, t) for s in "abc" for t in "abc" if s != t}
    assert all("ate_target" in f.selected for f in fits.values())
    assert predicted.notna().all()
    # the held-out fit for (a -> b) must not change when b's true scores change
    shuffled = table.copy()
    is_b = shuffled["target"] == "b"
    shuffled.loc[is_b, "target_score"] = shuffled.loc[is_b, "target_score"].sample(
        frac=1, random_state=0).to_numpy()
    again, _ = leave_one_target_out(shuffled, ["ate_target", "ate_source", "n_removed"],
                                    "target_score")
    pd.testing.assert_series_equal(predicted[is_b], again[is_b])


def test_selection_baselines_oracle_and_regret():
    table = _table()
    analysis = analyse(table, RegressionSpec(features=["ate_target", "ate_source",
                                                       "n_removed"]))
    entries = analysis.entries
    assert len(entries) == 6 * 2  # pairs x budgets
    first = entries[0]
    group = table[(table.source == first["source"]) & (table.target == first["target"])
                  & (table.n_removed == first["k"])]
    assert first["oracle"]["target_score"] == group["target_score"].max()
    assert first["random"]["target_score"] == pytest.approx(group["target_score"].mean())
    assert first["top"]["removed"] == "3" and first["bottom"]["removed"] == "0"
    assert first["regret"] == pytest.approx(first["oracle"]["target_score"]
                                            - first["amoc"]["target_score"])
    summary = analysis.summary
    assert summary["with_amoc"] == 12 and 0 <= summary["wins"] <= 12
    assert summary["amoc"]["mean_regret"] <= summary["random"]["mean_regret"]
    no_regression = select(table, None, 4)
    assert all(e["amoc"] is None for e in no_regression)
    assert summarize(no_regression)["with_amoc"] == 0
    assert "electronics->" not in str(analysis.to_json())
