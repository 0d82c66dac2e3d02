"""Read each job's ``metrics.json`` and Hydra overrides; aggregate over seeds into a table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def load_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One record per finished job: its overrides (``key=value``) and its metrics."""
    runs = []
    for metrics_file in sorted(Path(sweep_dir).glob("**/metrics.json")):
        job = metrics_file.parent
        overrides_file = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        record = json.loads(metrics_file.read_text())
        params = dict(o.split("=", 1) for o in overrides if "=" in o)
        runs.append({"dir": str(job), "params": params, **record})
    if not runs:
        raise FileNotFoundError(f"no metrics.json under {sweep_dir}")
    return runs


def model_shape(run: dict[str, Any]) -> str:
    """``<layers>L/<hidden>`` of the run's trained model (a ``derive`` key for students)."""
    model = run["model"]
    return f"{model['num_layers']}L/{model['hidden_size']}"


def collect(sweep_dir: str | Path, group_by: list[str], metrics: list[str],
            derive: dict[str, Callable[[dict], Any]] | None = None) -> list[dict]:
    """Mean, std and count of ``metrics`` for each combination of ``group_by`` keys.

    A group key is computed by ``derive[key](run)`` if given, else looked up in the job's
    overrides, then in metrics.json (e.g. ``task``).
    """
    derive = derive or {}

    def value(run: dict, key: str) -> str:
        if key in derive:
            return str(derive[key](run))
        return str(run["params"].get(key, run.get(key, "")))

    groups: dict[tuple, list[dict]] = {}
    for run in load_runs(sweep_dir):
        key = tuple(value(run, k) for k in group_by)
        groups.setdefault(key, []).append(run)
    rows = []
    for key, runs in sorted(groups.items()):
        row: dict[str, Any] = dict(zip(group_by, key, strict=True))
        row["n"] = len(runs)
        for metric in metrics:
            split = metric.split("/", 1)[0]
            values = [r.get(split, {}).get(metric) for r in runs]
            values = [100 * v for v in values if v is not None]
            row[metric] = (
                f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
                if len(values) > 1 else (f"{values[0]:.2f}" if values else "–")
            )
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """Rows (dicts with the same keys) as a Markdown table."""
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
