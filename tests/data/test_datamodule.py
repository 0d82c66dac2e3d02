"""TextDataModule: the tokenisation cache follows the data, not only the source's arguments."""

from __future__ import annotations

from lmcompress.data.datamodule import TextDataModule
from lmcompress.data.sources import LocalFileSource


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
