"""AMoC over several seeds of the whole pipeline, with paired bootstrap intervals (docs/amoc.md §9).

Each seed's runs (one per source domain) are analysed on their own: its regression is fitted
leave-one-target-domain-out on that seed's candidates only. The (pair, budget) groups of every
seed are then pooled, and per method the mean target score is given with a 95% interval, and
its paired difference to ``top`` and to ``alternate`` in the same groups, with a 95% interval
from a bootstrap that resamples whole source -> target pairs (their budgets and seeds share one
target test set, so they are not independent). An interval of the difference that lies above
zero is evidence that the method beats the pattern; one that straddles zero is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lmcompress.amoc.candidates import PATTERNS
from lmcompress.amoc.regression import FITS, RegressionSpec
from lmcompress.amoc.select import METHODS, Analysis, analyse, summarize
from lmcompress.report.stats import cluster_bootstrap

BASELINES = ("top", "alternate")
SHOWN = ("amoc", "ate_min", "random", *PATTERNS, "oracle", "full")


def seed_of(candidates_file: str | Path) -> int | None:
    """The pipeline seed of the run that wrote ``<run>/amoc/candidates.csv`` (None: unknown).

    Read from the run's ``.hydra/config.yaml`` (written at its start) or its ``metrics.json``.
    """
    run = Path(candidates_file).parent.parent
    config = run / ".hydra" / "config.yaml"
    if config.is_file():
        seed = (yaml.safe_load(config.read_text()) or {}).get("seed")
        if isinstance(seed, int):
            return seed
    metrics = run / "metrics.json"
    if metrics.is_file():
        seed = pd.read_json(metrics, typ="series").get("seed")
        return int(seed) if seed is not None else None
    return None


def with_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``seed`` column from each row's run (-1 where unknown)."""
    seeds = {f: seed_of(f) for f in table["file"].unique()}
    return table.assign(seed=table["file"].map(lambda f: -1 if seeds[f] is None else seeds[f]))


def analyse_seeds(table: pd.DataFrame, spec: RegressionSpec,
                  patterns: Sequence[str] = PATTERNS) -> Analysis:
    """:func:`select.analyse` per seed, pooled; entries and fits are tagged with their seed.

    With one seed this is ``analyse(table)``. With several, a fit's key is
    ``(source, "target@seed<n>")`` and each entry has a ``seed``.
    """
    seeds = sorted(table["seed"].unique()) if "seed" in table else []
    if len(seeds) <= 1:
        return analyse(table, spec, patterns)
    predicted, fits, entries = [], {}, []
    for seed in seeds:
        part = analyse(table[table["seed"] == seed], spec, patterns)
        predicted.append(part.predicted)
        fits.update({(s, f"{t}@seed{seed}"): f for (s, t), f in part.fits.items()})
        entries += [{**e, "seed": int(seed)} for e in part.entries]
    return Analysis(pd.concat(predicted).reindex(table.index), fits, entries,
                    summarize(entries))


def _score(entry: dict[str, Any], method: str) -> float | None:
    if method == "full":
        return entry["full"]
    pick = entry.get(method)
    return None if not pick else pick["target_score"]


def intervals(entries: Sequence[dict[str, Any]], n_boot: int = 2000,
              seed: int = 0) -> list[dict[str, Any]]:
    """Per method: mean score and its interval, paired differences to top and alternate."""
    rows = []
    for method in SHOWN:
        scored = [(e, _score(e, method)) for e in entries if _score(e, method) is not None]
        if not scored:
            continue
        row: dict[str, Any] = {"method": method, "score": cluster_bootstrap(
            [v for _, v in scored], [_pair(e) for e, _ in scored], n_boot, seed)}
        for base in BASELINES:
            paired = [(e, v - _score(e, base)) for e, v in scored if _score(e, base) is not None]
            if paired and method != base:
                row[base] = cluster_bootstrap([d for _, d in paired],
                                              [_pair(e) for e, _ in paired], n_boot, seed)
        rows.append(row)
    return rows


def _pair(entry: dict[str, Any]) -> str:
    return f"{entry['source']}->{entry['target']}"


def _ci(stat: dict[str, float] | None, signed: bool = False) -> str:
    if not stat:
        return "–"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    return (f"{fmt.format(100 * stat['mean'])} [{fmt.format(100 * stat['low'])}, "
            f"{fmt.format(100 * stat['high'])}]")


def verdict(rows: Sequence[dict[str, Any]], method: str = "amoc") -> str:
    """One sentence per baseline: above, below, or not distinguishable (interval straddles 0)."""
    row = next((r for r in rows if r["method"] == method), None)
    if row is None:
        return f"No {method} choice: nothing to compare."
    parts = []
    for base in BASELINES:
        stat = row.get(base)
        if not stat:
            parts.append(f"no {base} group to pair with")
        elif stat["low"] > 0:
            parts.append(f"above {base} ({_ci(stat, True)})")
        elif stat["high"] < 0:
            parts.append(f"below {base} ({_ci(stat, True)})")
        else:
            parts.append(f"not distinguishable from {base} ({_ci(stat, True)})")
    return f"`{method}` is " + "; ".join(parts) + "."


def power_section(table: pd.DataFrame, spec: RegressionSpec, patterns: Sequence[str] = PATTERNS,
                  n_boot: int = 2000) -> str:
    """Markdown: per fit (paper, within_group) and budget, the intervals of :func:`intervals`."""
    seeds = sorted(table["seed"].unique()) if "seed" in table else [-1]
    parts = [f"## Methods with 95% intervals ({len(seeds)} seed(s), paired bootstrap over "
             f"source → target pairs, {n_boot} resamples)",
             "Target score × 100. `vs top` / `vs alternate`: the method minus the pattern in the "
             "same (pair, budget, seed) groups (alternate cannot remove more than half the "
             "layers: no group to pair with there). Both regression fits are shown "
             "(docs/amoc.md §7); every other method does not depend on the fit."]
    for fit in FITS:
        fitted = RegressionSpec(**{**spec.__dict__, "fit": fit})
        entries = analyse_seeds(table, fitted, patterns).entries
        for k in [None, *sorted({e["k"] for e in entries})]:
            chosen = [e for e in entries if k is None or e["k"] == k]
            rows = intervals(chosen, n_boot, spec.seed)
            title = "all budgets" if k is None else f"k = {k}"
            lines = ["| method | mean target score | vs top | vs alternate | groups |",
                     "|---|---|---|---|---|"]
            lines += [f"| {r['method']} | {_ci(r['score'])} | {_ci(r.get('top'), True)} | "
                      f"{_ci(r.get('alternate'), True)} | {r['score']['n']} |" for r in rows]
            parts += [f"### fit `{fit}`, {title}", "\n".join(lines), verdict(rows)]
    return "\n\n".join(parts)


__all__ = ["METHODS", "analyse_seeds", "intervals", "power_section", "seed_of", "verdict",
           "with_seeds"]
