"""Wall time and agreement of the AMoC search in fp32 vs bf16 autocast (callbacks.amoc.precision).

Runs the same ``python -m lmcompress.run -cn amoc`` command with ``callbacks.amoc.precision=32``
and ``=bf16``, alternating, and reads ``timing.run_s`` (the whole search: caches, every
candidate's fine-tune, prediction and scoring) from each run's ``amoc/selection.json``. The base
fine-tune is fp32 and seeded in both, so both searches start from the same weights.
Agreement: the largest absolute difference of the ATE and score columns of ``candidates.csv``,
and the Spearman correlation of the candidates' target scores (what AMoC ranks).

    PYTHONPATH=$PWD/src python benchmarks/amoc_precision.py            # amoc_amazon_power, books
    PYTHONPATH=$PWD/src python benchmarks/amoc_precision.py --budgets "[2,3]" --sample 2

bf16 is fast only on a CPU with AMX or AVX512-BF16 (or a GPU); elsewhere torch emulates it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from amoc_shard import TIMES, run  # noqa: E402  (the CLI run and its outputs)

BASE = ["-cn", "amoc", "experiment=amoc_amazon_power", "task=amazon/books",
        "callbacks.amoc.features_only=true", "callbacks.amoc.independent_subset=0",
        "test=false", "export=false"]
COMPARED = ("ate_target", "source_score", "target_score", "base_source_score")


def main() -> None:
    """Alternate fp32 and bf16 searches; print and store the ratio and the tables' agreement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="[2]", help="callbacks.amoc.budgets")
    parser.add_argument("--sample", type=int, default=1, help="callbacks.amoc.sample_per_budget")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/amoc_precision")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    opts = parser.parse_args()
    base = [*BASE, f"callbacks.amoc.budgets={opts.budgets}",
            f"callbacks.amoc.sample_per_budget={opts.sample}", *opts.overrides]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(opts.repeats):
            order = ("32", "bf16") if rep % 2 == 0 else ("bf16", "32")
            out = {p: run([*base, f"callbacks.amoc.precision={p}"], Path(tmp) / f"{p}_{rep}",
                        opts.threads)
                   for p in order}
            fp32, bf16 = out["32"]["table"], out["bf16"]["table"]
            diffs = {c: float((fp32[c] - bf16[c]).abs().max()) for c in COMPARED if c in fp32}
            rank = float(fp32["target_score"].corr(bf16["target_score"], method="spearman"))
            rows.append({"repeat": rep, "order": order,
                         "fp32_s": out["32"]["timing"]["run_s"],
                         "bf16_s": out["bf16"]["timing"]["run_s"],
                         "ratio": out["32"]["timing"]["run_s"] / out["bf16"]["timing"]["run_s"],
                         "candidates": out["32"]["timing"]["candidates"],
                         "rows": len(fp32), "max_abs_diff": diffs,
                         "target_score_spearman": rank,
                         "mean_target_score": {"32": float(fp32["target_score"].mean()),
                                               "bf16": float(bf16["target_score"].mean())},
                         "load": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
    result = {"args": base, "threads": opts.threads,
              "ignored_columns": list(TIMES), "rows": rows}
    path = Path(opts.out)
    path.mkdir(parents=True, exist_ok=True)
    (path / "amazon_books.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
