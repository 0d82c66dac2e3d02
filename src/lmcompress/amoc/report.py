"""AMoC results across runs: ``python -m lmcompress.report <run or sweep dir>... [--out DIR]``.

Reads every ``amoc/candidates.csv`` under the given folders (one per source domain), fits the
stepwise regression leave-one-target-domain-out across all pairs, and writes to ``--out``:

* ``results.md``: per pair and budget, AMoC's choice vs each baseline vs the oracle (target
  scores), AMoC's win count and mean regret; then the regression fitted on all rows
  (coefficients, p-values, R^2) and each held-out fit's selected features;
* ``predicted_vs_actual.png`` (held-out predictions) and ``ate_vs_drop.png`` (target ATE vs
  the drop in target score);
* when runs fine-tuned their chosen candidates (``callbacks.amoc.finetune``), a table of those
  scores after the brief and the full fine-tune, per method;
* ``selection.json``: the same choices, machine-readable.

See docs/amoc.md for the protocol and every choice. ``python -m lmcompress.amoc.report`` (this
module, ``--out`` required) still works; ``lmcompress.report`` detects AMoC runs and calls it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmcompress.amoc.features import feature_columns
from lmcompress.amoc.power import analyse_seeds, power_section, with_seeds
from lmcompress.amoc.read import read_all
from lmcompress.amoc.regression import RegressionRefused, RegressionSpec, stepwise_ols
from lmcompress.amoc.run_sections import (
    cost_section,
    finetune_section,
    markdown_table,
    pct,
    run_selections,
)
from lmcompress.amoc.select import COMPETITORS, METHODS, Analysis, json_safe
from lmcompress.utils.io import write_json_atomic

KEY = ["source", "target", "removed", "seed"]


def load_candidates(folders: Sequence[str | Path]) -> pd.DataFrame:
    """All complete candidates tables under ``folders``; refuses none found and duplicated rows."""
    files = []
    for folder in map(Path, folders):
        direct = folder / "amoc" / "candidates.csv"
        found = [direct] if direct.is_file() else sorted(folder.rglob("amoc/candidates.csv"))
        if not found:
            raise FileNotFoundError(f"no amoc/candidates.csv under {folder}")
        files += found
    tables, left_out = read_all(files)  # a truncated table is left out, never read in part
    table = with_seeds(pd.concat(tables, ignore_index=True))
    table.attrs["left_out"] = left_out
    duplicated = table[table.duplicated(KEY, keep=False)]
    if len(duplicated):
        row = duplicated.iloc[0]
        where = sorted(set(duplicated[(duplicated[KEY] == row[KEY]).all(axis=1)]["file"]))
        raise ValueError(f"pair {row['source']} -> {row['target']}, removed {row['removed']} "
                         f"appears in several runs of seed {row['seed']}: {where}; pass one run "
                         "per source domain and seed")
    return table


def _choice(entry: dict[str, Any], method: str) -> str:
    pick = entry.get(method)
    if not pick:
        return "n/a"
    score = pct(pick["target_score"])
    if "removed" not in pick:  # random: mean and std over the budget's candidates
        return f"{score} ± {pct(pick['std'])}"
    tied = pick.get("tied_predictions", 1)  # > 1: predicted equal, the first one was taken
    return f"{score} ({pick['removed']}{f', tie of {tied}' if tied > 1 else ''})"


def results_section(analysis: Analysis) -> str:
    """Per (pair, budget) choices, then the per-method summary."""
    headers = ["source → target", "k", "AMoC", "ATE-min", "random", "top", "bottom",
               "alternate", "oracle", "full", "regret", "win"]
    rows = [[f"{e['source']} → {e['target']}" + (f" (seed {e['seed']})" if "seed" in e else ""),
             e["k"], *(_choice(e, m) for m in METHODS),
             pct(e["full"]), pct(e.get("regret")),
             {True: "yes", False: "tie" if e.get("tie") else "no"}.get(e.get("win"), "n/a")]
            for e in analysis.entries]
    summary = analysis.summary
    method_rows = [[m, pct(summary[m]["mean_score"]), pct(summary[m]["mean_regret"]),
                    summary[m]["n"]] for m in METHODS if m in summary]
    return "\n\n".join([
        "## Choices per pair and budget (target score × 100; removed layers, 0-based)",
        markdown_table(headers, rows),
        f"AMoC beats every baseline ({', '.join(COMPETITORS)}) strictly in "
        f"**{summary['wins']} of {summary['with_amoc']}** (pair, budget) groups, ties the best "
        f"in {summary['ties']}.",
        markdown_table(["method", "mean target score", "mean regret to oracle", "groups"],
                  method_rows)])


def regression_section(table: pd.DataFrame, analysis: Analysis, spec: RegressionSpec) -> str:
    """The fit on all rows, the held-out fits and the out-of-sample agreement."""
    parts = ["## Regression (stepwise OLS, standardised features)"]
    features = spec.features or feature_columns(table)
    try:
        fit = stepwise_ols(table, features, spec.response, spec.p_enter, spec.p_remove, spec.fit)
        rows = [[t, f"{c:+.4f}", f"{p:.3g}"] for t, c, p in fit.summary().itertuples(
            index=False)]
        parts += [f"All {fit.n_rows} rows, response `{spec.response}`: R² = {fit.r2:.3f}, "
                  f"adjusted R² = {fit.adj_r2:.3f}; path: {', '.join(fit.steps) or 'none'}.",
                  markdown_table(["term", "coefficient", "p-value"], rows)]
    except RegressionRefused as err:
        parts.append(f"All rows: refused ({err}).")
    held = [[f"{s} → {t}", ", ".join(f.selected) or "(intercept only)", f"{f.r2:.3f}",
             f.n_rows] if not isinstance(f, str) else [f"{s} → {t}", f"refused: {f}", "", ""]
            for (s, t), f in analysis.fits.items()]
    parts += ["Leave-one-target-domain-out fits (each never sees its pair's target):",
              markdown_table(["held-out pair", "selected features", "train R²", "rows"], held)]
    parts.append(agreement(table, analysis.predicted, spec.response))
    return "\n\n".join(parts)


def agreement(table: pd.DataFrame, predicted: pd.Series, response: str) -> str:
    """How well held-out predictions rank candidates within each pair (what selection uses)."""
    rhos = []
    for _, rows in table[predicted.notna()].groupby(["source", "target"]):
        guess = predicted[rows.index]
        if guess.nunique() > 1 and rows[response].nunique() > 1:
            rhos.append(guess.rank().corr(rows[response].rank()))
    if not rhos:
        return "No pair has varying held-out predictions: no ranking to assess."
    return (f"Held-out predictions vs actual `{response}`, Spearman rank correlation within "
            f"each pair: mean {np.mean(rhos):+.3f} over {len(rhos)} pair(s).")


def plot(table: pd.DataFrame, analysis: Analysis, response: str, out: Path) -> list[Path]:
    """The two scatter plots (PNG, matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    known = analysis.predicted.notna()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for target, rows in table[known].groupby("target"):
        ax.scatter(analysis.predicted[rows.index], rows[response], s=14, label=target)
    if known.any():
        low = min(analysis.predicted[known].min(), table.loc[known, response].min())
        high = max(analysis.predicted[known].max(), table.loc[known, response].max())
        ax.plot([low, high], [low, high], "k--", lw=0.8)
        ax.legend(title="target", fontsize=7)
    ax.set(xlabel=f"predicted {response} (held-out target)", ylabel=f"actual {response}",
           title="AMoC regression: predicted vs actual")
    paths.append(_save(fig, out / "predicted_vs_actual.png"))
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for k, rows in table.groupby("n_removed"):
        ax.scatter(rows["ate_target"], rows["target_drop"], s=14, label=str(k))
    ax.axhline(0.0, color="k", lw=0.6)
    ax.legend(title="layers removed", fontsize=7)
    ax.set(xlabel="ATE on target text (mean TV distance)", ylabel="target score - base score",
           title="Causal effect vs target drop")
    paths.append(_save(fig, out / "ate_vs_drop.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(folders: Sequence[str | Path], out: str | Path,
           spec: RegressionSpec | None = None, n_boot: int = 2000) -> dict[str, Path]:
    """Build every output of the module docstring; returns ``{name: path}``."""
    spec = spec or RegressionSpec()
    table = load_candidates(folders)
    left_out = [f"Left out (incomplete): {reason}." for reason in table.attrs["left_out"]]
    analysis = analyse_seeds(table, spec)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = table.groupby(["source", "target"]).ngroups
    selections = run_selections(sorted(table["file"].unique()))
    text = "\n\n".join([
        "# AMoC: layer removal for domain adaptation",
        f"{pairs} domain pairs, {table['removed'].nunique()} candidates, {len(table)} rows, "
        f"metric `{table['metric'].iloc[0]}`; from {table['file'].nunique()} run(s).", *left_out,
        results_section(analysis), power_section(table, spec, n_boot=n_boot),
        regression_section(table, analysis, spec),
        *filter(None, [finetune_section(selections)]), cost_section(selections)]) + "\n"
    results = out / "results.md"
    results.write_text(text)
    selection = write_json_atomic(out / "selection.json", json_safe(analysis.to_json()))
    pred, ate = plot(table, analysis, spec.response, out)
    return {"results": results, "selection": selection, "predicted_vs_actual": pred,
            "ate_vs_drop": ate}


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m lmcompress.amoc.report",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", help="run or sweep folders holding amoc/")
    parser.add_argument("--out", required=True, help="folder for results.md and the plots")
    parser.add_argument("--response", default="target_score", help="target_score | target_drop")
    parser.add_argument("--p-enter", type=float, default=0.05)
    parser.add_argument("--p-remove", type=float, default=0.10)
    parser.add_argument("--fit", default="paper", help="paper | within_group (docs/amoc.md §7)")
    parser.add_argument("--seed", type=int, default=0, help="prediction ties and the bootstrap")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    spec = RegressionSpec(response=args.response, p_enter=args.p_enter, p_remove=args.p_remove,
                          fit=args.fit, seed=args.seed)
    spec.check("report")
    paths = report(args.folders, args.out, spec, args.n_boot)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return paths


if __name__ == "__main__":
    main()
