"""Choose a DynaBERT sub-network by measured latency: the most accurate one within a budget.

Every exported sub-network of a grid (``<run>/export/<w.._d..>/``, each with its record and dev
metric) is timed on this machine, interleaved, at the requested batch; no FLOP estimate stands in
for a measurement. The choice is then timed again alone, in a second independent measurement,
and the result says whether it still meets the budget (docs/deploy.md).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch

from lmcompress.deploy import card
from lmcompress.deploy.card import RECORD
from lmcompress.deploy.pipeline import load_export, machine_load
from lmcompress.deploy.variants import eager, input_names
from lmcompress.utils.latency import interleaved_times, spread, timing_batch


def grid_folders(run: Path) -> list[Path]:
    """The sub-network export folders of a DynaBERT run (its folder or its ``export/``)."""
    root = run / "export" if (run / "export").is_dir() else run
    found = sorted(p.parent for p in root.glob(f"*/{RECORD}"))
    if not found:
        raise ValueError(f"{run}: no exported sub-networks (no */{RECORD} under {root})")
    return found


def _ms(values: list[float]) -> dict[str, float]:
    lo, hi = spread(values)
    return {"ms": 1e3 * statistics.median(values), "ms_q25": 1e3 * lo, "ms_q75": 1e3 * hi}


def choose(run: Path, budget_ms: float, batch: int, seq: int, repeats: int, threads: int
           ) -> dict[str, Any]:
    """Measure every sub-network, pick the most accurate within ``budget_ms``, re-measure it."""
    torch.set_num_threads(threads)
    subnets = {}
    for folder in grid_folders(run):
        model, rec = load_export(folder)
        val = card._bare(rec.get("val") or {})  # records of an early version kept "val/"
        score = val.get(rec["main_metric"])
        if score is None:
            raise ValueError(f"{folder}: {RECORD} has no dev {rec['main_metric']}")
        data = timing_batch(batch, seq, model.config.vocab_size)
        run_fn = eager(model, input_names(model))
        subnets[folder.name] = (score, lambda f=run_fn, d=data: f(d))
    times = interleaved_times({k: v[1] for k, v in subnets.items()}, repeats)
    rows = {k: {"dev": subnets[k][0], **_ms(times[k])} for k in subnets}
    within = [k for k, r in rows.items() if r["ms"] <= budget_ms]
    out: dict[str, Any] = {"budget_ms": budget_ms, "batch": batch, "seq": seq,
                           "threads": threads, "repeats": repeats, "subnets": rows,
                           "load": machine_load(), "chosen": None}
    if not within:
        return out
    best = max(within, key=lambda k: (rows[k]["dev"], -rows[k]["ms"]))
    again = _ms(interleaved_times({best: subnets[best][1]}, repeats)[best])
    out.update(chosen=best, check=again, check_meets_budget=again["ms"] <= budget_ms)
    return out


def budget_text(res: dict[str, Any]) -> str:
    """The console report of :func:`choose`."""
    lines = [f"| sub-network | dev | ms at batch {res['batch']} (median [q25, q75]) |",
             "|---|---|---|"]
    for k, r in sorted(res["subnets"].items(), key=lambda kv: kv[1]["ms"]):
        lines.append(f"| {k} | {100 * r['dev']:.2f} | {r['ms']:.1f} "
                     f"[{r['ms_q25']:.1f}, {r['ms_q75']:.1f}] |")
    if res["chosen"] is None:
        lines.append(f"\nno sub-network meets {res['budget_ms']} ms at batch {res['batch']}")
    else:
        c, chk = res["chosen"], res["check"]
        lines.append(f"\nchosen: {c} (dev {100 * res['subnets'][c]['dev']:.2f}), "
                     f"{res['subnets'][c]['ms']:.1f} ms within {res['budget_ms']} ms; second "
                     f"measurement {chk['ms']:.1f} [{chk['ms_q25']:.1f}, {chk['ms_q75']:.1f}] "
                     f"ms: {'meets' if res['check_meets_budget'] else 'MISSES'} the budget")
    lines.append(f"({res['threads']} thread(s), {res['repeats']} interleaved repeats, sequence "
                 f"length {res['seq']}, load {res['load']})")
    return "\n".join(lines)
