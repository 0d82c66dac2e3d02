"""Low-level readers that fail with the file and line of the bad input."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path


class DataSourceError(ValueError):
    """Bad or missing data; the message names the file (and line), split, key or value."""


def require_file(path: Path, what: str, hint: str = "") -> Path:
    """``path`` if it is a file, else a DataSourceError naming it and what it should hold."""
    if not path.is_file():
        where = "directory" if not path.parent.is_dir() else "file"
        missing = path.parent if where == "directory" else path
        raise DataSourceError(f"{what}: {where} '{missing}' not found (expected {path.name})"
                              + (f"; {hint}" if hint else ""))
    return path


def read_delimited(path: Path, delimiter: str, columns: int | None = None,
                   header: bool = True) -> Iterator[tuple[int, dict[str, str] | list[str]]]:
    """Yield ``(line_number, row)``; rows are dicts when ``header`` else lists.

    Uses ``QUOTE_NONE`` for TSV (GLUE sentences contain stray quotes) and ``utf-8-sig`` (MRPC BOM).
    A row with the wrong number of columns raises DataSourceError naming the file and line.
    """
    csv.field_size_limit(sys.maxsize)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        names: list[str] | None = None
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if header and names is None:
                names = [c.strip() for c in row]
                continue
            expected = len(names) if names is not None else columns
            if expected is not None and len(row) != expected:
                raise DataSourceError(
                    f"{path}, line {line}: expected {expected} columns, found {len(row)}: "
                    f"{delimiter.join(row)[:120]!r}"
                )
            yield line, dict(zip(names, row, strict=True)) if names is not None else row


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-empty line of a JSON-lines file."""
    with path.open(encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataSourceError(f"{path}, line {line}: invalid JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise DataSourceError(f"{path}, line {line}: expected a JSON object")
            yield line, obj


def parse_label(raw: str, names: list[str] | None, where: str) -> int:
    """A class index from a label name or an integer index; errors name ``where`` and the set."""
    value = raw.strip() if isinstance(raw, str) else raw
    if names is not None and value in names:
        return names.index(value)
    try:
        idx = int(value)
    except (TypeError, ValueError):
        idx = None
    if idx is not None and (names is None or 0 <= idx < len(names)):
        return idx
    allowed = names if names is not None else "integers"
    raise DataSourceError(f"{where}: label {value!r} is not in the label set {allowed}")
