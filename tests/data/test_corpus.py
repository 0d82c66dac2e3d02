"""The general stage's corpus: lazy reading, exclusion of evaluation text, packing, the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmcompress.data.base import Example, Source
from lmcompress.data.corpus import CorpusSource, normalise, pack
from lmcompress.data.corpus_module import CorpusDataModule, mask_tokens
from lmcompress.labels import IGNORE_INDEX
from lmcompress.models.hub import load_tokenizer

TEXTS = ["The film was a delight from start to finish.",
         "A dull, overlong mess.",
         "Service was slow but the food made up for it.",
         "  THE   film was a DELIGHT from start to finish. ",  # an evaluation sentence, respaced
         "A dull, overlong mess.",                            # an exact duplicate
         "word " * 300]                                       # longer than any block


class EvalSource(Source):
    """Two evaluation sentences in a dev split."""

    def _load(self, split: str) -> list[Example]:
        return [Example("the film was a delight from start to finish."),
                Example("Nothing in this corpus.", "A pair text that is not in it either.")]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("embedded:minilm-l6")


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return path


def test_evaluation_text_and_duplicates_are_dropped_and_counted(tokenizer, corpus_file, tmp_path):
    source = CorpusSource(files=[str(corpus_file)],
                          exclude=[{"source": EvalSource(), "splits": ["validation"]}])
    packed = pack(source, tokenizer, 32, tmp_path / "cache")
    report = packed.report
    assert report["texts_read"] == 6 and report["excluded"] == [2] and report["duplicates"] == 1
    assert report["texts_kept"] == 3 and report["exclude_texts"] == 3
    ids = [int(t) for row, n in zip(packed.ids, packed.lengths, strict=True) for t in row[:n]]
    text = tokenizer.decode(ids)
    assert "delight" not in text and "dull" in text and "service" in text


def test_blocks_hold_every_kept_token_in_order(tokenizer, corpus_file):
    source = CorpusSource(files=[str(corpus_file)], dedup=False)
    packed = pack(source, tokenizer, 16, None)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert (packed.lengths <= 16).all() and (packed.ids[:, 0] == cls).all()
    flat = []
    for row, n in zip(packed.ids, packed.lengths, strict=True):
        assert row[n - 1] == sep and not row[n:].any()  # closed, then zero padding
        flat += [int(t) for t in row[1:n] if t != sep]
    expected = [t for text in TEXTS for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    assert flat == expected  # nothing lost, nothing reordered (the 300-word text spans blocks)


def test_cache_is_memory_mapped_reused_and_rebuilt_when_the_file_changes(tokenizer, corpus_file,
                                                                       tmp_path):
    source = CorpusSource(files=[str(corpus_file)])
    first = pack(source, tokenizer, 32, tmp_path)
    assert isinstance(first.ids, np.memmap)
    again = pack(source, tokenizer, 32, tmp_path)
    assert again.report["cache"] == first.report["cache"]
    corpus_file.write_text(json.dumps({"text": "only one line now"}) + "\n")
    changed = pack(CorpusSource(files=[str(corpus_file)]), tokenizer, 32, tmp_path)
    assert changed.report["cache"] != first.report["cache"] and changed.report["blocks"] == 1


def test_a_failed_read_leaves_no_partial_corpus(tokenizer, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"text": 3}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: 'text' is int"):
        pack(CorpusSource(files=[str(bad)]), tokenizer, 32, tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


def test_local_dataset_folder_through_the_hub_path(tokenizer, tmp_path):
    folder = tmp_path / "wiki_like"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n"
                                                for t in TEXTS[:3]))
    source = CorpusSource(hf_datasets=[{"path": str(folder), "split": "train"}])
    assert list(source.texts()) == TEXTS[:3]


def test_training_order_is_seeded_and_blocks_are_held_out(tokenizer, corpus_file):
    def module(seed):
        dm = CorpusDataModule(CorpusSource(files=[str(corpus_file)], dedup=False),
                              "embedded:minilm-l6", max_length=8, batch_size=4, val_blocks=2,
                              seed=seed)
        dm.validate()
        return dm

    a, b, c = module(1), module(1), module(2)
    first = [next(iter(m.train_dataloader()))["input_ids"] for m in (a, b, c)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])
    assert a.train_size() == len(a.corpus.lengths) - 2
    held = next(iter(a.val_dataloader()))["input_ids"]
    last = torch.from_numpy(a.corpus.ids[-2:].astype("int64"))
    assert torch.equal(held, last[:, :held.shape[1]])


def test_too_small_a_corpus_is_refused_by_key(corpus_file):
    dm = CorpusDataModule(CorpusSource(files=[str(corpus_file)]), "embedded:minilm-l6",
                          max_length=128, val_blocks=64)
    with pytest.raises(ValueError, match="data.val_blocks=64"):
        dm.validate()


def test_masking_spares_special_tokens_and_padding(tokenizer):
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102, 0, 0]] * 64)
    attention = (ids != 0).long()
    out = mask_tokens(ids, attention, tokenizer, 0.5, torch.Generator().manual_seed(0))
    chosen = out["mlm_labels"] != IGNORE_INDEX
    assert chosen.any() and not chosen[:, [0, 5, 6, 7]].any()
    assert torch.equal(out["mlm_labels"][chosen], ids[chosen])
    assert (out["input_ids"][chosen] == tokenizer.mask_token_id).float().mean() > 0.6
    assert torch.equal(out["input_ids"][~chosen], ids[~chosen])


def test_normalise_compares_case_and_spacing_blind():
    assert normalise("  A\tDull,  mess ") == normalise("a dull, MESS")
