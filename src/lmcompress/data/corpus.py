"""Unlabelled text for general distillation: read lazily, exclude evaluation text, pack, memory-map.

A corpus is any mix of (docs/general.md):

- ``files``: plain text (one sentence or document per line) or JSONL (``text_field`` of each
  object), read line by line, never whole;
- ``hf_datasets``: Hugging Face datasets by hub id or local folder, read with ``streaming=True``;
- ``sources``: the training text of any task source (``{source: {_target_: ...}, splits: [...]}``),
  labels dropped.

``exclude`` lists evaluation sources in the same form (``splits: [validation, test]``): every text
and text pair they hold is normalised (:func:`normalise`) and a corpus line equal to one of them is
dropped, so no dev or test sentence of an evaluation task is trained on. The counts of what was
read, excluded and packed are returned with the corpus and end up in ``metrics.json``.

Texts are tokenised in chunks and packed greedily into blocks of at most ``max_length`` tokens
(``[CLS] s1 [SEP] s2 [SEP] ...``; a text longer than a block is cut into several), written row by
row to a ``uint32`` file that is memory-mapped for training: a corpus larger than memory trains,
and a rebuilt corpus with the same settings is read from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmcompress.data.readers import DataSourceError
from lmcompress.utils.instantiate import instantiate_plain
from lmcompress.utils.io import write_json_atomic

CHUNK = 1000
"""Texts tokenised per call."""


def normalise(text: str) -> str:
    """The form two texts are compared in: NFKC, lower case, one space between words."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def _source_texts(entry: Any, key: str) -> Iterator[str]:
    """Texts (and text pairs) of ``entry = {source: {...}, splits: [...]}``."""
    entry = dict(entry)
    unknown = sorted(set(entry) - {"source", "splits"})
    if unknown or "source" not in entry or not entry.get("splits"):
        raise ValueError(f"{key}: needs 'source' (a _target_ config) and 'splits'; unknown "
                         f"{unknown}")
    source = entry["source"]
    source = instantiate_plain(source) if isinstance(source, dict) else source
    for split in entry["splits"]:
        for example in source.load(split):
            text = example.text if isinstance(example.text, str) else " ".join(example.text)
            yield text
            if example.text_pair:
                yield example.text_pair


def _file_texts(path: str, text_field: str, key: str) -> Iterator[str]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{key}: no file {file}")
    jsonl = file.suffix in (".jsonl", ".json")
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if not jsonl:
                yield line.rstrip("\n")
                continue
            try:
                value = json.loads(line)[text_field]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataSourceError(f"{file}:{number}: not a JSON object with a "
                                      f"'{text_field}' string ({err})") from err
            if not isinstance(value, str):
                raise DataSourceError(f"{file}:{number}: '{text_field}' is "
                                      f"{type(value).__name__}, not a string")
            yield value


def _hf_texts(spec: Any, key: str) -> Iterator[str]:
    from datasets import load_dataset

    spec = dict(spec)
    field = spec.pop("text_field", "text")
    dataset = load_dataset(spec.pop("path"), spec.pop("name", None),
                           split=spec.pop("split", "train"), streaming=True, **spec)
    for number, row in enumerate(dataset):
        value = row.get(field)
        if not isinstance(value, str):
            raise DataSourceError(f"{key} row {number}: '{field}' is {type(value).__name__}, "
                                  "not a string")
        yield value


@dataclass
class CorpusSource:
    """Where the unlabelled text comes from (the ``task.source`` of a corpus task).

    Args:
        files: text or JSONL files (JSONL: ``.jsonl``/``.json`` suffix).
        hf_datasets: ``[{path, name, split, text_field, ...}]`` read with ``streaming=True``.
        sources: ``[{source: {_target_...}, splits: [train]}]``: task sources' text.
        exclude: ``[{source: {...}, splits: [validation, test]}]``: evaluation text to drop.
        text_field: the JSONL field holding the text.
        dedup: also drop a text already seen in the corpus (exact, after normalising).
        max_texts: stop after this many texts kept (a budget; ``None``: all).
    """

    files: Sequence[str] = ()
    hf_datasets: Sequence[Any] = ()
    sources: Sequence[Any] = ()
    exclude: Sequence[Any] = ()
    text_field: str = "text"
    dedup: bool = True
    max_texts: int | None = None

    kind = "corpus"
    label_names = None

    def __post_init__(self) -> None:
        if not (self.files or self.hf_datasets or self.sources):
            raise ValueError("task.source: a corpus needs files, hf_datasets or sources")
        if self.max_texts is not None and (isinstance(self.max_texts, bool)
                                           or not isinstance(self.max_texts, int)
                                           or self.max_texts < 1):
            raise ValueError(f"task.source.max_texts={self.max_texts!r}: an integer >= 1 or null")

    def texts(self) -> Iterator[str]:
        """Every corpus text, in order, lazily."""
        for i, path in enumerate(self.files):
            yield from _file_texts(path, self.text_field, f"task.source.files[{i}]")
        for i, spec in enumerate(self.hf_datasets):
            yield from _hf_texts(spec, f"task.source.hf_datasets[{i}]")
        for i, entry in enumerate(self.sources):
            yield from _source_texts(entry, f"task.source.sources[{i}]")

    def excluded(self) -> dict[str, int]:
        """Normalised evaluation text -> the index of the ``exclude`` entry it came from."""
        held: dict[str, int] = {}
        for i, entry in enumerate(self.exclude):
            for text in _source_texts(entry, f"task.source.exclude[{i}]"):
                held.setdefault(normalise(text), i)
        return held

    def identity(self) -> str:
        """What the packed corpus depends on (a cache key part)."""
        def plain(value: Any) -> Any:
            return json.loads(json.dumps(value, default=str))
        return json.dumps(plain({"files": [[p, _stamp(p)] for p in self.files],
                                 "hf": list(self.hf_datasets), "sources": list(self.sources),
                                 "exclude": list(self.exclude), "field": self.text_field,
                                 "dedup": self.dedup, "max": self.max_texts}), sort_keys=True)


