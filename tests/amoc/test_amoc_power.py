"""The ranking-focused fit, random tie-breaks, seeds pooled, and the paired bootstrap (issue 21)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from lmcompress.amoc.power import analyse_seeds, intervals, power_section, verdict
from lmcompress.amoc.regression import RegressionSpec, stepwise_ols
from lmcompress.amoc.report import load_candidates
from lmcompress.amoc.select import select
from lmcompress.report.stats import cluster_bootstrap


def _groups(seed: int = 0, n_groups: int = 12, per_group: int = 10) -> pd.DataFrame:
    """Large unobserved group offsets; within a group the score rises with ``x``."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        offset = rng.normal(0, 1.0)
        for c in range(per_group):
            x = rng.normal()
            rows.append({"source": f"s{g % 4}", "target": f"t{g}", "n_removed": 2,
                         "removed": f"{c}", "x": x, "pair_level": offset + rng.normal(0, 0.01),
                         "target_score": offset + 0.05 * x + rng.normal(0, 0.2)})
    return pd.DataFrame(rows)


def test_within_group_fit_is_the_group_fixed_effects_estimator():
    table = _groups()
    fit = stepwise_ols(table, ["x", "pair_level"], "target_score", fit="within_group")
    assert fit.selected == ["x"] and "pair_level" not in fit.selected
    # second computation: least squares with one dummy per group (LSDV)
    lsdv = smf.ols("target_score ~ x + C(target)", data=table).fit()
    slope = fit.coef["x"] / fit.std["x"]  # coefficients are of the standardised feature
    assert slope == pytest.approx(lsdv.params["x"], rel=1e-6)
    assert fit.pvalues["x"] == pytest.approx(lsdv.pvalues["x"], rel=1e-4)
    # the paper's fit explains the offsets by the pair-level feature; it ranks the same way here,
    # but its predictions carry the offsets, the within-group ones do not
    within = pd.Series(fit.predict(table), index=table.index)
    assert within.groupby(table["target"]).mean().abs().max() < 1e-9
    assert (within.groupby(table["target"]).rank()
            == table["x"].groupby(table["target"]).rank()).all()
    with pytest.raises(ValueError, match="fit"):
        RegressionSpec(fit="fixed").check("callbacks.amoc.regression")


def test_tied_predictions_are_drawn_at_random_with_the_seed():
    rows = []
    for g in range(20):
        for removed in ("0+1", "0+2", "1+2", "1+3", "2+3"):
            layers = [int(i) for i in removed.split("+")]
            rows.append({"source": "s", "target": f"t{g}", "removed": removed, "n_removed": 2,
                         "target_score": 0.5 + 0.01 * layers[1], "base_target_score": 0.9,
                         "ate_target": 0.1, **{f"removed_{i}": int(i in layers)
                                               for i in range(4)}})
    table = pd.DataFrame(rows)
    flat = pd.Series(0.7, index=table.index)  # an intercept-only fit: every prediction equal
    picks = {seed: [e["amoc"]["removed"] for e in select(table, flat, 4, seed=seed)]
             for seed in (0, 1)}
    assert picks[0] == [e["amoc"]["removed"] for e in select(table, flat, 4, seed=0)]
    assert picks[0] != picks[1]
    assert len(set(picks[0])) > 1 and picks[0].count("0+1") < 20  # not the first row each time
    assert all(e["amoc"]["tied_predictions"] == 5 for e in select(table, flat, 4))
    clear = flat.copy()
    clear[table["removed"] == "1+3"] = 0.8  # a unique maximum is always chosen
    assert {e["amoc"]["removed"] for e in select(table, clear, 4, seed=3)} == {"1+3"}


