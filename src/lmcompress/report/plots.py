"""PNG figures: a metric against model cost with its Pareto front, and the spread over seeds.

Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg canvas, so no
display or global ``pyplot`` state is involved (safe in tests and on headless nodes).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lmcompress.report.config import Baseline, Metric
from lmcompress.report.stats import pareto_front

FRONT_COLOR = "tab:red"


def tradeoff_plot(points: pd.DataFrame, cost: str, cost_label: str, metric: Metric,
                  path: Path, title: str = "", references: Mapping[str, float] | None = None
                  ) -> Path:
    """One marker per group at (cost, mean metric) with ± std bars; the Pareto front as steps.

    Points of one ``series`` share a colour; only the front's points are labelled when there
    are more than a dozen (the others are told apart by colour and position).

    Args:
        points: one row per group: ``label``, ``cost``, ``mean``, ``std`` (metric units), and
            optionally ``series`` (e.g. the objective; the legend names it).
        cost: name of the cost, only for the legend ("parameters", "latency").
        cost_label: x-axis label with its unit.
        metric: the metric on the y axis (its ``scale`` is applied here).
        path: the PNG to write.
        title: figure title.
        references: label -> metric value (unscaled) drawn as a dashed line, e.g. baselines.
    """
    x = points["cost"].to_numpy(dtype=float)
    y = points["mean"].to_numpy(dtype=float) * metric.scale
    err = np.nan_to_num(points["std"].to_numpy(dtype=float) * metric.scale)
    front = pareto_front(x, y)
    series = (points["series"].astype(str).to_numpy() if "series" in points
              else np.full(len(points), "mean ± std over seeds"))
    fig = Figure(figsize=(8, 6.5), layout="constrained")
    ax = fig.add_subplot()
    for i, name in enumerate(dict.fromkeys(series)):
        mask = series == name
        ax.errorbar(x[mask], y[mask], yerr=err[mask], fmt="o", color=f"C{i % 10}", ecolor="0.6",
                    capsize=3, label=name)
    order = np.argsort(x[front])
    ax.step(x[front][order], y[front][order], where="post", color=FRONT_COLOR, linewidth=1.5,
            label=f"Pareto front ({cost} vs {metric.label})")
    ax.scatter(x[front], y[front], s=80, facecolors="none", edgecolors=FRONT_COLOR, zorder=3)
    labelled = front if len(points) > 12 else np.ones(len(points), dtype=bool)
    for xi, yi, label in zip(x[labelled], y[labelled], points["label"][labelled], strict=True):
        ax.annotate(str(label), (xi, yi), xytext=(4, -10), textcoords="offset points", fontsize=7)
    for (label, value), style in zip((references or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(value * metric.scale, color="0.4", linestyle=style, linewidth=1, label=label)
    ax.set_xlabel(cost_label)
    ax.set_ylabel(metric.label)
    fig.suptitle(_wrap(title or f"{metric.label} vs {cost}", fig), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)
    fig.savefig(path, dpi=150)
    return path


def seeds_plot(jobs: pd.DataFrame, group_by: Sequence[str], metrics: Sequence[Metric],
               path: Path, title: str = "", baselines: Sequence[Baseline] = ()) -> Path:
    """Per metric, a box per group with every seed's score drawn on top."""
    seeds_figure(jobs, group_by, metrics, title, baselines).savefig(path, dpi=150)
    return path


def seeds_figure(jobs: pd.DataFrame, group_by: Sequence[str], metrics: Sequence[Metric],
                 title: str = "", baselines: Sequence[Baseline] = ()) -> Figure:
    """The figure of :func:`seeds_plot`; each trivial baseline of a metric as a dashed line."""
    metrics = [m for m in metrics if m.key in jobs and jobs[m.key].notna().any()]
    all_labels, all_parts = _group_labels(jobs, group_by)
    width = min(14.0, max(5.0, 0.9 * len(all_labels) + 2))
    fig = Figure(figsize=(width, 4.0 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    rng = np.random.default_rng(0)  # fixed jitter: the same figure on every run
    for ax, metric in zip(axes, metrics, strict=True):
        # only the groups that have this metric (a table mixes tasks with different metrics)
        pairs = [(label, part[metric.key].dropna().to_numpy(dtype=float) * metric.scale)
                 for label, part in zip(all_labels, all_parts, strict=True)
                 if metric.key in part and part[metric.key].notna().any()]
        labels, values = [p[0] for p in pairs], [p[1] for p in pairs]
        positions = np.arange(1, len(labels) + 1)
        many = len(labels) > 4  # slant long tick labels
        ax.boxplot(values, positions=positions, widths=0.5, showfliers=False)
        for pos, vals in zip(positions, values, strict=True):
            ax.scatter(pos + rng.uniform(-0.12, 0.12, len(vals)), vals, s=18, alpha=0.8,
                       color="tab:blue", zorder=3)
        ax.set_xticks(positions, labels, rotation=30 if many else 0,
                      ha="right" if many else "center", fontsize=8)
        marked = [b for b in baselines if metric.key in b.values]
        for baseline, style in zip(marked, ("--", ":", "-."), strict=False):
            ax.axhline(baseline.values[metric.key] * metric.scale, color="0.4", linestyle=style,
                       linewidth=1, label=baseline.name)
        if marked:
            ax.legend(fontsize=8)
        ax.set_ylabel(metric.label)
        ax.set_xlabel(" / ".join(group_by))
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(_wrap(title or "spread over seeds", fig), fontsize=10)
    axes[0].set_title("one dot per seed", fontsize=8)
    return fig


def _group_labels(jobs: pd.DataFrame, group_by: Sequence[str]
                  ) -> tuple[list[str], list[pd.DataFrame]]:
    labels, parts = [], []
    for values, part in jobs.groupby(list(group_by), sort=False, dropna=False):
        labels.append(" ".join(str(v) for v in values))
        parts.append(part)
    return labels, parts


def _wrap(title: str, fig) -> str:
    """Break a long title into lines that fit the figure (about 11 characters per inch)."""
    return textwrap.fill(title, width=max(30, int(fig.get_figwidth() * 11)))
