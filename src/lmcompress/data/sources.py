"""Data sources: raw labelled examples per split, validated eagerly (no tokenisation here).

Every source has ``kind`` (classification | regression | token_classification),
``label_names`` (None for regression), ``splits()`` and ``load(split) -> list[Example]``.
Bad input raises :class:`DataSourceError` naming the file and line, the value, or the config key.
"""

from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass
from pathlib import Path

from lmcompress.data.readers import (
    DataSourceError,
    parse_label,
    read_delimited,
    read_jsonl,
    require_file,
)
from lmcompress.data.synthetic import SyntheticSource

__all__ = ["AmazonSource", "ConlluSource", "DataSourceError", "Example", "GlueSource",
           "LocalFileSource", "Source", "SyntheticSource", "UPOS_TAGS", "GLUE_TASKS"]


@dataclass
class Example:
    """One example: a sentence (or word list), an optional second sentence, an optional label."""

    text: str | list[str]
    text_pair: str | None = None
    label: int | float | list[int] | None = None


class Source:
    """Base class: split bookkeeping shared by every source."""

    kind: str = "classification"
    label_names: list[str] | None = None
    _splits: tuple[str, ...] = ("train", "validation", "test")

    def splits(self) -> list[str]:
        """The splits this source can load."""
        return list(self._splits)

    def load(self, split: str) -> list[Example]:
        """Examples of ``split`` (a DataSourceError for an unknown or empty split)."""
        if split not in self.splits():
            raise DataSourceError(f"{type(self).__name__}: unknown split '{split}'; "
                                  f"available: {self.splits()}")
        examples = self._load(split)
        if not examples:
            raise DataSourceError(f"{type(self).__name__}: split '{split}' is empty")
        return examples

    def _load(self, split: str) -> list[Example]:
        raise NotImplementedError


# --- GLUE ---------------------------------------------------------------------------------------
# task -> (kind, label names, text columns, label column, local dir, {split: file})
GLUE_TASKS: dict[str, dict] = {
    "sst2": {"kind": "classification", "labels": ["negative", "positive"], "dir": "SST-2",
             "text": ("sentence", None), "label": "label",
             "files": {"train": ["alps_train.tsv", "alps_dev.tsv"],
                       "validation": ["alps_test.tsv"]}},
    "mrpc": {"kind": "classification", "labels": ["not_equivalent", "equivalent"], "dir": "MRPC",
             "text": ("#1 String", "#2 String"), "label": "Quality",
             "files": {"train": ["train.tsv"], "validation": ["dev.tsv"],
                       "test": ["msr_paraphrase_test_with_labels.txt"]}},
    "rte": {"kind": "classification", "labels": ["entailment", "not_entailment"], "dir": "RTE",
            "text": ("sentence1", "sentence2"), "label": "label",
            "files": {"train": ["train.tsv"], "validation": ["dev.tsv"], "test": ["test.tsv"]}},
    "cola": {"kind": "classification", "labels": ["unacceptable", "acceptable"], "dir": "CoLA",
             "text": ("x", None), "label": "y",
             "files": {"train": ["train.tsv"], "validation": ["dev_in_domain.tsv"],
                       "test": ["dev_out_of_domain.tsv"]}},
    "stsb": {"kind": "regression", "labels": None, "dir": "STS-B",
             "text": ("sentence1", "sentence2"), "label": "score",
             "files": {"train": ["train.tsv"], "validation": ["dev.tsv"],
                       "test": ["original_sts-test_with_scores.tsv"]}},
    "qnli": {"kind": "classification", "labels": ["entailment", "not_entailment"], "dir": "QNLI",
             "text": ("question", "sentence"), "label": "label",
             "files": {"train": ["train.tsv"], "validation": ["dev.tsv"]}},
    "qqp": {"kind": "classification", "labels": ["not_duplicate", "duplicate"], "dir": "QQP",
            "text": ("question1", "question2"), "label": "is_duplicate",
            "files": {"train": ["train.tsv"], "validation": ["dev.tsv"]}},
    "mnli": {"kind": "classification", "labels": ["entailment", "neutral", "contradiction"],
             "dir": "MNLI", "text": ("sentence1", "sentence2"), "label": "gold_label",
             "files": {"train": ["train.tsv"], "validation": ["dev_matched.tsv"],
                       "validation_matched": ["dev_matched.tsv"],
                       "validation_mismatched": ["dev_mismatched.tsv"]}},
}
SST2_SENTENCE_FILES = {"train": ["train.tsv"], "validation": ["dev.tsv"], "test": ["test.tsv"]}
HUB_SPLITS = {"mnli": {"validation": "validation_matched"}}


class GlueSource(Source):
    """A GLUE task from local GLUE-format TSVs, or from the datasets hub.

    ``data_dir`` = the folder holding SST-2/, MRPC/, ...; ``data_dir=None`` loads from the
    datasets hub (needs a network).

    ``variant="sentence_level"`` (SST-2 only) reads ``SST-2/sentence_level`` (labelled test set).
    Label-less rows (GLUE test files, label -1) become ``label=None``.
    """

    def __init__(self, task: str, data_dir: str | None = None, variant: str = "default",
                 cache_dir: str | None = None):
        if task not in GLUE_TASKS:
            raise DataSourceError(f"unknown GLUE task '{task}'; choose from {sorted(GLUE_TASKS)}")
        if variant not in ("default", "alps", "sentence_level") or (
                variant == "sentence_level" and task != "sst2"):
            raise DataSourceError(f"task.source.variant='{variant}' is not valid for {task}")
        self.task, self.data_dir, self.variant, self.cache_dir = task, data_dir, variant, cache_dir
        self.meta = GLUE_TASKS[task]
        self.kind, self.label_names = self.meta["kind"], self.meta["labels"]
        self.files = SST2_SENTENCE_FILES if variant == "sentence_level" else self.meta["files"]
        self._splits = tuple(self.files)
        if data_dir is not None:
            self._dir()  # fail early on a missing directory

    def _dir(self) -> Path:
        sub = Path(self.meta["dir"]) / ("sentence_level" if self.variant == "sentence_level"
                                        else "")
        path = Path(self.data_dir) / sub
        if not path.is_dir():
            raise DataSourceError(
                f"GLUE {self.task} directory '{path}' not found (expected "
                f"{', '.join(dict.fromkeys(f for fs in self.files.values() for f in fs))}); set "
                "task.source.data_dir to the folder holding the GLUE task folders, or null to "
                "download from the hub")
        return path

    def _load(self, split: str) -> list[Example]:
        if self.data_dir is None:
            return self._load_hub(split)
        examples = []
        for name in self.files[split]:
            path = require_file(self._dir() / name, f"GLUE {self.task} {split}")
            if self.task == "stsb" and split == "test":
                examples += self._read_sts_original(path)
            else:
                examples += self._read_tsv(path)
        return examples

    def _read_tsv(self, path: Path) -> list[Example]:
        text_col, pair_col = ("x", None) if self.variant == "sentence_level" else self.meta["text"]
        label_col = "y" if self.variant == "sentence_level" else self.meta["label"]
        out = []
        for line, row in read_delimited(path, "\t"):
            missing = [c for c in (text_col, pair_col, label_col) if c and c not in row]
            if missing:
                raise DataSourceError(f"{path}: missing column(s) {missing}; found {list(row)}")
            out.append(Example(row[text_col], row[pair_col] if pair_col else None,
                               self._label(row[label_col], f"{path}, line {line}")))
        return out

    def _read_sts_original(self, path: Path) -> list[Example]:
        """STS-benchmark original test file: no header, score in column 5, sentences 6 and 7."""
        out = []
        for line, row in read_delimited(path, "\t", header=False):
            if len(row) < 7:
                raise DataSourceError(f"{path}, line {line}: expected >= 7 columns")
            out.append(Example(row[5], row[6], self._label(row[4], f"{path}, line {line}")))
        return out

    def _label(self, raw: str, where: str) -> int | float | None:
        raw = raw.strip()
        if raw in ("", "-1", "-"):
            return None
        if self.kind == "regression":
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not 0.0 <= value <= 5.0:
                raise DataSourceError(f"{where}: similarity score {raw!r} outside [0, 5]")
            return value
        return parse_label(raw, self.label_names, where)

    def _load_hub(self, split: str) -> list[Example]:
        from lmcompress.models.hf import _hub_offline_reason

        reason = _hub_offline_reason(extra_vars=("HF_DATASETS_OFFLINE",))
        if reason is not None:
            raise DataSourceError(
                f"GLUE {self.task}: task.source.data_dir is null (download from the datasets hub) "
                f"but this machine is offline ({reason}); set task.source.data_dir to a local "
                "GLUE directory")
        import datasets

        hub_split = HUB_SPLITS.get(self.task, {}).get(split, split)
        rows = datasets.load_dataset("glue", self.task, split=hub_split, cache_dir=self.cache_dir)
        t1, t2 = {"sst2": ("sentence", None), "cola": ("sentence", None),
                  "qqp": ("question1", "question2"), "qnli": ("question", "sentence"),
                  "mnli": ("premise", "hypothesis")}.get(self.task, ("sentence1", "sentence2"))
        return [Example(r[t1], r[t2] if t2 else None,
                        None if r["label"] == -1 else r["label"]) for r in rows]


