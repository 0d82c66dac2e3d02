"""A CSV logger whose history survives a resume.

Lightning's CSVLogger deletes ``metrics.csv`` when its folder is reused, so a run resumed after
a kill loses every row logged before it. Here the old rows are kept; rows at or after the first
step the resumed run logs (written after the checkpoint it resumed from) are dropped, because
the resumed run logs them again.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


class _KeepingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        self._previous: list[dict[str, Any]] = []
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self._previous = list(csv.DictReader(f))
            os.remove(self.metrics_file_path)

    def save(self) -> None:
        if self._previous and self.metrics:
            cutoff = min(int(m["step"]) for m in self.metrics)
            kept = [r for r in self._previous if r.get("step") and int(r["step"]) < cutoff]
            rows = [{k: v for k, v in r.items() if v != ""} for r in kept]
            self.metrics = [*rows, *self.metrics]
            self._previous = []
        super().save()


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` that keeps the rows logged before a resume (see module docstring)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment
