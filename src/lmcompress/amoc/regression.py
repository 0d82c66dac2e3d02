"""Bidirectional stepwise OLS predicting a candidate's target score (docs/amoc.md §7).

Features are z-scored on the training rows (constant ones are set aside); starting from the
intercept-only model, each step adds the feature with the smallest p-value if it is below
``p_enter`` (0.05), then drops any included feature whose p-value exceeds ``p_remove`` (0.10),
until nothing changes. Fitted **leave-one-target-domain-out**: for the pair (S, T), only rows
whose target is not T and whose source is not T are used, so T's labels never inform its choice.

``fit``: ``paper`` regresses the score itself (the paper's design: most of its variance lies
between pairs, which choose nothing); ``within_group`` (ours, ranking-focused) first centres the
response and every feature on their mean within each selection group (source, target, budget):
the group fixed-effects estimator, fitted on within-group differences only, which is what the
choice among a group's candidates uses. Pair-level features and ``n_removed`` are constant in a
group, so they drop out; a held-out group's features are centred on its own (label-free) mean.
Its p-values use ``n - groups - p`` residual degrees of freedom (the group means are estimated),
as a regression with one dummy per group would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm

RESPONSES = ("target_score", "target_drop")
FITS = ("paper", "within_group")
GROUP = ["source", "target", "n_removed"]
"""A selection group: one pair's candidates of one budget (``amoc/select.py``)."""


@dataclass
class RegressionSpec:
    """The regression's settings (YAML: ``callbacks.amoc.regression``)."""

    response: str = "target_score"
    """target_score (the candidate's target test score) | target_drop (minus the base's)."""
    features: list[str] | None = None
    """Offered features (null: all of ``features.feature_columns``)."""
    p_enter: float = 0.05
    """A feature enters if its p-value is below this."""
    p_remove: float = 0.10
    """An included feature leaves if its p-value rises above this."""
    fit: str = "paper"
    """paper: OLS of the response | within_group: centred within (source, target, budget)."""
    seed: int = 0
    """Breaks ties among equal predictions at random (``amoc/select.py``)."""

    def check(self, key: str) -> None:
        """Known response and fit, ordered thresholds."""
        if self.response not in RESPONSES:
            raise ValueError(f"{key}.response={self.response!r}: choose from {RESPONSES}")
        if self.fit not in FITS:
            raise ValueError(f"{key}.fit={self.fit!r}: choose from {FITS}")
        if not 0 < self.p_enter <= self.p_remove < 1:
            raise ValueError(f"{key}: need 0 < p_enter ({self.p_enter}) <= p_remove "
                             f"({self.p_remove}) < 1")


class RegressionRefused(ValueError):
    """The regression cannot be fitted on these rows (too few, missing values, no rows)."""


@dataclass
class StepwiseFit:
    """A fitted stepwise OLS: what was selected, its coefficients, and how to predict."""

    response: str
    selected: list[str]
    coef: dict[str, float]
    """Coefficients of the standardised features, plus ``const`` (the intercept)."""
    pvalues: dict[str, float]
    r2: float
    adj_r2: float
    n_rows: int
    mean: dict[str, float]
    std: dict[str, float]
    constant: list[str] = field(default_factory=list)
    """Offered features that were constant on the training rows (never selectable)."""
    steps: list[str] = field(default_factory=list)
    """The path: ``+feature (p=...)`` / ``-feature (p=...)``."""
    fit: str = "paper"
    """paper | within_group (then predictions are within-group deviations: they rank only)."""

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        """Predicted response for each row of ``table``."""
        out = np.full(len(table), self.coef["const"], dtype=float)
        if self.fit == "within_group":
            table = centred(table, self.selected)
        for name in self.selected:
            z = (table[name].to_numpy(dtype=float) - self.mean[name]) / self.std[name]
            out += self.coef[name] * z
        return out

    def summary(self) -> pd.DataFrame:
        """One row per term (intercept first): standardised coefficient and p-value."""
        terms = ["const", *self.selected]
        return pd.DataFrame({"term": terms, "coef": [self.coef[t] for t in terms],
                             "p_value": [self.pvalues[t] for t in terms]})


def _ols(y: pd.Series, x: pd.DataFrame, absorbed: int = 0):
    """OLS with an intercept; ``absorbed`` more degrees of freedom spent (group means)."""
    model = sm.OLS(y.to_numpy(float), sm.add_constant(x.to_numpy(float), has_constant="add"))
    if absorbed:
        model.df_resid = model.df_resid - absorbed
    return model.fit()


def _pvalue(y: pd.Series, z: pd.DataFrame, terms: list[str], name: str,
            absorbed: int = 0) -> float | None:
    """p-value of ``name`` in the OLS on ``terms``; None if that design is rank-deficient."""
    design = sm.add_constant(z[terms].to_numpy(float), has_constant="add")
    if len(y) - design.shape[1] - absorbed < 1 or np.linalg.matrix_rank(
            design) < design.shape[1]:
        return None
    p = _ols(y, z[terms], absorbed).pvalues[1 + terms.index(name)]
    return 1.0 if np.isnan(p) else float(p)


