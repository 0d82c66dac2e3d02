"""How far two AMoC searches of the same base model agree: their ``amoc/candidates.csv`` tables.

For the rows (target, removed layers) both tables hold: the largest and mean absolute difference
of each compared column, the Spearman correlation of the candidates' target scores overall and
within each (target, budget) group (what AMoC ranks), and whether each method picked the same
candidate in both ``selection.json`` files. Used to validate ``callbacks.amoc.precision=bf16``
against an fp32 run of the same job (benchmarks/README.md): copy the fp32 job's folder (its
``.hydra`` and ``checkpoints``), re-run the job's command there with
``callbacks.amoc.precision=bf16``; the run resumes after training and searches again from the
same best checkpoint.

    python benchmarks/amoc_tables_agree.py <fp32 job>/amoc <bf16 job>/amoc [--out result.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

COMPARED = ("ate_target", "source_score", "target_score", "base_target_score",
            "base_source_score", "train_loss")
METHODS = ("amoc", "oracle", "top", "bottom", "alternate", "ate_min")


def agreement(a_dir: Path, b_dir: Path) -> dict:
    """The comparison of search ``a`` (reference) with search ``b``, as a JSON-ready dict."""
    a, b = pd.read_csv(a_dir / "candidates.csv"), pd.read_csv(b_dir / "candidates.csv")
    both = a.merge(b, on=["target", "removed"], suffixes=("_a", "_b"))
    if both.empty:
        raise SystemExit(f"{a_dir} and {b_dir} share no (target, removed) rows")
    diffs = {c: {"max": float((both[f"{c}_a"] - both[f"{c}_b"]).abs().max()),
                 "mean": float((both[f"{c}_a"] - both[f"{c}_b"]).abs().mean())}
             for c in COMPARED if f"{c}_a" in both}
    groups = {f"{t}/k{k}": float(g.target_score_a.corr(g.target_score_b, method="spearman"))
              for (t, k), g in both.groupby(["target", "n_removed_a"]) if len(g) > 1}
    picks = {}
    sel_a = json.loads((a_dir / "selection.json").read_text())["selections"]
    sel_b = {(s["target"], s["k"]): s
             for s in json.loads((b_dir / "selection.json").read_text())["selections"]}
    for s in sel_a:
        other = sel_b.get((s["target"], s["k"]))
        if other is None:
            continue
        for m in METHODS:
            if isinstance(s.get(m), dict) and isinstance(other.get(m), dict):
                picks.setdefault(m, []).append(s[m]["removed"] == other[m]["removed"])
    return {"a": str(a_dir), "b": str(b_dir), "rows": [len(a), len(b), len(both)],
            "max_abs_diff": diffs,
            "target_score_spearman": float(both.target_score_a.corr(both.target_score_b,
                                                                   method="spearman")),
            "target_score_spearman_per_group": groups,
            "mean_target_score": [float(both.target_score_a.mean()),
                                  float(both.target_score_b.mean())],
            "same_pick": {m: f"{sum(v)}/{len(v)}" for m, v in picks.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="the reference search's amoc/ folder")
    parser.add_argument("b", type=Path, help="the compared search's amoc/ folder")
    parser.add_argument("--out", type=Path, help="also write the result here (JSON)")
    opts = parser.parse_args()
    result = agreement(opts.a, opts.b)
    text = json.dumps(result, indent=1)
    print(text)
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
