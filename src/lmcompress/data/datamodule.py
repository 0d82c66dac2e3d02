"""One LightningDataModule for every task: a Source gives raw examples, this tokenises and batches.

Tokenisation always uses the teacher's tokenizer (the student shares it, so relation losses see the
same token positions). Tokenised splits are cached on disk, keyed by the source config, the
tokenizer's vocabulary and the maximum length. Batches are padded dynamically to their longest
member. ``batch_size`` is the *global* batch: each of the ``W`` processes loads
``batch_size // W`` examples, so one optimizer step always sees ``batch_size`` examples
(16 global / 2 processes = 8 per device; steps per epoch = ceil(ceil(N / W) / (batch_size / W))).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lmcompress.data.sources import Example, Source
from lmcompress.models.hf import load_tokenizer

log = logging.getLogger(__name__)
IGNORE_INDEX = -100


def _public_args(obj: Any) -> dict[str, str]:
    """The simple public attributes of a source: what identifies its data for the cache key."""
    simple = (str, int, float, bool, type(None))
    return {
        k: repr(v)
        for k, v in sorted(vars(obj).items())
        if not k.startswith("_")
        and (isinstance(v, simple) or (isinstance(v, list | tuple) and all(
            isinstance(x, simple) for x in v)))
    }


class EvalDistributedSampler(DistributedSampler):
    """Rank r of W reads examples r, r + W, r + 2W, ... once each: no padding, no repeats.

    Lightning's default ``DistributedSampler`` pads every rank to ``ceil(N / W)`` examples by
    repeating some, so DDP dev/test metrics would count ``W·ceil(N / W) - N`` examples twice.
    Metric states are summed across ranks, so uneven shards give the exact single-process value.
    Lightning keeps a ``DistributedSampler`` it finds in place instead of wrapping it again.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))
        self.total_size = len(dataset)

    def __iter__(self):
        return iter(range(self.rank, self.total_size, self.num_replicas))


