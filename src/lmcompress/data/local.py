"""Your own CSV / TSV / JSONL files with configurable columns."""

from __future__ import annotations

from pathlib import Path

from lmcompress.data.base import PLACEHOLDER_LABELS, DataSourceError, Example, Source
from lmcompress.data.readers import (
    LabelReader,
    check_encoding,
    read_delimited,
    read_jsonl,
    require_file,
)


class LocalFileSource(Source):
    """Your own CSV / TSV / JSONL files with configurable text, pair and label columns.

    Text cells are used as written: a JSON null, number or list in a text column is refused
    (``Source.load``). ``encoding`` is the files' text encoding (``task.source.encoding``).
    Without ``label_names`` the label set is the sorted set of the training labels (integers in
    numeric order), and every split must spell its labels the same way (names, or indices).
    """

    def __init__(self, train: str, validation: str | None = None, test: str | None = None,
                 format: str | None = None, text_column: str = "text",
                 text_pair_column: str | None = None, label_column: str = "label",
                 label_names: list[str] | None = None, kind: str = "classification",
                 has_header: bool = True, encoding: str = "utf-8"):
        if kind not in ("classification", "regression"):
            raise DataSourceError(f"task.kind='{kind}' is not supported for local files")
        self.paths = {s: p for s, p in (("train", train), ("validation", validation),
                                        ("test", test)) if p}
        for split, path in self.paths.items():
            require_file(Path(path), f"task.source.{split}")
        self.format, self.text_column, self.text_pair_column = format, text_column, text_pair_column
        self.label_column, self.kind, self.has_header = label_column, kind, has_header
        self.encoding = check_encoding(encoding)
        self.text_fields = (f"column '{text_column}'", f"column '{text_pair_column}'")
        self.has_pairs = text_pair_column is not None
        self.label_names = list(label_names) if label_names else None
        if self.kind == "classification" and self.label_names is None:
            seen = {str(r[label_column]).strip() for _, r in self._rows("train")
                    if r[label_column] is not None} - set(PLACEHOLDER_LABELS)
            # integer labels in numeric order, so '2' is class 2 of 0..10 (not after '10')
            numeric = all(n.lstrip("-").isdigit() for n in seen)
            self.label_names = sorted(seen, key=lambda n: (int(n), n) if numeric else (0, n))
        self.labels = LabelReader(self.label_names)
        self._splits = tuple(self.paths)

    def _rows(self, split: str):
        path = Path(self.paths[split])
        fmt = self.format or {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
                              ".json": "jsonl"}.get(path.suffix.lower())
        if fmt == "jsonl":
            rows = read_jsonl(path, self.encoding)
        elif fmt in ("csv", "tsv"):
            rows = read_delimited(path, "," if fmt == "csv" else "\t", header=self.has_header,
                                  encoding=self.encoding)
        else:
            raise DataSourceError(f"{path}: cannot infer the format; set task.source.format")
        # a test file may have no label column at all (it is then scored as predictions only)
        label = [self.label_column] if split != "test" else []
        wanted = [c for c in (self.text_column, self.text_pair_column, *label) if c]
        for line, row in rows:
            missing = [c for c in wanted if c not in row]
            if missing:
                raise DataSourceError(f"{path}, line {line}: missing column(s) {missing}; "
                                      f"available: {sorted(row)}")
            yield line, row

    def _load(self, split: str) -> list[Example]:
        path = self.paths[split]
        out = []
        for line, row in self._rows(split):
            where = f"{path}, line {line}"
            raw = row.get(self.label_column)
            placeholders = PLACEHOLDER_LABELS if self.kind != "regression" else ("", "-")
            if raw is None or str(raw).strip() in placeholders:
                label = None
            elif self.kind == "regression":
                try:
                    label = float(raw)
                except (TypeError, ValueError) as err:
                    raise DataSourceError(f"{where}: label {raw!r} is not a number") from err
            else:
                label = self.labels(raw if isinstance(raw, str) else str(raw), where)
            pair = row[self.text_pair_column] if self.text_pair_column else None
            out.append(Example(row[self.text_column], pair, label, where))
        return out
