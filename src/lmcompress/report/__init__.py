"""Rebuild paper tables from a sweep's job folders (metrics.json + .hydra/overrides.yaml)."""

from lmcompress.report.collect import collect, load_runs, markdown_table, model_shape

__all__ = ["collect", "load_runs", "markdown_table", "model_shape"]
