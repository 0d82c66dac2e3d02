"""The data module of the ``general`` stage: packed corpus blocks, no labels anywhere.

The corpus (``data/corpus.py``) is packed once into memory-mapped blocks; the last
``val_blocks`` blocks are held out to score the relation loss on (they select the checkpoint),
the rest train in a seeded order that a checkpoint records mid-epoch (the same resumable loader
as every other stage, docs/launch.md). With ``mlm_probability > 0`` the collator masks tokens
BERT-style (80 % mask token, 10 % random token, 10 % kept) for the ``mlm`` term and puts the
original ids in ``mlm_labels``; teacher and student then both read the masked text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import DataCollatorWithPadding

from lmcompress.data.corpus import CorpusSource, PackedCorpus, pack
from lmcompress.data.loader import ResumableDataLoader, ordered_loader, shuffled_loader
from lmcompress.data.subsets import check_limit
from lmcompress.labels import IGNORE_INDEX
from lmcompress.models.hub import load_tokenizer
from lmcompress.specs import TaskSpec

log = logging.getLogger(__name__)


class Blocks(Dataset):
    """Rows ``rows`` of a packed corpus, as ``input_ids`` tensors (read on access)."""

    def __init__(self, corpus: PackedCorpus, rows: Sequence[int]):
        self.corpus, self.rows = corpus, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.rows[i])
        length = int(self.corpus.lengths[row])
        return {"input_ids": torch.from_numpy(self.corpus.ids[row, :length].astype("int64"))}


class CorpusDataModule(pl.LightningDataModule):
    """Serve a :class:`~lmcompress.data.corpus.CorpusSource` as packed, padded blocks.

    Args:
        source: the corpus (``task.source``).
        tokenizer: the teacher's tokenizer reference.
        max_length: block length in tokens.
        batch_size: global batch size (divided by the number of processes).
        eval_batch_size: global batch size of the held-out blocks.
        val_blocks: blocks held out for validation (taken from the end of the corpus).
        train_limit: train on ``train_limit`` blocks only (quick runs): the first ones, or a
            seeded random sample with ``limit_sample``.
        eval_limit: hold out at most this many blocks (caps ``val_blocks``; quick runs).
        limit_sample: see ``train_limit``.
        mlm_probability: fraction of tokens masked for the ``mlm`` term (0: no masking).
        num_workers: DataLoader workers (None: 0 on the CPU, up to 4 per CUDA process).
        cache_dir: where the packed corpus is cached (``None``: rebuilt in a temporary file).
        seed: the training order's own generator.
    """

    def __init__(self, source: CorpusSource, tokenizer: str, max_length: int = 128,
                 batch_size: int = 32, eval_batch_size: int | None = None,
                 val_blocks: int = 64, train_limit: int | None = None,
                 eval_limit: int | None = None, limit_sample: bool = False,
                 mlm_probability: float = 0.0, num_workers: int | None = None,
                 cache_dir: str | None = None, seed: int | None = None):
        super().__init__()
        if not isinstance(source, CorpusSource):
            raise TypeError(f"task.source is a {type(source).__name__}; the general stage "
                            "needs a corpus (task=corpus/..., lmcompress.data.corpus."
                            "CorpusSource)")
        if batch_size < 1 or max_length < 8:
            raise ValueError(f"data.batch_size={batch_size}, data.max_length={max_length}")
        check_limit("data.val_blocks", val_blocks)
        check_limit("data.train_limit", train_limit)
        check_limit("data.eval_limit", eval_limit)
        if eval_limit is not None:
            val_blocks = min(val_blocks, eval_limit)
        if not 0.0 <= mlm_probability < 1.0:
            raise ValueError(f"data.mlm_probability={mlm_probability}: in [0, 1)")
        self.source, self.tokenizer_ref = source, tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_blocks, self.train_limit = val_blocks, train_limit
        self.limit_sample = limit_sample
        self.mlm_probability, self.num_workers = mlm_probability, num_workers
        self.cache_dir, self.seed = cache_dir, seed
        self.test_split, self.test_labeled, self.report_splits = None, False, []
        self._tokenizer = None
        self.corpus: PackedCorpus | None = None

    @property
    def tokenizer(self):
        """The tokenizer (loaded on first use)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.tokenizer_ref)
        return self._tokenizer

    def validate(self, task: TaskSpec | None = None) -> dict[str, Any]:
        """Pack the corpus (or open its cache) and refuse one too small to hold out."""
        if task is not None and task.kind != "corpus":
            raise ValueError(f"task.kind={task.kind!r}: data=corpus serves unlabelled text to "
                             "the general stage only")
        if self.corpus is None:
            self.corpus = pack(self.source, self.tokenizer, self.max_length, self.cache_dir)
        blocks = len(self.corpus.lengths)
        if blocks <= self.val_blocks:
            raise ValueError(f"the corpus packs into {blocks} blocks of {self.max_length} "
                             f"tokens, not more than data.val_blocks={self.val_blocks}: add "
                             "text or lower data.val_blocks")
        log.info("corpus: %s", self.corpus.report)
        return {"train": self.train_size(), "validation": self.val_blocks,
                "corpus": self.corpus.report}

    def train_size(self) -> int:
        """Training blocks (after ``train_limit``)."""
        return len(self.train_rows())

    def train_rows(self) -> np.ndarray:
        """Indices of the training blocks: all but the held-out end, or the limited subset."""
        total = len(self.corpus.lengths) - self.val_blocks
        if not self.train_limit or self.train_limit >= total:
            return np.arange(total)
        if not self.limit_sample:
            return np.arange(self.train_limit)
        rng = np.random.default_rng(self.seed or 0)
        return np.sort(rng.choice(total, self.train_limit, replace=False))

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:
            self.validate()

    def train_dataloader(self) -> ResumableDataLoader:
        return shuffled_loader(Blocks(self.corpus, self.train_rows()), self.batch_size,
                               self.trainer, self.seed, self.num_workers, self.collate)

    def val_dataloader(self) -> DataLoader:
        total = len(self.corpus.lengths)
        # a fixed generator: the held-out masks are the same at every validation
        return ordered_loader(Blocks(self.corpus, np.arange(total - self.val_blocks, total)),
                              self.eval_batch_size, self.trainer, self.num_workers,
                              lambda rows: self.collate(rows, torch.Generator().manual_seed(0)))

    def collate(self, rows: list[dict[str, torch.Tensor]],
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Pad to the longest block; mask for MLM when ``mlm_probability > 0``."""
        batch = dict(self._pad(rows))
        if self.mlm_probability > 0:
            batch.update(mask_tokens(batch["input_ids"], batch["attention_mask"], self.tokenizer,
                                     self.mlm_probability, generator))
        return batch

    @property
    def _pad(self) -> DataCollatorWithPadding:
        return DataCollatorWithPadding(self.tokenizer, padding="longest")


def mask_tokens(ids: torch.Tensor, attention: torch.Tensor, tokenizer: Any, probability: float,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """BERT masking of non-special tokens: ``{input_ids: masked, mlm_labels: originals}``."""
    special = torch.tensor([[tok in tokenizer.all_special_ids for tok in row]
                            for row in ids.tolist()], dtype=torch.bool)
    candidates = attention.bool() & ~special
    draw = torch.rand(ids.shape, generator=generator)
    chosen = candidates & (draw < probability)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    how = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen & (how < 0.8)] = tokenizer.mask_token_id
    randomised = chosen & (how >= 0.8) & (how < 0.9)
    masked[randomised] = torch.randint(len(tokenizer), ids.shape, generator=generator)[randomised]
    return {"input_ids": masked, "mlm_labels": labels}
