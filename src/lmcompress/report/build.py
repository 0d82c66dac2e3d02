"""One report from sweep folders: load jobs -> mean ± std per group -> tables, tests, plots.

Writes ``<out>/<name>.md`` (everything below, also returned), ``<name>.tex`` (the results
table), ``<name>_<cost>.png`` and ``<name>_seeds.png``, and ``failures.md`` when jobs failed or
never ran.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lmcompress.report.config import Metric, ReportConfig
from lmcompress.report.groups import check_groups, differing_keys
from lmcompress.report.load import load_jobs, open_problems, sweep_plan
from lmcompress.report.plots import seeds_plot, tradeoff_plot
from lmcompress.report.stats import aggregate, paired_test
from lmcompress.report.tables import (
    grid_tables,
    paired_table,
    results_table,
    to_latex,
    to_markdown,
)
from lmcompress.utils.safe_paths import inside

log = logging.getLogger(__name__)


@dataclass
class Report:
    """The Markdown report and every file written."""

    markdown: str
    files: list[Path]


def build_report(sweep_dirs: Sequence[str | Path], cfg: ReportConfig, out: str | Path) -> Report:
    """Load the jobs of ``sweep_dirs``, write the report files into ``out``, return them."""
    sweeps, out = [Path(d) for d in sweep_dirs], Path(out)
    jobs, problems = load_jobs(sweeps, cfg.derive)
    if jobs.empty and problems.empty:
        raise FileNotFoundError(f"no job folders (with .hydra/) under {[str(s) for s in sweeps]}")
    out.mkdir(parents=True, exist_ok=True)
    finished = jobs[["sweep", "job"]].drop_duplicates() if not jobs.empty else jobs
    reruns = len(problems) - len(open_problems(problems))
    sections = [f"# {cfg.title or cfg.name}", "",
                f"{len(finished)} finished jobs, {len(problems) - reruns} failed or missing"
                + (f" ({reruns} more re-run in another folder)" if reruns else "") + "; sweeps: "
                + ", ".join(f"`{s}`" for s in sweeps)]
    files: list[Path] = []
    if not jobs.empty:
        group_by = resolve_group_by(cfg, jobs, sweeps)
        metrics = resolve_metrics(cfg, jobs)
        check_groups(jobs, group_by, cfg.seed_key)
        table, notes = results(jobs, cfg, group_by, metrics)
        comment = "\n".join([f"{cfg.title or cfg.name} (python -m lmcompress.report)", *notes])
        files.append(_write(inside(out, f"{cfg.name}.tex", "report.yaml name"),
                            to_latex(table, len(group_by), comment)))
        sections += ["", to_markdown(table), "", *(f"- {note}" for note in notes)]
        if cfg.grid is not None:
            sections += grid_sections(jobs, cfg, metrics[0])
        paired = paired_results(jobs, cfg, group_by, metrics)
        if paired is not None:
            sections += ["", f"## Paired comparisons over {cfg.seed_key}s (scipy ttest_rel, "
                         "two-sided)", "", to_markdown(paired_table(paired, metrics))]
        files += plots(jobs, cfg, group_by, metrics, out)
    if not problems.empty:
        sections += ["", "## Failed or missing jobs", "", to_markdown(problems.astype(str))]
    files += write_failures(problems, out)
    markdown = "\n".join(sections) + "\n"
    files.insert(0, _write(inside(out, f"{cfg.name}.md", "report.yaml name"), markdown))
    return Report(markdown, files)


def resolve_group_by(cfg: ReportConfig, jobs: pd.DataFrame, sweeps: Sequence[Path]) -> list[str]:
    """``cfg.group_by``, else every swept or differing key but the seed; plus ``subnet``.

    The default rows split on the swept keys and on every other override (or sweep config) in
    which the jobs differ (report/groups.py); with none of them, on ``task``.
    """
    if cfg.group_by is not None:
        group_by = list(cfg.group_by)
    else:
        swept = [key for sweep in sweeps if (plan := sweep_plan(sweep)) for key in plan.swept]
        swept += differing_keys(jobs, cfg.seed_key)
        group_by = [key for key in dict.fromkeys(swept) if key != cfg.seed_key] or ["task"]
    if "subnet" in jobs and "subnet" not in group_by:
        group_by.append("subnet")
    missing = [key for key in group_by if key not in jobs]
    if len(missing) == len(group_by):
        raise KeyError(f"group_by {missing}: no such job column; columns: {sorted(jobs.columns)}")
    for key in missing:  # e.g. a key only the report's other sweep varies, not given this time
        log.warning("report: group_by %r is in none of these jobs (a typo?); its column is empty",
                    key)
        jobs[key] = None
    return group_by


def resolve_metrics(cfg: ReportConfig, jobs: pd.DataFrame) -> list[Metric]:
    """``cfg.metrics``, else each job's main metric ×100; a key no job has is an error.

    Raises:
        KeyError: names the metric and lists the metric keys the jobs have.
    """
    metrics = list(cfg.metrics) or [Metric(key, scale=100)
                                    for key in jobs["main_metric"].dropna().unique()]
    for m in metrics:
        if m.key not in jobs or jobs[m.key].isna().all():
            known = sorted(c for c in jobs.columns if "/" in c and jobs[c].notna().any())
            raise KeyError(f"metric {m.key!r} is in no job's metrics.json; the jobs have: "
                           f"{', '.join(known)}")
    return metrics


def results(jobs: pd.DataFrame, cfg: ReportConfig, group_by: list[str], metrics: list[Metric]
            ) -> tuple[pd.DataFrame, list[str]]:
    """The results table (mean ± std per group, params, baselines, paper) and its notes."""
    stats = aggregate(jobs, group_by, [m.key for m in metrics])
    params = (jobs.groupby(group_by, sort=False, dropna=False)["params_total"].mean()
              if "params_total" in jobs else None)
    return results_table(stats, metrics, cfg.baselines, cfg.paper, params)


def paired_results(jobs: pd.DataFrame, cfg: ReportConfig, group_by: list[str],
                   metrics: list[Metric]) -> pd.DataFrame | None:
    """Every configured paired test, per group of the other ``group_by`` keys and per metric."""
    known = [m.key for m in metrics]
    frames = []
    for pair in cfg.paired:
        by = [key for key in group_by if key != pair.key]
        for metric in pair.metrics or known:
            if metric not in known:
                raise KeyError(f"paired metric {metric!r} is not a report metric: {known}")
            result = paired_test(jobs, pair.key, pair.a, pair.b, metric, by, cfg.seed_key)
            result = result[result["n"] > 0]   # groups without this metric (another task's)
            frames.append(result.assign(comparison=f"{pair.a} − {pair.b}", metric=metric))
    return pd.concat(frames, ignore_index=True) if frames else None


def grid_sections(jobs: pd.DataFrame, cfg: ReportConfig, metric: Metric) -> list[str]:
    """``## <metric>: <rows> x <columns>`` with one matrix per ``grid.by`` group."""
    grid = cfg.grid
    missing = [c for c in [grid.rows, grid.columns, *grid.by] if c not in jobs]
    if missing:
        raise KeyError(f"grid {missing}: no such job column; columns: {sorted(jobs.columns)}")
    check_groups(jobs, [grid.rows, grid.columns, *grid.by], cfg.seed_key, where="grid.by")
    lines = ["", f"## {metric.label}: {grid.rows} × {grid.columns}"]
    for name, matrix in grid_tables(jobs, grid.rows, grid.columns, grid.by, metric):
        lines += ["", f"{name}:" if name else "", "", to_markdown(matrix)]
    return lines


