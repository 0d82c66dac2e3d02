"""deploy.json and its Markdown table: one row per (model, variant), the fastest named per batch."""

from __future__ import annotations

from typing import Any


def fastest(rows: list[dict[str, Any]], batch: int, threads: int) -> str | None:
    """``model/variant`` with the lowest median latency at ``batch`` and ``threads``."""
    key = f"b{batch}_t{threads}"
    timed = [r for r in rows if key in r["latency"]]
    if not timed:
        return None
    best = min(timed, key=lambda r: r["latency"][key]["ms"])
    return f"{best['model']}/{best['variant']}"


def markdown(result: dict[str, Any]) -> str:
    """The deploy table (latency columns per batch size and thread count)."""
    keys = [f"b{b}_t{t}" for t in result["threads"] for b in result["batches"]]
    metric = result.get("metric_name") or "dev"
    head = ("| model | variant | MB | params | dev " + metric + " | parity |"
            + "".join(f" ms {k} | x fp32 {k} | x baseline {k} |" for k in keys))
    lines = [head, "|" + "---|" * (6 + 3 * len(keys))]
    for r in result["rows"]:
        cells = [r["model"], r["variant"], f"{r['size_bytes'] / 2**20:.1f}", f"{r['params']:,}",
                 "-" if r.get("dev") is None else f"{100 * r['dev']:.2f}",
                 f"{r['parity_max_abs']:.1e}"]
        for k in keys:
            lat = r["latency"].get(k)
            if lat is None:
                cells += ["-", "-", "-"]
                continue
            own = lat["speedup_vs_fp32_eager"]
            cells += [f"{lat['ms']:.1f} [{lat['ms_q25']:.1f}, {lat['ms_q75']:.1f}]",
                      "-" if own is None else f"{own:.2f}", f"{lat['speedup_vs_baseline']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for t in result["threads"]:
        for b in result["batches"]:
            lines.append(f"- fastest at batch {b}, {t} thread(s): {fastest(result['rows'], b, t)}")
    for name, why in result.get("skipped", {}).items():
        lines.append(f"- skipped {name}: {why}")
    lines.append(f"\nms: median [25th, 75th percentile] of {result['repeats']} interleaved "
                 "repeats, "
                 f"sequence length {result['seq']}; machine load {result['load']}.")
    return "\n".join(lines) + "\n"
