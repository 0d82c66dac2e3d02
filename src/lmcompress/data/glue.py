"""GLUE tasks from local GLUE-format TSVs (``../shared/data/glue`` layout) or the datasets hub."""

from __future__ import annotations

from pathlib import Path

from lmcompress.data.base import PLACEHOLDER_LABELS, DataSourceError, Example, Source
from lmcompress.data.readers import LabelReader, check_encoding, read_delimited, require_file
from lmcompress.models.hub import hub_offline_reason

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
    # CoLA's GLUE dev set is both halves (1,043); each half is also a split of its own
    "cola": {"kind": "classification", "labels": ["unacceptable", "acceptable"], "dir": "CoLA",
             "text": ("x", None), "label": "y",
             "files": {"train": ["train.tsv"],
                       "validation": ["dev_in_domain.tsv", "dev_out_of_domain.tsv"],
                       "validation_in_domain": ["dev_in_domain.tsv"],
                       "validation_out_of_domain": ["dev_out_of_domain.tsv"]}},
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
    datasets hub (needs a network). ``hub_id`` is what ``datasets.load_dataset`` is given with
    the task as its config name: the hub's ``glue``, or a local folder in the hub's layout
    (``<folder>/<task>/<split>-*.parquet`` and a README declaring the configs), read offline.

    ``variant="sentence_level"`` (SST-2 only) reads ``SST-2/sentence_level`` (labelled test set).
    Label-less rows (GLUE test files: label -1, or no label column) become ``label=None``.
    ``encoding`` is the TSVs' text encoding (``task.source.encoding``).
    """

    def __init__(self, task: str, data_dir: str | None = None, variant: str = "default",
                 cache_dir: str | None = None, encoding: str = "utf-8", hub_id: str = "glue"):
        if task not in GLUE_TASKS:
            raise DataSourceError(f"unknown GLUE task '{task}'; choose from {sorted(GLUE_TASKS)}")
        if variant not in ("default", "alps", "sentence_level") or (
                variant == "sentence_level" and task != "sst2"):
            raise DataSourceError(f"task.source.variant='{variant}' is not valid for {task}")
        self.task, self.data_dir, self.variant, self.cache_dir = task, data_dir, variant, cache_dir
        self.hub_id = hub_id
        self.meta = GLUE_TASKS[task]
        self.kind, self.label_names = self.meta["kind"], self.meta["labels"]
        self.encoding, self.labels = check_encoding(encoding), LabelReader(self.label_names)
        self.has_pairs = variant != "sentence_level" and self.meta["text"][1] is not None
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
        for line, row in read_delimited(path, "\t", encoding=self.encoding):
            missing = [c for c in (text_col, pair_col) if c and c not in row]
            if missing:
                raise DataSourceError(f"{path}: missing column(s) {missing}; found {list(row)}")
            where = f"{path}, line {line}"
            label = self._label(row[label_col], where) if label_col in row else None
            out.append(Example(row[text_col], row[pair_col] if pair_col else None, label, where))
        return out

    def _read_sts_original(self, path: Path) -> list[Example]:
        """STS-benchmark original test file: no header, score in column 5, sentences 6 and 7."""
        out = []
        for line, row in read_delimited(path, "\t", header=False, encoding=self.encoding):
            if len(row) < 7:
                raise DataSourceError(f"{path}, line {line}: expected >= 7 columns")
            where = f"{path}, line {line}"
            out.append(Example(row[5], row[6], self._label(row[4], where), where))
        return out

    def _label(self, raw: str, where: str) -> int | float | None:
        raw = raw.strip()
        if raw in PLACEHOLDER_LABELS:
            return None
        if self.kind == "regression":
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not 0.0 <= value <= 5.0:
                raise DataSourceError(f"{where}: similarity score {raw!r} outside [0, 5]")
            return value
        return self.labels(raw, where)

    def _load_hub(self, split: str) -> list[Example]:
        local = Path(self.hub_id).expanduser().is_dir()  # a hub-format folder needs no network
        reason = None if local else hub_offline_reason(extra_vars=("HF_DATASETS_OFFLINE",))
        if reason is not None:
            raise DataSourceError(
                f"GLUE {self.task}: task.source.data_dir is null (download from the datasets hub) "
                f"but this machine is offline ({reason}); set task.source.data_dir to a local "
                "GLUE directory")
        import datasets

        hub_split = HUB_SPLITS.get(self.task, {}).get(split, split)
        rows = datasets.load_dataset(self.hub_id, self.task, split=hub_split,
                                     cache_dir=self.cache_dir)
        t1, t2 = {"sst2": ("sentence", None), "cola": ("sentence", None),
                  "qqp": ("question1", "question2"), "qnli": ("question", "sentence"),
                  "mnli": ("premise", "hypothesis")}.get(self.task, ("sentence1", "sentence2"))
        return [Example(r[t1], r[t2] if t2 else None, None if r["label"] == -1 else r["label"],
                        f"hub {self.hub_id}/{self.task} {hub_split} row {i}")
                for i, r in enumerate(rows)]