# --- Amazon (Blitzer et al. 2007) ---------------------------------------------------------------
_REVIEW = re.compile(r"<review>(.*?)</review>", re.S)


def _field(block: str, name: str) -> str:
    match = re.search(rf"<{name}>(.*?)</{name}>", block, re.S)
    return " ".join(html.unescape(match.group(1)).split()) if match else ""


class AmazonSource(Source):
    """One Blitzer et al. (2007) Amazon domain: 1,000 positive + 1,000 negative raw reviews.

    A seeded, stratified split (same seed, same split on any platform): ``test_fraction`` and
    ``val_fraction`` of each class go to test and validation, the rest to train. ``unlabeled=True``
    yields the same texts with ``label=None`` (unlabelled target-domain data); split ``all`` has
    every review. Text = title + ". " + review text.
    """

    def __init__(self, domain: str, data_dir: str, seed: int = 42, val_fraction: float = 0.1,
                 test_fraction: float = 0.2, unlabeled: bool = False,
                 max_chars: int | None = None):
        root = Path(data_dir)
        if not root.is_dir():
            raise DataSourceError(f"Amazon data directory '{root}' not found (expected "
                                  "<domain>/positive.review); set task.source.data_dir")
        domains = sorted(p.name for p in root.iterdir() if (p / "positive.review").is_file())
        if domain not in domains:
            raise DataSourceError(f"Amazon domain '{domain}' not in {root}; available: {domains}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
                and val_fraction + test_fraction < 1):
            raise DataSourceError("task.source.val_fraction + test_fraction must be in [0, 1)")
        self.domain, self.data_dir, self.seed = domain, str(root), seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.unlabeled, self.max_chars = unlabeled, max_chars
        self.label_names = ["negative", "positive"]
        self._splits = ("train", "validation", "test", "all")

    def _reviews(self) -> list[tuple[str, int]]:
        out = []
        for label, name in enumerate(self.label_names):
            path = require_file(Path(self.data_dir) / self.domain / f"{name}.review",
                                f"Amazon {self.domain}")
            blocks = _REVIEW.findall(path.read_text(encoding="utf-8", errors="replace"))
            if not blocks:
                raise DataSourceError(f"{path}: no <review> blocks found")
            for block in blocks:
                text = f"{_field(block, 'title')}. {_field(block, 'review_text')}".strip(". ")
                out.append((text[: self.max_chars] if self.max_chars else text, label))
        return out

    def _load(self, split: str) -> list[Example]:
        reviews = self._reviews()
        if split == "all":
            chosen = list(range(len(reviews)))
        else:
            rng = random.Random(self.seed)
            chosen = []
            for label in (0, 1):
                ids = [i for i, (_, y) in enumerate(reviews) if y == label]
                rng.shuffle(ids)
                n_test, n_val = round(len(ids) * self.test_fraction), round(
                    len(ids) * self.val_fraction)
                part = {"test": ids[:n_test], "validation": ids[n_test:n_test + n_val],
                        "train": ids[n_test + n_val:]}[split]
                chosen += part
            chosen.sort()
        return [Example(reviews[i][0], None, None if self.unlabeled else reviews[i][1])
                for i in chosen]


# --- UD English EWT (CoNLL-U) -------------------------------------------------------------------
UPOS_TAGS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"]
EWT_GENRES = ("answers", "email", "newsgroup", "reviews", "weblog")