def plots(jobs: pd.DataFrame, cfg: ReportConfig, group_by: list[str], metrics: list[Metric],
          out: Path) -> list[Path]:
    """The first metric against parameters and each latency column, and the seed spread."""
    costs = []
    if "params" in cfg.plots and "params_total" in jobs:
        costs.append(("params_total", "parameters", "parameters (millions)", 1e-6))
    if "latency" in cfg.plots:
        costs += [(c, "latency", f"latency, batch {c.rsplit('_b', 1)[-1]} (ms)", 1.0)
                  for c in jobs.columns if c.startswith("latency_ms")]
    files = []
    grouped = jobs.groupby(group_by, sort=False, dropna=False)
    main = metrics[0].key
    references = {b.name: b.values[main] for b in cfg.baselines if main in b.values}
    for column, cost, label, factor in costs:
        points = pd.DataFrame({"cost": grouped[column].mean() * factor,
                               "mean": grouped[main].mean(), "std": grouped[main].std()})
        keys = [v if isinstance(v, tuple) else (v,) for v in points.index]
        if len(group_by) > 1:   # the first key is the series (colour), the rest the label
            points["series"] = [str(k[0]) for k in keys]
            keys = [k[1:] for k in keys]
        points["label"] = [" ".join(map(str, k)) for k in keys]
        points = points.dropna(subset=["cost", "mean"])
        if points["cost"].nunique() < 2:   # one size only: nothing is traded off
            log.info("report: no %s plot, every group has the same %s", column, cost)
            continue
        path = inside(out, f"{cfg.name}_{'params' if cost == 'parameters' else column}.png",
                      "report.yaml name")
        files.append(tradeoff_plot(points, cost, label, metrics[0], path, cfg.title, references))
    if "seeds" in cfg.plots:
        files.append(seeds_plot(jobs, group_by, metrics,
                                inside(out, f"{cfg.name}_seeds.png", "report.yaml name"),
                                cfg.title, cfg.baselines))
    return files


def write_failures(problems: pd.DataFrame, out: Path) -> list[Path]:
    """``failures.md`` listing failed and missing jobs; removes a stale one when there are none."""
    path = out / "failures.md"
    if problems.empty:
        path.unlink(missing_ok=True)
        return []
    text = (f"# Failed or missing jobs: {len(open_problems(problems))}\n\n"
            f"{to_markdown(problems.astype(str))}\n")
    return [_write(path, text)]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
