"""Pick a candidate per (pair, budget) and compare it with the baselines (docs/amoc.md).

Per source S, target T and budget k, among the candidates removing k layers:

* ``amoc``: the best *predicted* target score (leave-one-target-out stepwise OLS); candidates
  predicted equal (an intercept-only fit predicts one value for all) are drawn between at random,
  seeded by ``regression.seed`` and the group, so no candidate wins ties by its row order;
* ``ate_min``: the smallest target ATE (a label-free ranking without regression; ours);
* ``full``: the uncompressed model (a reference, not a competitor);
* ``random``: mean and std of the true target score over all k-candidates;
* ``top`` / ``bottom`` / ``alternate``: the fixed patterns (Sajjad et al.);
* ``oracle``: the best true target score (the upper bound).

``regret`` = oracle score - AMoC's score; ``win`` = AMoC beats every literature baseline
(random mean, top, bottom, alternate) strictly; ``tie`` = it equals the best of them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from lmcompress.amoc.candidates import PATTERNS, fixed_pattern
from lmcompress.amoc.features import (
    CANDIDATE_FEATURES,
    INDICATOR_PREFIX,
    PAIR_FEATURES,
    feature_columns,
)
from lmcompress.amoc.regression import RegressionSpec, StepwiseFit, leave_one_target_out

METHODS = ("amoc", "ate_min", "random", *PATTERNS, "oracle")
COMPETITORS = ("random", *PATTERNS)


def _pick(rows: pd.DataFrame, index: Any, predicted: pd.Series | None = None) -> dict[str, Any]:
    row = rows.loc[index]
    out = {"removed": str(row["removed"]), "target_score": float(row["target_score"])}
    if predicted is not None:
        out["predicted"] = float(predicted.loc[index])
    return out


def _pattern(rows: pd.DataFrame, pattern: str, num_layers: int, k: int) -> dict | None:
    candidate = fixed_pattern(pattern, num_layers, k)
    match = rows[rows["removed"] == candidate.name] if candidate else rows.iloc[:0]
    return _pick(rows, match.index[0]) if len(match) else None


def best_predicted(usable: pd.Series, seed: int, group: str) -> tuple[Any, int]:
    """The index of the highest prediction, ties drawn at random; and how many tied.

    Predictions within 1e-9 (relative) of the maximum count as tied (float noise of equal fits).
    The draw is seeded by ``seed`` and the group's name, so it is reproducible and independent
    of the other groups.
    """
    top = usable.max()
    tied = usable.index[np.isclose(usable.to_numpy(), top, rtol=1e-9, atol=1e-12)]
    return random.Random(f"{seed}:{group}").choice(list(tied)), len(tied)


def select_budget(rows: pd.DataFrame, predicted: pd.Series | None, num_layers: int,
                  patterns: Sequence[str] = PATTERNS, seed: int = 0) -> dict[str, Any]:
    """The choices and baselines of one (source, target, budget) group of candidates."""
    first = rows.iloc[0]
    k = int(first["n_removed"])
    scores = rows["target_score"]
    entry: dict[str, Any] = {
        "source": str(first["source"]), "target": str(first["target"]), "k": k,
        "n_candidates": len(rows), "full": float(first["base_target_score"]),
        "random": {"target_score": float(scores.mean()), "std": float(scores.std(ddof=0))},
        "oracle": _pick(rows, scores.idxmax()),
        "ate_min": _pick(rows, rows["ate_target"].idxmin()), "amoc": None,
    }
    for pattern in patterns:
        entry[pattern] = _pattern(rows, pattern, num_layers, k)
    usable = predicted.loc[rows.index].dropna() if predicted is not None else pd.Series()
    if len(usable):
        group = f"{entry['source']}->{entry['target']}:{k}"
        chosen, tied = best_predicted(usable, seed, group)
        entry["amoc"] = _pick(rows, chosen, predicted)
        entry["amoc"]["tied_predictions"] = tied
        amoc = entry["amoc"]["target_score"]
        best = max(entry[m]["target_score"] for m in COMPETITORS if entry.get(m))
        entry.update(regret=entry["oracle"]["target_score"] - amoc, win=amoc > best,
                     tie=amoc == best)
    return entry


def select(table: pd.DataFrame, predicted: pd.Series | None, num_layers: int,
           patterns: Sequence[str] = PATTERNS, seed: int = 0) -> list[dict[str, Any]]:
    """:func:`select_budget` for every (source, target, budget) of a candidates table."""
    entries = []
    for _, rows in table.groupby(["source", "target", "n_removed"], sort=True):
        entries.append(select_budget(rows, predicted, num_layers, patterns, seed))
    return entries


def summarize(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Win count, mean regret to the oracle and mean target score of every method."""
    chosen = [e for e in entries if e.get("amoc")]
    summary: dict[str, Any] = {"groups": len(entries), "with_amoc": len(chosen),
                               "wins": sum(e["win"] for e in chosen),
                               "ties": sum(e["tie"] for e in chosen)}
    for method in METHODS:
        pairs = [(e[method]["target_score"], e["oracle"]["target_score"]) for e in entries
                 if e.get(method)]
        if pairs:
            score, oracle = np.array(pairs).T
            summary[method] = {"mean_score": float(score.mean()),
                               "mean_regret": float((oracle - score).mean()), "n": len(pairs)}
    return summary


