"""TextDataModule: cache that follows the data, collation, label alignment, labels per split,
extra streams, DDP evaluation that counts each example once."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DistributedSampler

from lmcompress.data.base import DataSourceError, Example, Source
from lmcompress.data.datamodule import TextDataModule, check_task_matches_source
from lmcompress.data.features import align_word_labels
from lmcompress.data.local import LocalFileSource
from lmcompress.data.synthetic import SyntheticSource
from lmcompress.specs import TaskSpec

TOKENIZER = "embedded:minilm-l6"


def _module(path, cache_dir, **kwargs) -> TextDataModule:
    source = LocalFileSource(train=str(path), validation=str(path), label_names=["neg", "pos"])
    return TextDataModule(source, tokenizer=TOKENIZER, cache_dir=str(cache_dir), test_split=None,
                          **kwargs)


def _labels(path, cache_dir) -> list[int]:
    dm = _module(path, cache_dir)
    dm.validate()
    dm.setup("fit")
    return list(dm.features("train")["labels"])


def test_cache_is_reused_and_invalidated_by_an_edited_file(tmp_path):
    data, cache = tmp_path / "train.csv", tmp_path / "cache"
    data.write_text("text,label\ngood movie,pos\nbad movie,neg\n")
    assert _labels(data, cache) == [1, 0]
    first = sorted(p.name for p in cache.glob("*.arrow"))
    assert len(first) == 2  # train and validation
    assert _labels(data, cache) == [1, 0]
    assert sorted(p.name for p in cache.glob("*.arrow")) == first  # reused, nothing new
    data.write_text("text,label\ngood movie,neg\nbad movie,neg\n")  # same path, new labels
    assert _labels(data, cache) == [0, 0]


def test_dynamic_padding_collates_to_the_longest_and_masks_padding(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text("text,label\nshort,pos\na much longer sentence than the first,neg\n")
    dm = _module(data, tmp_path / "cache", batch_size=2)
    dm.validate()
    batch = next(iter(dm.eval_dataloader("validation")))
    lengths = batch["attention_mask"].sum(1).tolist()
    assert batch["input_ids"].shape[1] == max(lengths) and lengths[0] < lengths[1]
    pad = dm.tokenizer.pad_token_id
    assert (batch["input_ids"][0, lengths[0]:] == pad).all()
    assert (batch["attention_mask"][0, lengths[0]:] == 0).all()
    assert batch["labels"].tolist() == [1, 0] and batch["index"].tolist() == [0, 1]
    fixed = _module(data, tmp_path / "cache", batch_size=2, max_length=24,
                    pad_to_max_length=True)
    fixed.validate()
    assert next(iter(fixed.eval_dataloader("validation")))["input_ids"].shape == (2, 24)


def test_first_sub_token_label_alignment():
    # word 0 -> one piece, word 1 -> three pieces, word 2 -> one piece; None = special tokens
    word_ids = [None, 0, 1, 1, 1, 2, None]
    assert align_word_labels(word_ids, [5, 7, 9]) == [-100, 5, 7, -100, -100, 9, -100]


class _Words(Source):
    kind, label_names = "token_classification", ["A", "B", "C"]

    def _load(self, split):
        return [Example(["unbelievably", "good", "x"], None, [0, 1, 2], f"{split} 1")]


def test_tagging_labels_sit_on_first_sub_tokens_in_batches():
    dm = TextDataModule(_Words(), tokenizer=TOKENIZER, test_split=None, cache_dir=None)
    dm.validate()
    batch = next(iter(dm.eval_dataloader("validation")))
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    words = dm.tokenizer.convert_ids_to_tokens(ids)
    labelled = [(w, y) for w, y in zip(words, labels, strict=True) if y != -100]
    assert [y for _, y in labelled] == [0, 1, 2]
    assert not labelled[0][0].startswith("##") and len(words) > 5  # 'unbelievably' splits


class _Gappy(Source):
    """validation has a placeholder label on line 3; test is label-less or mixed."""

    def __init__(self, test: str):
        self.label_names, self.test = ["neg", "pos"], test

    def _load(self, split):
        rows = [Example("good", None, 1, f"{split}.tsv, line 2"),
                Example("bad", None, None if split == "validation" else 0, f"{split}.tsv, line 3")]
        if split == "test":
            rows = [Example(e.text, None, None if self.test == "none" or i else e.label, e.where)
                    for i, e in enumerate(rows)]
        return rows


def test_labels_required_on_dev_and_a_label_less_test_split_is_prediction_only():
    with pytest.raises(DataSourceError, match=r"validation.tsv, line 3: no label"):
        TextDataModule(_Gappy("none"), tokenizer=TOKENIZER, cache_dir=None).validate()
    dm = TextDataModule(_Gappy("none"), tokenizer=TOKENIZER, cache_dir=None, val_split="train")
    dm.validate()
    assert dm.test_labeled is False and "labels" not in dm.features("test").column_names
    with pytest.raises(DataSourceError, match=r"test.tsv, line 3: no label, but 1 other"):
        TextDataModule(_Gappy("mixed"), tokenizer=TOKENIZER, cache_dir=None,
                       val_split="train").validate()


def test_unlabelled_stream_never_carries_labels_and_is_refused_to_a_labelled_loss():
    source = SyntheticSource(seed=0, n_train=8, n_validation=4, n_test=4)
    dm = TextDataModule(source, tokenizer=TOKENIZER, cache_dir=None,
                        streams={"target": {"split": "test", "labels": False},
                                 "target_scored": {"split": "test", "labels": True}})
    sizes = dm.validate()
    assert sizes["target"] == 4
    assert "labels" not in next(iter(dm.eval_dataloader("target")))
    assert "labels" in next(iter(dm.eval_dataloader("target_scored")))
    with pytest.raises(ValueError, match="stream 'target' has no labels.*loss term 'task'"):
        dm.require_labels("target", by="loss term 'task'")
    dm.require_labels("target_scored", by="loss term 'task'")


def test_task_config_must_agree_with_its_source():
    source = SyntheticSource(seed=0)
    task = dict(name="t", kind="classification", metrics=["accuracy"], main_metric="accuracy")
    with pytest.raises(ValueError, match="task.num_labels=3 but the data source has 2 labels"):
        check_task_matches_source(TaskSpec(**task, num_labels=3), source)
    with pytest.raises(ValueError, match="task.label_names=.*differ"):
        check_task_matches_source(TaskSpec(**task, num_labels=2, label_names=["pos", "neg"]),
                                  source)
    with pytest.raises(ValueError, match="task.kind='regression'"):
        check_task_matches_source(TaskSpec(**{**task, "kind": "regression"}, num_labels=1),
                                  source)


class _Rank:
    """The two trainer attributes the datamodule reads, for one process of a DDP run."""

    def __init__(self, world_size: int, global_rank: int):
        self.world_size, self.global_rank = world_size, global_rank


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_evaluation_sees_every_example_exactly_once(world):
    source = SyntheticSource(seed=0, n_train=40, n_validation=33, n_test=31)
    seen = {"validation": [], "test": []}
    for rank in range(world):
        dm = TextDataModule(source, tokenizer=TOKENIZER, batch_size=6, eval_batch_size=6,
                            cache_dir=None)
        dm.trainer = _Rank(world, rank)
        dm.setup()
        for split, loader in (("validation", dm.val_dataloader()), ("test", dm.test_dataloader())):
            assert isinstance(loader.sampler, DistributedSampler)  # Lightning keeps it as is
            seen[split] += [i for batch in loader for i in batch["index"].tolist()]
    assert sorted(seen["validation"]) == list(range(33))
    assert sorted(seen["test"]) == list(range(31))


@pytest.mark.parametrize("num_workers", [0, 2])  # 2: what data.num_workers=null gives on GPUs
def test_training_loader_is_stateful_for_exact_resume(num_workers):
    source = SyntheticSource(seed=0, n_train=40, n_validation=4, n_test=4)
    dm = TextDataModule(source, tokenizer=TOKENIZER, batch_size=4, cache_dir=None,
                        num_workers=num_workers)
    dm.setup("fit")
    torch.manual_seed(0)
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    rest = [b["index"].tolist() for b in it]
    again = dm.train_dataloader()
    again.load_state_dict(state)
    assert [b["index"].tolist() for b in again] == rest


def _epochs(loader, epochs: int = 2) -> list[list[list[int]]]:
    return [[b["index"].tolist() for b in loader] for _ in range(epochs)]


@pytest.mark.parametrize("world", [2, 4])
def test_ddp_training_shards_together_are_the_single_process_batches(world):
    # rank r's k-th batch of 12/world, over the ranks, is the one-process k-th batch of 12, in
    # every epoch: DDP then averages the gradient the single process takes (test_ddp_equivalence)
    source = SyntheticSource(seed=0, n_train=48, n_validation=4, n_test=4)

    def loader(rank: int, world: int):
        dm = TextDataModule(source, tokenizer=TOKENIZER, batch_size=12, cache_dir=None, seed=3)
        dm.trainer = _Rank(world, rank)
        dm.setup("fit")
        return dm.train_dataloader()

    single = _epochs(loader(0, 1))
    ranks = [_epochs(loader(rank, world)) for rank in range(world)]
    for epoch in range(2):
        assert len(single[epoch]) == 4 and all(len(r[epoch]) == 4 for r in ranks)
        for k, batch in enumerate(single[epoch]):
            assert sorted(i for r in ranks for i in r[epoch][k]) == sorted(batch)
    assert single[0] != single[1]  # a new order each epoch


def test_one_process_keeps_the_order_of_torchdatas_random_sampler():
    # the order of every run before DDP shards existed (same seed, same batches)
    from torchdata.stateful_dataloader.sampler import RandomSampler

    source = SyntheticSource(seed=0, n_train=40, n_validation=4, n_test=4)
    dm = TextDataModule(source, tokenizer=TOKENIZER, batch_size=4, cache_dir=None, seed=5)
    dm.setup("fit")
    sampler = RandomSampler(range(40), generator=torch.Generator().manual_seed(5))
    expected = [list(sampler), list(sampler)]
    assert [sum(e, []) for e in _epochs(dm.train_dataloader())] == expected


def test_an_uneven_shard_wraps_around_so_every_rank_takes_as_many_batches():
    source = SyntheticSource(seed=0, n_train=10, n_validation=4, n_test=4)
    seen = []
    for rank in range(4):
        dm = TextDataModule(source, tokenizer=TOKENIZER, batch_size=4, cache_dir=None, seed=1)
        dm.trainer = _Rank(4, rank)
        dm.setup("fit")
        batches = [b["index"].tolist() for b in dm.train_dataloader()]
        assert [len(b) for b in batches] == [1, 1, 1]  # ceil(10 / 4) = 3 each
        seen += sum(batches, [])
    assert sorted(set(seen)) == list(range(10)) and len(seen) == 12


@pytest.mark.parametrize("rank", [0, 1])
def test_each_rank_resumes_its_own_shard_from_the_checkpointed_state(rank):
    # the checkpoint holds rank 0's loader state; every rank's position is the same in it
    source = SyntheticSource(seed=0, n_train=40, n_validation=4, n_test=4)

    def loader(rank: int):
        dm = TextDataModule(source, tokenizer=TOKENIZER, batch_size=8, cache_dir=None, seed=2)
        dm.trainer = _Rank(2, rank)
        dm.setup("fit")
        return dm.train_dataloader()

    zero, mine = loader(0), loader(rank)
    it = iter(zero)
    next(it), next(it)
    state = zero.state_dict()
    expected = [b["index"].tolist() for b in mine][2:]
    again = loader(rank)
    again.load_state_dict(state)
    assert [b["index"].tolist() for b in again] == expected and len(expected) == 3


def test_a_limit_that_keeps_one_class_of_a_label_sorted_split_is_refused(tmp_path):
    data = tmp_path / "train.csv"  # ordered by label, as the Amazon splits are
    data.write_text("text,label\n" + "".join(f"bad {i},neg\n" for i in range(6))
                    + "".join(f"good {i},pos\n" for i in range(6)))
    with pytest.raises(ValueError, match=r"data.train_limit=4: the first 4 of split 'train' "
                                         r"all have label 0 \(the split has 2\).*limit_sample"):
        _module(data, tmp_path / "cache", train_limit=4).validate()
    dm = _module(data, tmp_path / "cache", train_limit=6, eval_limit=12, limit_sample=True,
                 seed=3)
    dm.validate()
    texts = [e.text for e in dm._examples("train")]
    assert len(texts) == 6 and {t.split()[0] for t in texts} == {"bad", "good"}
    order = [int(t.split()[1]) + 6 * t.startswith("good") for t in texts]
    assert order == sorted(order)  # a subset in the split's order, not a reshuffle
    again = _module(data, tmp_path / "cache", train_limit=6, limit_sample=True, seed=3)
    assert [e.text for e in again._examples("train")] == texts  # seeded
    assert len(dm._examples("validation")) == 12  # a limit above the size keeps everything


class _Device:
    """A trainer stand-in on a given device type (no CUDA needed to test the choice)."""

    def __init__(self, kind: str, devices: int = 1):
        self.world_size, self.global_rank, self.num_devices = devices, 0, devices
        self.strategy = type("S", (), {"root_device": torch.device(kind)})()


def test_null_num_workers_is_zero_on_the_cpu_and_some_per_cuda_process(monkeypatch):
    from lmcompress.data import loader

    monkeypatch.setattr(loader.os, "cpu_count", lambda: 16)
    assert loader.workers(None, _Device("cpu")) == 0 and loader.workers(None, None) == 0
    assert loader.workers(None, _Device("cuda")) == 4  # pinned too
    assert loader.workers(None, _Device("cuda", devices=8)) == 1  # 16 cores / 8 processes - 1
    assert loader.workers(3, _Device("cpu")) == 3  # an explicit value is kept
    source = SyntheticSource(seed=0, n_train=8, n_validation=4, n_test=4)
    dm = TextDataModule(source, tokenizer=TOKENIZER, batch_size=4, cache_dir=None)
    dm.trainer = _Device("cuda")
    dm.setup("fit")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert (train.num_workers, train.pin_memory, val.num_workers, val.pin_memory) == (4, True,
                                                                                      4, True)
