"""Seed statistics against hand computation and scipy; the Pareto front on a hand example."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from fake_sweeps import ACC, F1, mrpc_sweep
from scipy.stats import ttest_rel

from lmcompress.report.load import load_jobs
from lmcompress.report.stats import aggregate, compare_paired, paired_test, pareto_front


@pytest.fixture
def jobs(tmp_path):
    return load_jobs([mrpc_sweep(tmp_path)])[0]


def test_aggregate_is_mean_sample_std_and_n(jobs):
    stats = aggregate(jobs, ["loss"], ["val/f1", "val/accuracy"])
    assert stats.index.tolist() == ["kd", "kd_ckd"]
    for loss, f1 in F1.items():
        values = list(f1.values())
        mean = sum(values) / 3
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)  # sample std: n - 1 = 2
        assert stats.loc[loss, ("val/f1", "mean")] == pytest.approx(mean)
        assert stats.loc[loss, ("val/f1", "std")] == pytest.approx(std)
        assert stats.loc[loss, ("val/f1", "n")] == 3
        assert stats.loc[loss, ("val/accuracy", "std")] == pytest.approx(
            statistics.stdev(ACC[loss].values()))


def test_paired_test_matches_scipy(jobs):
    result = paired_test(jobs, "loss", "kd_ckd", "kd", "val/f1").iloc[0]
    a, b = list(F1["kd_ckd"].values()), list(F1["kd"].values())
    expected = ttest_rel(a, b)
    assert result["n"] == 3
    assert result["mean_diff"] == pytest.approx((0.03 + 0.00 + 0.04) / 3)
    assert result["t"] == pytest.approx(expected.statistic)
    assert result["p"] == pytest.approx(expected.pvalue)
    assert result["a_wins"] == 2  # seed 2 is a tie


def test_paired_test_pairs_only_common_seeds_per_group():
    jobs = pd.DataFrame({"student": ["s", "s", "s", "t", "t"], "loss": ["a", "b", "a", "a", "b"],
                         "seed": [1, 1, 2, 1, 1], "m": [0.5, 0.4, 0.9, 0.3, 0.35]})
    result = paired_test(jobs, "loss", "a", "b", "m", by=["student"])
    assert result["student"].tolist() == ["s", "t"]
    assert result["n"].tolist() == [1, 1]
    assert result["mean_diff"].tolist() == pytest.approx([0.1, -0.05])
    assert result["p"].isna().all()  # one pair: no test


def test_paired_test_refuses_ambiguous_pairs():
    jobs = pd.DataFrame({"loss": ["a", "a", "b"], "seed": [1, 1, 1], "m": [0.5, 0.6, 0.4]})
    with pytest.raises(ValueError, match="several jobs with loss=a"):
        paired_test(jobs, "loss", "a", "b", "m")


def test_pareto_front_hand_example():
    # (cost, value): B beats C (cheaper, better); E duplicates B; F has no value.
    cost = [1.0, 2.0, 3.0, 4.0, 2.0, 0.5]
    value = [0.5, 0.7, 0.6, 0.9, 0.7, np.nan]
    assert pareto_front(cost, value).tolist() == [True, True, False, True, False, False]
    assert pareto_front([3, 1, 2], [0.9, 0.9, 0.9]).tolist() == [False, True, False]


def test_equal_differences_give_no_t_statistic():
    # One dev example better on every seed (MRPC: 1/408): t would be float noise over float noise.
    # The metrics are stored from float32: the differences carry ~1e-8 of rounding.
    b = pd.Series([0.7206, 0.7108, 0.7083])
    a = (b + 1 / 408).astype("float32").astype("float64")
    result = compare_paired(a, b)
    assert result["mean_diff"] == pytest.approx(1 / 408) and result["a_wins"] == 3
    assert math.isnan(result["t"]) and math.isnan(result["p"])


def test_grid_table_is_rows_by_columns_largest_first():
    from lmcompress.report.config import Metric
    from lmcompress.report.tables import grid_tables

    jobs = pd.DataFrame({"experiment": ["a"] * 6, "seed": [1, 2, 1, 2, 1, 2],
                         "width": [1.0, 1.0, 0.5, 0.5, 1.0, 1.0],
                         "depth": [1.0, 1.0, 1.0, 1.0, 0.5, 0.5],
                         "m": [0.90, 0.92, 0.80, 0.84, 0.70, 0.70]})
    [(name, matrix)] = grid_tables(jobs, "width", "depth", ["experiment"], Metric("m", scale=100))
    assert name == "a (n = 2)"
    assert matrix.columns.tolist() == ["width \\ depth", "depth 1.0", "depth 0.5"]
    assert matrix.values.tolist() == [["1.0", "91.00 ± 1.41", "70.00 ± 0.00"],
                                      ["0.5", "82.00 ± 2.83", "–"]]