def _step(y: pd.Series, z: pd.DataFrame, selected: list[str], p_enter: float,
          p_remove: float, absorbed: int = 0) -> list[str]:
    """One forward then one backward step; returns the changes made.

    Forward: add the feature with the smallest p-value if it is below ``p_enter``. Backward:
    drop the included feature with the largest p-value if it is above ``p_remove``.
    """
    changes = []
    adds = {f: _pvalue(y, z, [*selected, f], f, absorbed) for f in z.columns
            if f not in selected}
    adds = {f: p for f, p in adds.items() if p is not None}
    if adds and min(adds.values()) < p_enter:
        best = min(adds, key=adds.get)
        selected.append(best)
        changes.append(f"+{best} (p={adds[best]:.3g})")
    if selected:
        drops = {f: _pvalue(y, z, selected, f, absorbed) for f in selected}
        drops = {f: 1.0 if p is None else p for f, p in drops.items()}
        worst = max(drops, key=drops.get)
        if drops[worst] > p_remove:
            selected.remove(worst)
            changes.append(f"-{worst} (p={drops[worst]:.3g})")
    return changes


def stepwise_ols(table: pd.DataFrame, features: Sequence[str], response: str,
                 p_enter: float = 0.05, p_remove: float = 0.10,
                 fit: str = "paper") -> StepwiseFit:
    """Fit the bidirectional stepwise OLS of ``response`` on ``features`` (module docstring)."""
    if fit not in FITS:
        raise ValueError(f"regression fit={fit!r}: choose from {FITS}")
    if not p_enter <= p_remove:
        raise ValueError(f"p_enter={p_enter} must be <= p_remove={p_remove} (else a feature "
                         "can enter and leave forever)")
    features = list(features)
    if len(table) < len(features):
        raise RegressionRefused(f"stepwise OLS on {len(table)} rows with {len(features)} "
                                "features: need at least as many rows as features")
    missing = [c for c in [*features, response] if table[c].isna().any()]
    if missing:
        raise RegressionRefused(f"stepwise OLS: missing values in column(s) {missing}")
    x, y = table[features].astype(float), table[response].astype(float)
    absorbed = 0
    if fit == "within_group":
        x, y = centred(table, features), centred(table, [response])[response]
        absorbed = table.groupby(GROUP).ngroups - 1  # the intercept is one of the means
    if not y.std(ddof=0) > 1e-12:
        raise RegressionRefused(f"stepwise OLS: '{response}' is constant ({y.iloc[0]:.4g}) on "
                                f"all {len(y)} training rows: there is nothing to predict")
    mean, std = x.mean(), x.std(ddof=0)
    constant = [f for f in features if not std[f] > 1e-12]
    usable = [f for f in features if f not in constant]
    z = (x[usable] - mean[usable]) / std[usable]
    selected: list[str] = []
    steps: list[str] = []
    seen = {()}
    while changes := _step(y, z, selected, p_enter, p_remove, absorbed):
        steps += changes
        state = tuple(sorted(selected))
        if state in seen:  # a cycle (possible with near-collinear features): stop here
            break
        seen.add(state)
    result = _ols(y, z[selected], absorbed)
    terms = ["const", *selected]
    return StepwiseFit(
        response=response, selected=selected, fit=fit,
        coef=dict(zip(terms, map(float, result.params), strict=True)),
        pvalues=dict(zip(terms, map(float, result.pvalues), strict=True)),
        r2=float(result.rsquared), adj_r2=float(result.rsquared_adj), n_rows=len(table),
        mean={f: float(mean[f]) for f in usable}, std={f: float(std[f]) for f in usable},
        constant=constant, steps=steps)


def centred(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` minus their mean within each selection group (:data:`GROUP`)."""
    values = table[list(columns)].astype(float)
    return values - values.groupby([table[g] for g in GROUP]).transform("mean")


def training_rows(table: pd.DataFrame, target: str) -> pd.DataFrame:
    """The leave-one-target-domain-out training rows for any pair whose target is ``target``."""
    return table[(table["target"] != target) & (table["source"] != target)]


def fit_for_pair(table: pd.DataFrame, features: Sequence[str], response: str, source: str,
                 target: str, **options: float) -> StepwiseFit:
    """The stepwise OLS for the held-out pair (source, target), never seeing ``target``."""
    rows = training_rows(table, target)
    if rows.empty:
        raise RegressionRefused(f"no training rows for ({source} -> {target}): every other "
                                f"pair involves '{target}' (add target domains)")
    return stepwise_ols(rows, features, response, **options)


def leave_one_target_out(table: pd.DataFrame, features: Sequence[str], response: str,
                         **options: float) -> tuple[pd.Series, dict[tuple[str, str], object]]:
    """Held-out predictions for every row, and per pair its fit (or why it was refused)."""
    predicted = pd.Series(np.nan, index=table.index, name="predicted")
    fits: dict[tuple[str, str], object] = {}
    for (source, target), rows in table.groupby(["source", "target"], sort=True):
        try:
            fit = fit_for_pair(table, features, response, source, target, **options)
        except RegressionRefused as err:
            fits[(source, target)] = str(err)
            continue
        fits[(source, target)] = fit
        predicted.loc[rows.index] = fit.predict(rows)
    return predicted, fits
