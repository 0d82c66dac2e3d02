"""One LightningDataModule for every task: a Source gives raw examples, this tokenises and batches.

Tokenisation uses the teacher's tokenizer (the student shares it, so relation losses see the
same token positions), unless ``student_tokenizer`` names another one: then the model inputs are
the student's tokens, the teacher gets its own ``teacher_*`` columns, and both sides carry
token -> word indices (distillation across tokenizers, docs/ckd.md §12). Batches are padded
dynamically to their longest member (or to ``max_length`` with ``pad_to_max_length``, the
official CKD setting). ``batch_size`` is the *global* batch: each of the ``W`` processes
loads ``batch_size // W`` examples, so one optimizer step always sees ``batch_size`` examples
(16 global / 2 processes = 8 per device; steps per epoch = ceil(ceil(N / W) / (batch_size / W))).

Labels, per split (docs/data.md): train, validation and ``report_splits`` must be labelled
(an unlabelled example is refused at load time, naming its file and line); the test split is
either fully labelled (scored) or fully label-less (predictions only). Extra named *streams*
serve more data next to train/dev/test, e.g. an unlabelled target domain: a stream declared
``labels: false`` never carries labels, and :meth:`require_labels` refuses it to a loss that
needs them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader
from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

from lmcompress.data.augment import augment_training_split
from lmcompress.data.base import Example, Source
from lmcompress.data.features import tokenize
from lmcompress.data.labels import (
    check_task_matches_source,
    require_all_labelled,
    scored_test_split,
)
from lmcompress.data.loader import ResumableDataLoader, ordered_loader, per_device, shuffled_loader
from lmcompress.data.subsets import check_limit, limited, shuffled_labels
from lmcompress.data.words import TwoTokenizerCollator, check_two_tokenizers, load_tokenizers
from lmcompress.specs import TaskSpec
from lmcompress.utils.instantiate import instantiate_plain

log = logging.getLogger(__name__)


@dataclass
class Stream:
    """A named extra stream: a split of a source, served with or without labels."""

    source: Source
    split: str
    labels: bool = False


class TextDataModule(pl.LightningDataModule):
    """Tokenise a :class:`~lmcompress.data.base.Source` and serve padded batches.

    Args:
        source: the raw-example provider (instantiated from ``task.source``).
        tokenizer: model reference whose tokenizer is used (the teacher's).
        student_tokenizer: the student's own tokenizer, for distillation across tokenizers
            (docs/ckd.md §12); null, or one identical to ``tokenizer``'s: one for both.
        max_length: truncation length in tokens.
        batch_size: global batch size (divided by the number of processes).
        eval_batch_size: global batch size for evaluation (default: ``batch_size``).
        num_workers: DataLoader workers (None: 0 on the CPU, up to 4 per CUDA process).
        cache_dir: where tokenised splits are cached (``None`` disables the cache).
        train_limit: keep only ``train_limit`` training examples (quick runs).
        eval_limit: likewise for every other split and stream.
        limit_sample: false: a limit keeps the first examples of the split; true: a seeded
            random subset (``seed``), in the split's order. A limit that leaves a labelled
            split with one class when the whole split has more is refused (some sources
            order their splits by label).
        val_split: the split used for model selection.
        test_split: the split evaluated at the end (``None`` to skip testing).
        report_splits: further labelled splits scored at the end.
        pad_to_max_length: pad every batch to ``max_length`` (official CKD reproduction).
        streams: ``{name: {source: <_target_ config or null = the task's>, split, labels}}``.
        seed: seed of the training shuffle's own generator, so the batch order depends on the
            seed alone, not on how many random numbers model construction drew before.
        shuffle_train_labels: a control experiment: permute the training labels (seeded), so a
            model can only learn the label frequencies; dev and test stay intact.
        augment: word-replacement copies of the training examples (``data/augment.py``:
            ``AugmentSpec``'s fields and ``model``); ``n_copies: 0`` or null: none. Applied after
            ``train_limit``; dev and test stay intact.
    """

    def __init__(self, source: Source, tokenizer: str, max_length: int = 128,
                 batch_size: int = 32, eval_batch_size: int | None = None,
                 num_workers: int | None = None,
                 cache_dir: str | None = None, train_limit: int | None = None,
                 eval_limit: int | None = None, val_split: str = "validation",
                 test_split: str | None = "test", report_splits: list[str] | None = None,
                 pad_to_max_length: bool = False, streams: dict[str, Any] | None = None,
                 seed: int | None = None, shuffle_train_labels: bool = False,
                 limit_sample: bool = False, student_tokenizer: str | None = None,
                 augment: dict[str, Any] | None = None):
        super().__init__()
        if batch_size < 1 or max_length < 8:
            raise ValueError(f"data.batch_size={batch_size}, data.max_length={max_length}")
        for key, limit in (("train_limit", train_limit), ("eval_limit", eval_limit)):
            check_limit(f"data.{key}", limit)
        self.source, self.tokenizer_ref = source, tokenizer
        self.student_tokenizer_ref = student_tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.cache_dir = num_workers, cache_dir
        self.train_limit, self.eval_limit = train_limit, eval_limit
        self.limit_sample = limit_sample
        self.val_split, self.test_split = val_split, test_split
        self.report_splits = list(report_splits or [])
        self.pad_to_max_length, self.seed = pad_to_max_length, seed
        self.shuffle_train_labels = shuffle_train_labels
        self.augment = dict(augment) if augment and augment.get("n_copies", 20) else None
        self.augmented: dict[str, Any] | None = None
        self.streams = {name: self._stream(name, spec) for name, spec in (streams or {}).items()}
        self.test_labeled = True
        self._tokenizer = self._teacher_tokenizer = None
        self._raw: dict[str, list[Example]] = {}
        self.datasets: dict[str, Any] = {}

    def _stream(self, name: str, spec: Any) -> Stream:
        if isinstance(spec, Stream):
            return spec
        spec = dict(spec)
        source = spec.pop("source", None)
        unknown = sorted(set(spec) - {"split", "labels"})
        if unknown or "split" not in spec:
            raise ValueError(f"data.streams.{name}: needs 'split' (and optionally 'source', "
                             f"'labels'); unknown {unknown}")
        built = self.source if source is None else (
            instantiate_plain(source) if isinstance(source, dict) else source)
        return Stream(built, spec["split"], bool(spec.get("labels", False)))

    # -- checks before any model is built -------------------------------------------------------
    @property
    def tokenizer(self):
        """The tokenizer of the trained model's inputs (loaded on first use; exported with it)."""
        if self._tokenizer is None:
            self._tokenizer, self._teacher_tokenizer = load_tokenizers(
                self.tokenizer_ref, self.student_tokenizer_ref)
        return self._tokenizer

    @property
    def teacher_tokenizer(self):
        """The teacher's own tokenizer when the student has another one, else None."""
        _ = self.tokenizer
        return self._teacher_tokenizer

    def validate(self, task: TaskSpec | None = None) -> dict[str, int]:
        """Load every split and stream this run needs, so bad data fails before training."""
        if task is not None:
            check_task_matches_source(task, self.source)
        if self.student_tokenizer_ref is not None and self.teacher_tokenizer is not None:
            check_two_tokenizers({self.source.kind, *(v.source.kind for v in
                                                     self.streams.values())},
                                 (self.tokenizer, self.student_tokenizer_ref),
                                 (self.teacher_tokenizer, self.tokenizer_ref))
        labelled = ["train", self.val_split, *self.report_splits]
        needed = labelled + ([self.test_split] if self.test_split else [])
        missing = [s for s in needed if s not in self.source.splits()]
        if missing:
            raise ValueError(f"task source {type(self.source).__name__} has no split(s) "
                             f"{missing}; available: {self.source.splits()} (set "
                             "data.val_split / task.test_split / task.report_splits)")
        sizes = {split: len(self._examples(split)) for split in needed}
        for split in labelled:
            require_all_labelled(self._examples(split), split)
        if self.test_split:
            self.test_labeled = scored_test_split(self._examples(self.test_split), self.test_split)
        for name, stream in self.streams.items():
            sizes[name] = len(self._examples(name))
            if stream.labels:
                require_all_labelled(self._examples(name), f"stream {name}")
        if self.augmented is not None:
            sizes["augment"] = self.augmented
        return sizes

    def train_size(self) -> int:
        """Number of training examples (after ``train_limit``)."""
        return len(self._examples("train"))

    def require_labels(self, name: str, by: str) -> None:
        """Refuse an unlabelled stream to a consumer (a loss term) that needs gold labels."""
        if name in self.streams and not self.streams[name].labels:
            raise ValueError(f"data stream '{name}' has no labels (labels: false), but {by} "
                             "needs them")

    # -- Lightning hooks ------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Tokenise (or load from cache) the splits needed by ``stage``."""
        needed = {"fit": ["train", self.val_split], "validate": [self.val_split],
                  "test": [self.test_split] if self.test_split else []}.get(
            stage or "", ["train", self.val_split] + ([self.test_split] if self.test_split
                                                       else []))
        for split in needed:
            self.features(split)

    def features(self, name: str):
        """The tokenised split or stream ``name`` (cached in memory and on disk)."""
        if name not in self.datasets:
            stream = self.streams.get(name)
            kind = (stream.source if stream else self.source).kind
            labels = stream.labels if stream else (name != self.test_split or self.test_labeled)
            self.datasets[name] = tokenize(self._examples(name), self.tokenizer, self.max_length,
                                           kind, labels, self.cache_dir, name,
                                           self.teacher_tokenizer)
        return self.datasets[name]

    def train_dataloader(self) -> ResumableDataLoader:
        # stateful: a checkpoint records the position in the epoch, so resume is exact
        return shuffled_loader(self.features("train"), self.batch_size, self.trainer, self.seed,
                               self.num_workers, self.collator("train"))

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader(self.val_split)

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader(self.test_split)

    def eval_dataloader(self, name: str, batch_size: int | None = None,
                        shard: bool = True) -> DataLoader:
        """Evaluation loader of a split or stream: in order, each example once across ranks.

        ``shard=False``: the whole split on this process in global-size batches, the same
        batches on every rank and in a single-process run (DynaBERT's importance).
        """
        return ordered_loader(self.features(name), batch_size or self.eval_batch_size,
                              self.trainer, self.num_workers, self.collator(name), shard)

    def collator(self, name: str):
        """Transformers' padding collator (token labels padded with -100 for tagging)."""
        stream = self.streams.get(name)
        kind = (stream.source if stream else self.source).kind
        padding = "max_length" if self.pad_to_max_length else "longest"
        if self.teacher_tokenizer is not None:
            return TwoTokenizerCollator(self.tokenizer, self.teacher_tokenizer, padding,
                                        self.max_length)
        if kind == "token_classification":
            return DataCollatorForTokenClassification(self.tokenizer, padding=padding,
                                                      max_length=self.max_length)
        return DataCollatorWithPadding(self.tokenizer, padding=padding,
                                       max_length=self.max_length)

    # -- internals ------------------------------------------------------------------------------
    def _per_device(self, global_batch: int) -> int:
        return per_device(global_batch, self.trainer)

    def _examples(self, name: str) -> list[Example]:
        if name not in self._raw:
            stream = self.streams.get(name)
            examples = (stream.source.load(stream.split) if stream else self.source.load(name))
            key = "train_limit" if name == "train" else "eval_limit"
            limit = self.train_limit if name == "train" else self.eval_limit
            if limit is not None and limit < len(examples):
                examples = limited(examples, limit, self.limit_sample, self.seed or 0,
                                    f"data.{key}={limit}", name)
            if name == "train" and self.augment is not None:
                examples, self.augmented = augment_training_split(
                    examples, self.augment, self.tokenizer, self.tokenizer_ref, self.cache_dir,
                    self.source.kind)
                log.info("data.augment: %d training examples -> %d (cache %s)",
                         self.augmented["original"], len(examples), self.augmented["cache"])
            if name == "train" and self.shuffle_train_labels:
                examples = shuffled_labels(examples, self.seed or 0)
            self._raw[name] = examples
        return self._raw[name]
