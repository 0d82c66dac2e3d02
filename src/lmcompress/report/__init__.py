"""Sweep folders -> tables and plots: ``python -m lmcompress.report <sweep dir>...``.

``load`` reads every job's ``metrics.json`` and ``.hydra/overrides.yaml`` (and lists failed and
never-started jobs), ``stats`` aggregates over seeds and runs paired tests, ``tables`` renders
Markdown and LaTeX (with trivial baselines and published numbers from ``paper_numbers.yaml``),
``plots`` draws metric-vs-cost Pareto fronts and seed spreads; ``build`` ties them together as
configured by a sweep's ``report.yaml`` (``config``).
"""

from lmcompress.report.build import Report, build_report
from lmcompress.report.config import ReportConfig, load_config, paper_table
from lmcompress.report.load import load_jobs, sweep_plan
from lmcompress.report.stats import aggregate, paired_test, pareto_front

__all__ = ["Report", "ReportConfig", "aggregate", "build_report", "load_config", "load_jobs",
           "paired_test", "paper_table", "pareto_front", "sweep_plan"]