def test_cluster_bootstrap_resamples_whole_clusters():
    values = [1.0, 3.0, 2.0, 2.0, 10.0]
    clusters = ["a", "a", "b", "b", "c"]
    stat = cluster_bootstrap(values, clusters, n_boot=500, seed=7)
    # second computation: the same draws by hand, cluster by cluster
    rng = np.random.default_rng(7)
    draws = rng.integers(0, 3, size=(500, 3))
    members = {0: [1.0, 3.0], 1: [2.0, 2.0], 2: [10.0]}
    means = [np.mean([v for i in row for v in members[i]]) for row in draws]
    assert (stat["low"], stat["high"]) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    assert stat["mean"] == pytest.approx(3.6) and stat["clusters"] == 3 and stat["n"] == 5
    same = cluster_bootstrap([0.02] * 6, list("aabbcc"))
    assert same["low"] == pytest.approx(0.02) and same["high"] == pytest.approx(0.02)


def _entry(pair: str, amoc: float, top: float, alternate: float | None, k: int = 2) -> dict:
    pick = lambda v: None if v is None else {"target_score": v, "removed": "x"}  # noqa: E731
    return {"source": pair, "target": "t", "k": k, "full": 0.9, "amoc": pick(amoc),
            "top": pick(top), "alternate": pick(alternate), "oracle": pick(max(amoc, top))}


def test_intervals_pair_each_method_with_top_and_alternate_and_say_the_verdict():
    above = [_entry(f"p{i}", 0.85 + 0.001 * i, 0.80, 0.90) for i in range(8)]
    rows = intervals(above, n_boot=300)
    amoc = next(r for r in rows if r["method"] == "amoc")
    assert amoc["top"]["mean"] == pytest.approx(np.mean([0.05 + 0.001 * i for i in range(8)]))
    assert amoc["top"]["low"] > 0 and amoc["alternate"]["high"] < 0
    text = verdict(rows)
    assert "above top" in text and "below alternate" in text
    mixed = [_entry(f"p{i}", 0.80 + (0.02 if i % 2 else -0.02), 0.80, None) for i in range(8)]
    text = verdict(intervals(mixed, n_boot=300))
    assert "not distinguishable from top" in text and "no alternate group" in text


def test_two_seeds_of_the_same_runs_are_pooled_not_refused(tmp_path):
    from test_amoc_regression import _table

    for seed in (1, 2):
        for source in ("a", "b", "c"):
            run = tmp_path / f"seed{seed}" / source
            (run / "amoc").mkdir(parents=True)
            (run / ".hydra").mkdir()
            (run / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
            part = _table(seed)
            part = part[part["source"] == source].assign(rule="official", metric="macro_f1",
                                                         target_drop=0.0, **{
                "source_score": 0.9, "source_drop": 0.0, "domain_distance": 0.5,
                "base_confidence": 0.9, "base_entropy": 0.3, "source_test_score": 0.9,
                "base_source_score": 0.9})
            part.to_csv(run / "amoc" / "candidates.csv", index=False)
    table = load_candidates([tmp_path])
    assert sorted(table["seed"].unique()) == [1, 2]
    spec = RegressionSpec(features=["ate_target", "ate_source", "n_removed"])
    analysis = analyse_seeds(table, spec)
    assert len(analysis.entries) == 2 * 6 * 2  # seeds x pairs x budgets
    assert {e["seed"] for e in analysis.entries} == {1, 2}
    assert ("a", "b@seed1") in analysis.fits and ("a", "b@seed2") in analysis.fits
    text = power_section(table, spec, n_boot=200)
    assert "fit `paper`" in text and "fit `within_group`" in text and "vs alternate" in text


@pytest.mark.data
def test_the_power_targets_use_every_review_not_in_the_ate_text(shared_data):
    import yaml

    from lmcompress.utils.instantiate import instantiate_plain
    from lmcompress.utils.paths import conf_dir

    streams = yaml.safe_load((conf_dir() / "targets" / "amazon_power.yaml").read_text())
    for domain in ("books", "kitchen"):
        built = {}
        for kind in ("unlabeled", "test"):
            spec = dict(streams[f"{domain}_{kind}"]["source"])
            spec["data_dir"] = str(shared_data / "amazon_blitzer2007")
            built[kind] = instantiate_plain(spec).load(streams[f"{domain}_{kind}"]["split"])
        ate, test = ({e.where for e in built[k]} for k in ("unlabeled", "test"))
        assert len(ate) == 400 and len(test) == 1600 and not ate & test
        assert all(e.label is None for e in built["unlabeled"])
