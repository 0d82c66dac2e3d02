"""Low-level readers: a file is read as written, or refused with its file and line (docs/data.md).

Every reader decodes strictly with the configured encoding (``task.source.encoding``; an
undecodable byte names its line and the key to set), refuses an empty or header-only file, and
refuses a column header (or JSON key) that appears twice instead of letting the last one win.
"""

from __future__ import annotations

import codecs
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


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows the codec, else a DataSourceError naming the key."""
    try:
        codecs.lookup(encoding)
    except LookupError as err:
        raise DataSourceError(f"task.source.encoding={encoding!r} is not a known text encoding "
                              "(e.g. utf-8, latin-1, cp1252)") from err
    return encoding


def _codec(encoding: str) -> str:
    # utf-8-sig reads plain UTF-8 too and drops a leading byte-order mark (MRPC has one)
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def undecodable(path: Path, encoding: str, err: UnicodeDecodeError) -> DataSourceError:
    """The error for a file that is not valid ``encoding``: its line, byte and the key to set."""
    data = path.read_bytes()
    try:
        data.decode(_codec(encoding))
        start = err.start  # not reproducible on the whole file: report what the reader saw
        line = "?"
    except UnicodeDecodeError as whole:
        start, line = whole.start, data.count(b"\n", 0, whole.start) + 1
    return DataSourceError(f"{path}, line {line}: byte {data[start:start + 1]!r} at offset "
                           f"{start} is not valid {encoding}; set task.source.encoding to the "
                           "file's encoding (e.g. latin-1 or cp1252)")


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` decoded strictly; an undecodable byte names its line."""
    try:
        with path.open(encoding=_codec(encoding)) as f:
            yield from enumerate(f, start=1)
    except UnicodeDecodeError as err:
        raise undecodable(path, encoding, err) from err


def read_delimited(path: Path, delimiter: str, columns: int | None = None,
                   header: bool = True,
                   encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, str] | list[str]]]:
    """Yield ``(line_number, row)``; rows are dicts when ``header`` else lists.

    Uses ``QUOTE_NONE`` for TSV (GLUE sentences contain stray quotes). A row with the wrong
    number of columns, a header naming a column twice, or a file with no rows (empty or
    header-only) raises DataSourceError naming the file and line.
    """
    csv.field_size_limit(sys.maxsize)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    try:
        with path.open(encoding=_codec(encoding), newline="") as f:
            yield from _delimited_rows(path, csv.reader(f, delimiter=delimiter, quoting=quoting),
                                       delimiter, columns, header)
    except UnicodeDecodeError as err:
        raise undecodable(path, encoding, err) from err


def _delimited_rows(path: Path, reader: Iterator[list[str]], delimiter: str,
                    columns: int | None, header: bool) -> Iterator[tuple[int, dict | list]]:
    names: list[str] | None = None
    rows = 0
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if header and names is None:
            names = [c.strip() for c in row]
            _refuse_duplicates(names, f"{path}, line {line}: column header")
            continue
        expected = len(names) if names is not None else columns
        if expected is not None and len(row) != expected:
            raise DataSourceError(f"{path}, line {line}: expected {expected} columns, found "
                                  f"{len(row)}: {delimiter.join(row)[:120]!r}")
        rows += 1
        yield line, dict(zip(names, row, strict=True)) if names is not None else row
    if not rows:
        raise DataSourceError(f"{path}: empty ({'only a header line' if names else 'no rows'})")


def _refuse_duplicates(names: list[str], what: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise DataSourceError(f"{what} {name!r} appears twice (columns {seen[name]} and "
                                  f"{i}); rename one, the reader would not know which to use")
        seen[name] = i


def read_jsonl(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-empty line of a JSON-lines file."""
    rows = 0
    for line, text in read_lines(path, encoding):
        if not text.strip():
            continue
        where = f"{path}, line {line}"
        try:
            obj = json.loads(text, object_pairs_hook=lambda pairs, w=where: _json_object(pairs, w))
        except json.JSONDecodeError as err:
            raise DataSourceError(f"{where}: invalid JSON ({err.msg})") from err
        if not isinstance(obj, dict):
            raise DataSourceError(f"{where}: expected a JSON object")
        rows += 1
        yield line, obj
    if not rows:
        raise DataSourceError(f"{path}: empty (no JSON objects)")


def _json_object(pairs: list[tuple[str, object]], where: str) -> dict:
    _refuse_duplicates([k for k, _ in pairs], f"{where}: key")
    return dict(pairs)


class LabelReader:
    """Class indices from label cells, spelled the same way (names or indices) in every split.

    A cell is a *name* when it is in ``names``, else an *index* when it is an integer. The first
    labelled cell fixes the spelling for the whole source; a cell spelled the other way (``1`` in
    dev where train said ``positive``) is refused naming both places, instead of being mapped by
    the names' order.
    """

    def __init__(self, names: list[str] | None):
        self.names = names
        self.spelling: tuple[str, str] | None = None  # (names | indices, where first seen)

    def __call__(self, raw: object, where: str) -> int:
        """The class index of ``raw`` read at ``where``."""
        value = raw.strip() if isinstance(raw, str) else raw
        idx, spelling = parse_label(value, self.names, where), "indices"
        if self.names is not None and value in self.names:
            spelling = "names"
        if self.spelling is None:
            self.spelling = (spelling, where)
        elif self.spelling[0] != spelling:
            raise DataSourceError(
                f"{where}: label {value!r} is spelled as one of the {spelling}, but the labels "
                f"at {self.spelling[1]} are {self.spelling[0]} (label set {self.names}); spell "
                "the labels of every split the same way")
        return idx


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
