"""What a report shows: ``sweeps/<id>/report.yaml`` read into typed dataclasses.

OmegaConf checks the YAML against these dataclasses, so a misspelt key or a wrong type fails at
load time and names the key. The attribute docstrings document the keys. Example::

    name: ckd_mrpc_cpu
    derive: {student: "{num_layers}L/{hidden_size}"}
    group_by: [student, loss]
    metrics:
      - {key: val/f1, name: dev F1, scale: 100}
    paired:
      - {key: loss, a: kd_ckd, b: kd}
    baselines:
      - {name: majority class, values: {val/f1: 0.8122}, source: "279 of 408 dev pairs ..."}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

PLOTS = ("params", "latency", "seeds")
PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")


@dataclass
class Metric:
    """One metric column of the table."""

    key: str
    """Column of the jobs table: ``val/f1``, ``test/accuracy``, ``<report split>/<metric>``."""
    name: str | None = None
    """Header in tables and axis label in plots (default: ``key``)."""
    scale: float = 1.0
    """Display factor, e.g. 100 to show accuracy in percent."""
    decimals: int = 2
    """Digits after the decimal point."""

    @property
    def label(self) -> str:
        return self.name or self.key


@dataclass
class Paired:
    """A paired t-test of ``key=a`` against ``key=b``, over the seeds both have, per group."""

    key: str
    """The swept key whose values are compared, e.g. ``loss``."""
    a: str
    """Its value on the left of ``a - b``, e.g. ``kd_ckd``."""
    b: str
    """Its value on the right, e.g. ``kd``."""
    metrics: list[str] | None = None
    """Metric keys to test (default: every metric of the report)."""


@dataclass
class Baseline:
    """A trivial predictor's scores, shown as an extra row below ours."""

    name: str
    """Row label, e.g. ``majority class``."""
    values: dict[str, float]
    """Metric key -> score, in metrics.json units (fractions, before ``scale``)."""
    source: str
    """Where the numbers come from (the count or the reference), printed under the table."""


@dataclass
class PaperRef:
    """The published table our rows reproduce, for the paper's number and our difference."""

    table: str
    """Table id in ``lmcompress/report/paper_numbers.yaml``."""
    task: str | None = None
    """Task key inside that table, e.g. ``mrpc`` (a one-task report)."""
    tasks: dict[str, str] = field(default_factory=dict)
    """Several tasks: our ``task`` column value (``glue/mrpc`` or ``glue_mrpc``) -> the table's
    task key, e.g. ``{glue_mrpc: mrpc}``; each row gets the number of its own task."""
    rows: dict[str, str] = field(default_factory=dict)
    """Which of our rows reproduce it, e.g. ``{loss: kd_ckd}`` (empty: every row)."""


@dataclass
class Grid:
    """The first metric as a matrix (e.g. DynaBERT's widths x depths), one per ``by`` group."""

    rows: str
    """Column whose values are the rows, e.g. ``width``."""
    columns: str
    """Column whose values are the columns, e.g. ``depth``."""
    by: list[str] = field(default_factory=list)
    """Columns that split the jobs into one matrix each, e.g. ``[experiment]``."""


@dataclass
class ReportConfig:
    """A sweep's report: grouping, metrics, tests, reference rows and plots."""

    name: str = "report"
    """Stem of the output files: ``<out>/<name>.md``, ``.tex``, ``<name>_*.png``."""
    title: str = ""
    """Heading of the Markdown report."""
    group_by: list[str] | None = None
    """Columns that define a row (default: the swept keys minus ``seed_key``)."""
    seed_key: str = "seed"
    """The column that varies within a group; paired tests pair jobs on it."""
    derive: dict[str, str] = field(default_factory=dict)
    """New column -> format string over a job's columns, e.g. ``"{num_layers}L/{hidden_size}"``."""
    metrics: list[Metric] = field(default_factory=list)
    """Metric columns (default: each job's main metric, ×100)."""
    paired: list[Paired] = field(default_factory=list)
    """Paired comparisons between objectives."""
    baselines: list[Baseline] = field(default_factory=list)
    """Trivial-predictor rows."""
    paper: PaperRef | None = None
    """The paper table this one reproduces (null: none)."""
    plots: list[str] = field(default_factory=lambda: list(PLOTS))
    """Figures to draw: ``params`` and ``latency`` (metric vs cost), ``seeds`` (spread)."""
    grid: Grid | None = None
    """Also show the first metric as ``rows`` x ``columns`` matrices (null: no)."""


def load_config(path: str | Path | None = None) -> ReportConfig:
    """The report config in ``path`` (YAML), or the defaults when ``path`` is None."""
    schema = OmegaConf.structured(ReportConfig)
    cfg = OmegaConf.merge(schema, OmegaConf.load(path)) if path else schema
    config: ReportConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    unknown = sorted(set(config.plots) - set(PLOTS))
    if unknown:
        raise ValueError(f"{path}: plots {unknown} unknown; choose from {list(PLOTS)}")
    if config.paper is not None:
        paper_table(config.paper.table)  # fail now on a misspelt table id
    return config


def paper_table(table_id: str) -> dict[str, Any]:
    """One table of ``paper_numbers.yaml``: title, source, checked, verified, numbers."""
    tables = yaml.safe_load(PAPER_NUMBERS.read_text())
    if table_id not in tables:
        raise KeyError(f"paper table {table_id!r} is not in {PAPER_NUMBERS}: {sorted(tables)}")
    return tables[table_id]