@dataclass
class Analysis:
    """Held-out predictions, the per-pair fits, the choices and their summary."""

    predicted: pd.Series
    fits: dict[tuple[str, str], StepwiseFit | str]
    entries: list[dict[str, Any]]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The JSON-able part (fits as dicts, refusals as their reason)."""
        fits = {f"{s}->{t}": asdict(f) if isinstance(f, StepwiseFit) else {"refused": f}
                for (s, t), f in self.fits.items()}
        return json_safe({"selections": self.entries, "summary": self.summary,
                          "regressions": fits})


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (strict JSON has no NaN or Infinity)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def num_layers_of(table: pd.DataFrame) -> int:
    """The base model's depth, from the ``removed_<i>`` indicator columns."""
    return sum(c.startswith(INDICATOR_PREFIX) for c in table.columns)


def analyse(table: pd.DataFrame, spec: RegressionSpec,
            patterns: Sequence[str] = PATTERNS) -> Analysis:
    """Leave-one-target-out stepwise OLS, then the choices of every (pair, budget)."""
    features = spec.features or feature_columns(table)
    predicted, fits = leave_one_target_out(table, features, spec.response, p_enter=spec.p_enter,
                                           p_remove=spec.p_remove, fit=spec.fit)
    entries = select(table, predicted, num_layers_of(table), patterns, spec.seed)
    return Analysis(predicted, fits, entries, summarize(entries))


def unselected(analysis: Analysis) -> list[str]:
    """``"S->T k=2: <why>"`` for every (pair, budget) group without an AMoC choice."""
    out = []
    for entry in analysis.entries:
        if entry.get("amoc") is None:
            fit = analysis.fits.get((entry["source"], entry["target"]))
            why = fit if isinstance(fit, str) else "no held-out prediction for its candidates"
            out.append(f"{entry['source']}->{entry['target']} k={entry['k']}: {why}")
    return out


def check_selectable(num_layers: int, num_targets: int, num_candidates: int,
                     spec: RegressionSpec) -> None:
    """Refuse, before training, a run whose every held-out regression is bound to be refused.

    Within one run (one source, m targets) each pair's fit sees the other m - 1 targets' rows,
    ``(m - 1) x candidates``; ``stepwise_ols`` refuses fewer rows than offered features.
    """
    features = (len(spec.features) if spec.features else
                len(CANDIDATE_FEATURES) + len(PAIR_FEATURES) + num_layers)
    rows = (num_targets - 1) * num_candidates
    if rows < features:
        raise ValueError(
            f"callbacks.amoc: each pair's leave-one-target-out regression would get {rows} rows "
            f"({num_targets} targets - 1 x {num_candidates} candidates) for {features} offered "
            "features and be refused, so AMoC could choose nothing: add targets "
            "(callbacks.amoc.targets, conf/targets/) or budgets (callbacks.amoc.budgets), offer "
            "fewer features (callbacks.amoc.regression.features), or set "
            "callbacks.amoc.features_only=true (docs/amoc.md §7)")