def read_conllu(path: Path, column: int) -> list[tuple[list[str], list[str]]]:
    """Sentences as (words, tags); multiword ranges (3-4) and empty nodes (3.1) are skipped."""
    sentences, words, tags = [], [], []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise DataSourceError(f"{path}, line {line_no}: expected 10 tab-separated "
                                      f"CoNLL-U columns, found {len(cols)}")
            if "-" in cols[0] or "." in cols[0]:
                continue
            words.append(cols[1])
            tags.append(cols[column])
    if words:
        sentences.append((words, tags))
    return sentences


class ConlluSource(Source):
    """POS tagging for one UD English EWT genre (``all`` = the five genres); dev = validation."""

    def __init__(self, genre: str, data_dir: str, tag_column: str = "upos"):
        root = Path(data_dir)
        if not root.is_dir():
            raise DataSourceError(f"UD EWT directory '{root}' not found (expected "
                                  "{train,dev,test}/<genre>.conllu); set task.source.data_dir")
        if genre not in (*EWT_GENRES, "all"):
            raise DataSourceError(f"EWT genre '{genre}' unknown; choose from {EWT_GENRES} or all")
        if tag_column not in ("upos", "xpos"):
            raise DataSourceError(f"task.source.tag_column='{tag_column}': use upos or xpos")
        self.genre, self.data_dir, self.tag_column = genre, str(root), tag_column
        self.kind = "token_classification"
        self.label_names = UPOS_TAGS if tag_column == "upos" else sorted(
            {t for _, tags in self._read("train") for t in tags})

    def _read(self, split: str) -> list[tuple[list[str], list[str]]]:
        folder = {"validation": "dev"}.get(split, split)
        genres = EWT_GENRES if self.genre == "all" else (self.genre,)
        out = []
        for genre in genres:
            path = require_file(Path(self.data_dir) / folder / f"{genre}.conllu",
                                f"UD EWT {split}")
            out += read_conllu(path, 3 if self.tag_column == "upos" else 4)
        return out

    def _load(self, split: str) -> list[Example]:
        index = {t: i for i, t in enumerate(self.label_names)}
        examples = []
        for n, (words, tags) in enumerate(self._read(split)):
            unknown = [t for t in tags if t not in index]
            if unknown:
                raise DataSourceError(f"UD EWT {split} sentence {n + 1}: tag {unknown[0]!r} is "
                                      f"not in the label set {self.label_names}")
            examples.append(Example(words, None, [index[t] for t in tags]))
        return examples


# --- local files --------------------------------------------------------------------------------
class LocalFileSource(Source):
    """Your own CSV / TSV / JSONL files with configurable text, pair and label columns."""

    def __init__(self, train: str, validation: str | None = None, test: str | None = None,
                 format: str | None = None, text_column: str = "text",
                 text_pair_column: str | None = None, label_column: str = "label",
                 label_names: list[str] | None = None, kind: str = "classification",
                 has_header: bool = True):
        if kind not in ("classification", "regression"):
            raise DataSourceError(f"task.kind='{kind}' is not supported for local files")
        self.paths = {s: p for s, p in (("train", train), ("validation", validation),
                                        ("test", test)) if p}
        for split, path in self.paths.items():
            require_file(Path(path), f"task.source.{split}")
        self.format, self.text_column, self.text_pair_column = format, text_column, text_pair_column
        self.label_column, self.kind, self.has_header = label_column, kind, has_header
        self.label_names = list(label_names) if label_names else None
        if self.kind == "classification" and self.label_names is None:
            self.label_names = sorted({str(r[label_column]) for _, r in self._rows("train")})
        self._splits = tuple(self.paths)

    def _rows(self, split: str):
        path = Path(self.paths[split])
        fmt = self.format or {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
                              ".json": "jsonl"}.get(path.suffix.lower())
        if fmt == "jsonl":
            rows = read_jsonl(path)
        elif fmt in ("csv", "tsv"):
            rows = read_delimited(path, "," if fmt == "csv" else "\t", header=self.has_header)
        else:
            raise DataSourceError(f"{path}: cannot infer the format; set task.source.format")
        wanted = [c for c in (self.text_column, self.text_pair_column, self.label_column) if c]
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
            raw = row[self.label_column]
            if self.kind == "regression":
                try:
                    label = float(raw)
                except (TypeError, ValueError) as err:
                    raise DataSourceError(f"{where}: label {raw!r} is not a number") from err
            else:
                label = parse_label(str(raw), self.label_names, where)
            pair = row[self.text_pair_column] if self.text_pair_column else None
            out.append(Example(str(row[self.text_column]), pair, label))
        return out
