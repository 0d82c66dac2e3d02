"""Read a run's ``amoc/candidates.csv`` whole, or not at all (a truncated table is left out).

``callbacks/amoc.py`` writes the table atomically, but a copy cut short (a full disk, an
interrupted ``rsync``) would otherwise be read in part: pandas fills a cut last line with NaN
and silently drops the candidates that never arrived. A cut that falls between two lines leaves
a well-formed table: the run's ``selection.json`` (written after the table) says how many
candidates it scored on each target, and the table must have that many rows per target.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)
REQUIRED = ("source", "target", "removed", "metric")


class IncompleteTable(ValueError):
    """A candidates table that is empty, cut short or not a candidates table."""


def check_complete(path: Path, text: str) -> None:
    """Raise :class:`IncompleteTable` naming ``path`` and the first line that is wrong."""
    if not text.strip():
        raise IncompleteTable(f"{path}: empty")
    if not text.endswith("\n"):
        raise IncompleteTable(f"{path}: truncated (its last line has no end of line)")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise IncompleteTable(f"{path}: no column(s) {missing}; not a candidates table")
    if len(rows) < 2:
        raise IncompleteTable(f"{path}: a header and no candidates")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise IncompleteTable(f"{path}: line {number} has {len(row)} of {len(header)} "
                                  "fields (truncated or corrupt)")


def read_candidates(path: str | Path) -> pd.DataFrame:
    """The whole table with a ``file`` column; :class:`IncompleteTable` if it is not whole."""
    path = Path(path)
    text = path.read_text(errors="replace")
    check_complete(path, text)
    table = pd.read_csv(io.StringIO(text), dtype={"removed": str, "source": str, "target": str})
    check_row_counts(path, table)
    return table.assign(file=str(path))


def check_row_counts(path: Path, table: pd.DataFrame) -> None:
    """Rows per target against the run's ``selection.json`` (skipped when it is absent)."""
    try:
        selection = json.loads(path.with_name("selection.json").read_text())
        expected, targets = int(selection["timing"]["candidates"]), list(selection["targets"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    counts = table.groupby("target").size()
    for target in targets:
        if int(counts.get(target, 0)) != expected:
            raise IncompleteTable(
                f"{path}: {int(counts.get(target, 0))} rows for target {target!r}, but its "
                f"selection.json scored {expected} candidates on each target (truncated?)")


def read_all(files: list[Path]) -> tuple[list[pd.DataFrame], list[str]]:
    """The complete tables, and why each other file was left out (also logged as a warning)."""
    tables, left_out = [], []
    for path in files:
        try:
            tables.append(read_candidates(path))
        except IncompleteTable as err:
            log.warning("AMoC report: leaving out %s", err)
            left_out.append(str(err))
    if not tables:
        raise FileNotFoundError(f"no complete amoc/candidates.csv: {'; '.join(left_out)}")
    return tables, left_out