def _stamp(path: str) -> list[float]:
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime]


@dataclass
class PackedCorpus:
    """Blocks of token ids (memory-mapped, padded with 0) and their lengths."""

    ids: np.ndarray
    lengths: np.ndarray
    report: dict[str, Any]


def pack(source: CorpusSource, tokenizer: Any, max_length: int,
         cache_dir: str | Path | None) -> PackedCorpus:
    """Read, exclude, tokenise and pack ``source``; reuse the cache when nothing changed."""
    key = hashlib.sha256(f"{source.identity()}|{max_length}|{tokenizer.name_or_path}|"
                         f"{len(tokenizer)}".encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "corpus" / key if cache_dir else None
    if folder is not None and (folder / "report.json").is_file():
        return _open(folder)
    held = source.excluded()
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    if cls is None or sep is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path}: packing needs cls and sep tokens")
    report = {"texts_read": 0, "excluded": [0] * len(source.exclude), "duplicates": 0,
              "empty": 0, "texts_kept": 0, "blocks": 0, "tokens": 0,
              "exclude_texts": len(held), "max_length": max_length}
    target = folder if folder is not None else Path(tempfile.gettempdir())
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f".ids.{os.getpid()}.partial"
    lengths: list[int] = []
    try:
        with partial.open("wb") as out:
            for row in _blocks(_kept(source, held, report), tokenizer, max_length - 1, cls,
                               sep):
                padded = np.zeros(max_length, dtype=np.uint32)
                padded[:len(row)] = row
                out.write(padded.tobytes())
                lengths.append(len(row))
                report["tokens"] += len(row)
    except BaseException:
        partial.unlink(missing_ok=True)  # a failed read leaves no half-written corpus
        raise
    report["blocks"] = len(lengths)
    if not lengths:
        partial.unlink()
        raise ValueError("task.source: the corpus holds no text after exclusion "
                         f"({report['texts_read']} read, {sum(report['excluded'])} excluded)")
    if folder is None:
        ids = np.fromfile(partial, dtype=np.uint32).reshape(-1, max_length)
        partial.unlink()
        return PackedCorpus(ids, np.asarray(lengths, dtype=np.int32), report)
    os.replace(partial, folder / "ids.u32")
    np.save(folder / "lengths.npy", np.asarray(lengths, dtype=np.int32))
    write_json_atomic(folder / "report.json", report)  # written last: marks a complete cache
    return _open(folder)


def _open(folder: Path) -> PackedCorpus:
    report = json.loads((folder / "report.json").read_text())
    ids = np.memmap(folder / "ids.u32", dtype=np.uint32, mode="r",
                    shape=(report["blocks"], report["max_length"]))
    return PackedCorpus(ids, np.load(folder / "lengths.npy"), {**report, "cache": str(folder)})


def _kept(source: CorpusSource, held: dict[str, int], report: dict[str, Any]) -> Iterator[str]:
    seen: set[str] = set()
    for text in source.texts():
        report["texts_read"] += 1
        norm = normalise(text)
        if not norm:
            report["empty"] += 1
            continue
        if norm in held:
            report["excluded"][held[norm]] += 1
            continue
        if source.dedup:
            digest = hashlib.blake2b(norm.encode(), digest_size=8).digest()
            if digest in seen:
                report["duplicates"] += 1
                continue
            seen.add(digest)
        report["texts_kept"] += 1
        yield text
        if source.max_texts is not None and report["texts_kept"] >= source.max_texts:
            return


def _blocks(texts: Iterator[str], tokenizer: Any, room: int, cls: int,
            sep: int) -> Iterator[list[int]]:
    """``[cls] t1 [sep] t2 [sep] ...`` rows of at most ``room + 1`` ids."""
    row = [cls]
    for chunk in _chunks(texts, CHUNK):
        for ids in tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"]:
            while ids:
                space = room - len(row)  # what fits with its closing [sep]
                if space < 2 and len(row) > 1:
                    yield row
                    row, space = [cls], room - 1
                piece, ids = ids[:space], ids[space:]
                row += [*piece, sep]
    if len(row) > 1:
        yield row


def _chunks(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
