"""TextDataModule: a cache that follows the data; DDP evaluation that counts each example once."""

from __future__ import annotations

import pytest
from torch.utils.data import DistributedSampler

from lmcompress.data.datamodule import TextDataModule
from lmcompress.data.sources import LocalFileSource, SyntheticSource


def _module(path, cache_dir) -> TextDataModule:
    source = LocalFileSource(train=str(path), validation=str(path), label_names=["neg", "pos"])
    return TextDataModule(source, tokenizer="embedded:minilm-l6", cache_dir=str(cache_dir),
                          test_split=None)


def _labels(path, cache_dir) -> list[int]:
    dm = _module(path, cache_dir)
    dm.validate()
    dm.setup("fit")
    return [f["labels"] for f in dm.datasets["train"].features]


def test_cache_is_reused_and_invalidated_by_an_edited_file(tmp_path):
    data, cache = tmp_path / "train.csv", tmp_path / "cache"
    data.write_text("text,label\ngood movie,pos\nbad movie,neg\n")
    assert _labels(data, cache) == [1, 0]
    first = sorted(cache.iterdir())
    assert len(first) == 2  # train and validation
    assert _labels(data, cache) == [1, 0] and sorted(cache.iterdir()) == first  # reused
    data.write_text("text,label\ngood movie,neg\nbad movie,neg\n")  # same path, new labels
    assert _labels(data, cache) == [0, 0]


class _Rank:
    """The two trainer attributes the datamodule reads, for one process of a DDP run."""

    def __init__(self, world_size: int, global_rank: int):
        self.world_size, self.global_rank = world_size, global_rank


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_evaluation_sees_every_example_exactly_once(world):
    source = SyntheticSource(seed=0, n_train=40, n_validation=33, n_test=31)
    seen = {"validation": [], "test": []}
    for rank in range(world):
        dm = TextDataModule(source, tokenizer="embedded:minilm-l6", batch_size=6,
                            eval_batch_size=6, cache_dir=None)
        dm.trainer = _Rank(world, rank)
        dm.setup()
        for split, loader in (("validation", dm.val_dataloader()), ("test", dm.test_dataloader())):
            assert isinstance(loader.sampler, DistributedSampler)  # Lightning keeps it as is
            seen[split] += [i for batch in loader for i in batch["index"].tolist()]
        # training is left to Lightning's padded, shuffled DistributedSampler (the documented
        # global-batch arithmetic): no distributed sampler of ours there
        assert not isinstance(dm.train_dataloader().sampler, DistributedSampler)
    assert sorted(seen["validation"]) == list(range(33))
    assert sorted(seen["test"]) == list(range(31))
