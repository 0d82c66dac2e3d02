"""Wall time of the AMoC search on 1 process vs W processes (hardware=ddp_sim), one thread each.

Runs the same ``python -m lmcompress.run`` command with ``hardware=cpu`` and with
``hardware=ddp_sim trainer.devices=W``, alternating, and reads ``timing.run_s`` (the whole search:
caches, every candidate, scoring, the join) from each run's ``amoc/selection.json``. The base
fine-tune before the search is not timed. Also checks that both runs' ``candidates.csv`` agree
(the base models differ only if the DDP fine-tune differs; ``--frozen-base`` trains with
lr=1e-30, so both searches start from the same weights and the tables must agree to 1e-6).

    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 python benchmarks/amoc_shard.py --preset tiny
    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 python benchmarks/amoc_shard.py --preset amazon
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

PRESETS = {
    "tiny": ["-cn", "amoc_tiny", "callbacks.amoc.features_only=true",
             "callbacks.amoc.independent_subset=0"],
    # MiniLM-L6 mix-CNN at length 64, the source reduced to --train-limit training reviews and
    # every evaluated split to --eval-limit (data.train_limit / eval_limit); budgets: --budgets
    "amazon": ["-cn", "amoc", "experiment=amoc_amazon_cpu", "task=amazon/books",
               "data.limit_sample=true", "trainer.max_epochs=1",
               "callbacks.amoc.features_only=true",
               "callbacks.amoc.independent_subset=0"],
}
TIMES = ("train_seconds", "seconds")


def run(args: list[str], folder: Path, threads: int = 1) -> dict:
    """One CLI run on ``threads`` threads; its selection.json timing and candidates table."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline"}
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lmcompress.run", *args, "logger=csv",
                           f"hydra.run.dir={folder}"], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    timing = json.loads((folder / "amoc" / "selection.json").read_text())["timing"]
    return {"timing": timing, "process_s": time.perf_counter() - tic,
            "table": pd.read_csv(folder / "amoc" / "candidates.csv")}


def max_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Largest absolute difference over the numeric feature and score columns."""
    cols = [c for c in a.columns if c not in TIMES and pd.api.types.is_numeric_dtype(a[c])]
    return float(max((a[c] - b[c]).abs().max() for c in cols))


def main() -> None:
    """Alternate 1-process and W-process runs; print and store the ratio of search wall times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--frozen-base", action="store_true",
                        help="module.optim.lr=1e-30: both searches start from the same weights")
    parser.add_argument("--train-limit", type=int, default=256, help="amazon: training reviews")
    parser.add_argument("--eval-limit", type=int, default=128, help="amazon: per evaluated split")
    parser.add_argument("--budgets", default="[1,2]", help="amazon: callbacks.amoc.budgets")
    parser.add_argument("--out", default="benchmarks/results/amoc_shard")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    opts = parser.parse_args()
    base = list(PRESETS[opts.preset])
    if opts.preset == "amazon":
        base += [f"data.train_limit={opts.train_limit}", f"data.eval_limit={opts.eval_limit}",
                 f"callbacks.amoc.budgets={opts.budgets}"]
    base += opts.overrides
    if opts.frozen_base:
        base.append("module.optim.lr=1e-30")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(opts.repeats):
            one = run([*base, "hardware=cpu"], Path(tmp) / f"one{rep}")
            many = run([*base, "hardware=ddp_sim", f"trainer.devices={opts.processes}"],
                       Path(tmp) / f"many{rep}")
            rows.append({"repeat": rep, "one_s": one["timing"]["run_s"],
                         "many_s": many["timing"]["run_s"],
                         "ratio": one["timing"]["run_s"] / many["timing"]["run_s"],
                         "rank_search_s": many["timing"].get("rank_search_s"),
                         "candidates": one["timing"]["candidates"],
                         "max_table_diff": max_diff(one["table"], many["table"]),
                         "load": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
    result = {"preset": opts.preset, "args": base, "processes": opts.processes,
              "threads": 1, "rows": rows}
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{opts.preset}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