class TokenizedDataset(Dataset):
    """A list of feature dicts (python lists of ints) held in memory."""

    def __init__(self, features: list[dict[str, Any]]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.features[idx]


def pad_collate(batch: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of features to the longest sequence in the batch (dynamic padding)."""
    longest = max(len(f["input_ids"]) for f in batch)
    out: dict[str, torch.Tensor] = {}
    for key in batch[0]:
        if key == "labels" and not isinstance(batch[0]["labels"], list):
            dtype = torch.float if isinstance(batch[0]["labels"], float) else torch.long
            out[key] = torch.tensor([f[key] for f in batch], dtype=dtype)
            continue
        if key == "index":
            out[key] = torch.tensor([f[key] for f in batch], dtype=torch.long)
            continue
        fill = {"input_ids": pad_token_id, "labels": IGNORE_INDEX}.get(key, 0)
        out[key] = torch.tensor(
            [f[key] + [fill] * (longest - len(f[key])) for f in batch], dtype=torch.long
        )
    return out


class TextDataModule(pl.LightningDataModule):
    """Tokenise a :class:`~lmcompress.data.sources.Source` and serve dynamic-padded batches.

    Args:
        source: the raw-example provider (instantiated from ``task.source``).
        tokenizer: model reference whose tokenizer is used (the teacher's).
        max_length: truncation length in tokens.
        batch_size: global batch size (divided by the number of processes).
        eval_batch_size: global batch size for validation/test (default: ``batch_size``).
        num_workers: DataLoader workers.
        cache_dir: where tokenised splits are cached (``None`` disables the cache).
        train_limit: keep only the first ``train_limit`` training examples (quick runs).
        eval_limit: likewise for validation and test.
        val_split: the split used for model selection.
        test_split: the split evaluated at the end (``None`` to skip testing).
    """

    def __init__(
        self,
        source: Source,
        tokenizer: str,
        max_length: int = 128,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        cache_dir: str | None = None,
        train_limit: int | None = None,
        eval_limit: int | None = None,
        val_split: str = "validation",
        test_split: str | None = "test",
    ):
        super().__init__()
        if batch_size < 1 or max_length < 8:
            raise ValueError(f"data.batch_size={batch_size}, data.max_length={max_length}")
        self.source = source
        self.tokenizer_ref = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.train_limit = train_limit
        self.eval_limit = eval_limit
        self.val_split = val_split
        self.test_split = test_split
        self._tokenizer = None
        self._raw: dict[str, list[Example]] = {}  # loaded once: validate() then tokenisation
        self.datasets: dict[str, TokenizedDataset] = {}

    # -- public helpers -------------------------------------------------------------------------
    @property
    def tokenizer(self):
        """The tokenizer (loaded on first use)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_ref)
        return self._tokenizer

    def validate(self) -> dict[str, int]:
        """Load every split this run needs (raw), so bad data fails before training starts."""
        needed = ["train", self.val_split] + ([self.test_split] if self.test_split else [])
        available = self.source.splits()
        missing = [s for s in needed if s not in available]
        if missing:
            raise ValueError(
                f"task source {type(self.source).__name__} has no split(s) {missing}; "
                f"available: {available} (set data.val_split / data.test_split)"
            )
        return {split: len(self._examples(split)) for split in needed}

    # -- Lightning hooks ------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Tokenise (or load from cache) the splits needed by ``stage``."""
        splits = {"fit": ["train", self.val_split], "validate": [self.val_split]}.get(
            stage or "", ["train", self.val_split] + ([self.test_split] if self.test_split else [])
        )
        if stage == "test":
            splits = [self.test_split] if self.test_split else []
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = TokenizedDataset(self._features(split))

    def per_device_batch_size(self, global_batch: int) -> int:
        """``global_batch`` divided across the trainer's processes (must divide evenly)."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if global_batch % world:
            raise ValueError(
                f"data.batch_size={global_batch} is not divisible by the {world} processes"
            )
        return global_batch // world

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.per_device_batch_size(self.batch_size), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_split, self.per_device_batch_size(self.eval_batch_size))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, self.per_device_batch_size(self.eval_batch_size))

    # -- internals ------------------------------------------------------------------------------
    def _loader(self, split: str, batch_size: int, shuffle: bool = False) -> DataLoader:
        pad_id = self.tokenizer.pad_token_id or 0
        dataset, sampler = self.datasets[split], None
        world = self.trainer.world_size if self.trainer is not None else 1
        if not shuffle and world > 1:  # evaluation: every example exactly once across ranks
            sampler = EvalDistributedSampler(dataset, world, self.trainer.global_rank)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=functools.partial(pad_collate, pad_token_id=pad_id),
            persistent_workers=self.num_workers > 0,
        )

    def _examples(self, split: str) -> list[Example]:
        if split not in self._raw:
            examples = self.source.load(split)
            limit = self.train_limit if split == "train" else self.eval_limit
            self._raw[split] = examples[:limit] if limit else examples
        return self._raw[split]

    def _cache_path(self, split: str) -> Path | None:
        if not self.cache_dir:
            return None
        key = json.dumps(
            {
                "source": _public_args(self.source),
                "source_type": type(self.source).__qualname__,
                # the data itself: a file edited in place must not be served from a stale cache
                "examples": hashlib.sha256(repr(self._examples(split)).encode()).hexdigest(),
                "vocab": hashlib.sha256(
                    json.dumps(sorted(self.tokenizer.get_vocab().items())).encode()
                ).hexdigest(),
                "max_length": self.max_length,
                "limit": self.train_limit if split == "train" else self.eval_limit,
                "split": split,
                "version": 2,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return Path(self.cache_dir) / f"{type(self.source).__name__}_{split}_{digest}.pt"

    def _features(self, split: str) -> list[dict[str, Any]]:
        path = self._cache_path(split)
        if path is not None and path.is_file():
            return torch.load(path, weights_only=False)
        features = self._tokenize(self._examples(split))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(features, tmp)
            os.replace(tmp, path)  # atomic: concurrent jobs never read half a file
        log.info("tokenised %s: %d examples", split, len(features))
        return features

    def _tokenize(self, examples: list[Example]) -> list[dict[str, Any]]:
        if not examples:
            return []
        if self.source.kind == "token_classification":
            return [self._tokenize_words(i, ex) for i, ex in enumerate(examples)]
        texts = [ex.text for ex in examples]
        pairs = [ex.text_pair for ex in examples]
        enc = self.tokenizer(
            texts,
            pairs if any(p is not None for p in pairs) else None,
            truncation=True,
            max_length=self.max_length,
        )
        features = []
        for i, ex in enumerate(examples):
            feat = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")
                    if k in enc}
            feat["index"] = i
            if ex.label is not None:
                feat["labels"] = float(ex.label) if self.source.kind == "regression" else int(
                    ex.label
                )
            features.append(feat)
        return features

    def _tokenize_words(self, index: int, ex: Example) -> dict[str, Any]:
        """First-sub-token labelling: later word pieces and special tokens get IGNORE_INDEX."""
        enc = self.tokenizer(ex.text, is_split_into_words=True, truncation=True,
                             max_length=self.max_length)
        feat = {k: list(enc[k]) for k in ("input_ids", "attention_mask", "token_type_ids")
                if k in enc}
        feat["index"] = index
        if ex.label is not None:
            labels, previous = [], None
            for word_id in enc.word_ids():
                first = word_id is not None and word_id != previous
                labels.append(ex.label[word_id] if first else IGNORE_INDEX)
                previous = word_id
            feat["labels"] = labels
        return feat
