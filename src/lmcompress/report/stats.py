"""Statistics over seeds: mean ± std per group, paired t-tests and bootstraps, Pareto fronts."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ttest_rel


def aggregate(jobs: pd.DataFrame, group_by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and n of each metric per group, groups in first-seen order.

    Returns:
        One row per group (index: ``group_by``), columns ``(metric, "mean" | "std" | "n")``.
        ``std`` is NaN for a single seed; ``n`` counts the jobs that have the metric.
    """
    grouped = jobs.groupby(group_by, sort=False, dropna=False)[metrics]
    return grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"}, level=1)


def paired_test(jobs: pd.DataFrame, key: str, a: str, b: str, metric: str,
                by: Sequence[str] = (), seed_key: str = "seed") -> pd.DataFrame:
    """``key=a`` against ``key=b`` on ``metric``, seed by seed, within each group of ``by``.

    Only seeds that both sides have are paired. The test is scipy's ``ttest_rel(a, b)``
    (two-sided), which needs 2 pairs or more (else t and p are NaN).

    Returns:
        One row per group: the ``by`` values, ``n`` (pairs), ``mean_diff`` and ``std_diff``
        of ``a - b``, ``t``, ``p`` and ``a_wins`` (seeds where a > b).
    """
    rows = []
    for group, part in _groups(jobs, list(by)):
        side_a = _by_seed(part, key, a, metric, seed_key)
        side_b = _by_seed(part, key, b, metric, seed_key)
        seeds = side_a.index.intersection(side_b.index, sort=False)
        rows.append({**group, **compare_paired(side_a[seeds], side_b[seeds])})
    return pd.DataFrame(rows)


def compare_paired(a: pd.Series, b: pd.Series) -> dict[str, Any]:
    """Mean and std of ``a - b``, paired t-test, and how often ``a > b`` (aligned series)."""
    diff = a - b
    t, p = math.nan, math.nan
    # Equal differences (one example's worth on every seed, say) leave only the float32 rounding of
    # the stored metrics (~1e-7 relative) in their spread: t would be noise over noise.
    scale = max(float(np.abs(a).max()), float(np.abs(b).max())) if len(diff) else 0.0
    if len(diff) >= 2 and diff.std() > 1e-6 * scale:
        with np.errstate(divide="ignore", invalid="ignore"):  # constant differences: t = ±inf/NaN
            result = ttest_rel(a.to_numpy(), b.to_numpy())
        t, p = float(result.statistic), float(result.pvalue)
    return {"n": len(diff), "mean_diff": diff.mean(), "std_diff": diff.std(), "t": t, "p": p,
            "a_wins": int((diff > 0).sum())}


def cluster_bootstrap(values: Sequence[float], clusters: Sequence[Any], n_boot: int = 2000,
                      seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """The mean of ``values`` and its percentile bootstrap interval, resampling whole clusters.

    ``values`` are paired differences (or scores) of groups; groups of one cluster (e.g. one
    source -> target pair: its budgets and seeds share a target test set) are correlated, so the
    resampling draws clusters with replacement and keeps each drawn cluster's groups together.
    Seeded (numpy's default generator), so a report is reproducible.

    Returns:
        ``mean``, ``low``, ``high`` (the ``level`` interval), ``n`` (values), ``clusters``.
    """
    values = np.asarray(values, dtype=float)
    labels = np.asarray([str(c) for c in clusters])
    if len(values) != len(labels) or not len(values):
        raise ValueError(f"cluster_bootstrap: {len(values)} values for {len(labels)} clusters")
    names, inverse = np.unique(labels, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(names))
    counts = np.bincount(inverse, minlength=len(names)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high),
            "n": len(values), "clusters": len(names)}


def pareto_front(cost: Sequence[float], value: Sequence[float]) -> np.ndarray:
    """Mask of the points on the front: low cost, high value.

    A point is on the front when no other point costs at most as much and scores at least as
    well, being strictly better in one of the two. Of identical points only the first is kept.
    Points with a NaN coordinate are never on it.
    """
    cost, value = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    valid = ~(np.isnan(cost) | np.isnan(value))
    on_front = np.zeros(len(cost), dtype=bool)
    best = -np.inf
    for i in np.lexsort((-value, cost)):  # cheapest first; at equal cost, the best first
        if valid[i] and value[i] > best:
            on_front[i], best = True, value[i]
    return on_front


def _groups(jobs: pd.DataFrame, by: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    if not by:
        yield {}, jobs
        return
    for values, part in jobs.groupby(by, sort=False, dropna=False):
        yield dict(zip(by, values, strict=True)), part


def _by_seed(jobs: pd.DataFrame, key: str, value: str, metric: str, seed_key: str) -> pd.Series:
    """``metric`` of the jobs with ``key == value`` (compared as text), indexed by seed."""
    side = jobs[jobs[key].astype(str) == str(value)].set_index(seed_key)[metric].dropna()
    repeated = side.index[side.index.duplicated()].tolist()
    if repeated:
        raise ValueError(f"several jobs with {key}={value} and {seed_key} {repeated} in one group: "
                         "add the key that tells them apart to group_by")
    return side
