"""The offline augmenter: embedding neighbours, MLM candidates, seeding, the cache (issue 21)."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertTokenizer

from lmcompress.data.augment import Augmenter, AugmentSpec, augment_cached
from lmcompress.data.base import Example

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "great", "bad", "awful",
         "movie", "film", "the", "##s", "7"]


@pytest.fixture
def tokenizer(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return BertTokenizer(str(tmp_path / "vocab.txt"))


def _model(cls=BertForSequenceClassification):
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16)
    torch.manual_seed(0)
    model = cls(config)
    table = torch.randn(len(VOCAB), 8) * 0.01
    for a, b, axis in (("good", "great", 0), ("bad", "awful", 1), ("movie", "film", 2),
                       ("the", "the", 3)):
        for word, sign in ((a, 1.0), (b, 0.9)):
            table[VOCAB.index(word), axis] = sign  # pairs share one axis: nearest neighbours
    model.get_input_embeddings().weight.data.copy_(table)
    return model


def test_embedding_mode_replaces_each_word_by_its_nearest_neighbour(tokenizer):
    augmenter = Augmenter(tokenizer, _model(), AugmentSpec(p=1.0, n_copies=2, k=1))
    out = augmenter.augment([Example("good movie 7", None, 1, "line 1")])
    assert [e.text for e in out] == ["good movie 7", "great film 7", "great film 7"]
    assert all(e.label == 1 for e in out) and "augmented copy 2" in out[2].where
    none = Augmenter(tokenizer, _model(), AugmentSpec(p=0.0, n_copies=3))
    assert {e.text for e in none.augment([Example("bad film")])} == {"bad film"}


def test_copies_are_seeded(tokenizer):
    text = [Example("good bad movie film the good bad", "the film", 0)]
    def run(seed):
        spec = AugmentSpec(p=0.5, n_copies=5, k=3, seed=seed)
        return [(e.text, e.text_pair) for e in Augmenter(tokenizer, _model(), spec).augment(text)]
    assert run(1) == run(1) and run(1) != run(2)
    assert len(run(1)) == 6


def test_mlm_mode_takes_the_heads_predictions_and_needs_a_head(tokenizer):
    model = _model(BertForMaskedLM)
    bias = torch.full((len(VOCAB),), -10.0)
    bias[VOCAB.index("awful")] = 10.0  # the head predicts "awful" for every masked position
    model.cls.predictions.decoder.bias.data.copy_(bias)
    model.cls.predictions.bias.data.copy_(bias)
    out = Augmenter(tokenizer, model, AugmentSpec(p=1.0, n_copies=1, k=1, mode="mlm")).augment(
        [Example("good movie")])
    assert out[1].text == "awful awful"
    with pytest.raises(ValueError, match="no masked-LM head"):
        Augmenter(tokenizer, _model(), AugmentSpec(mode="mlm"))
    with pytest.raises(ValueError, match="augment.p"):
        AugmentSpec(p=1.5).check("augment")


def test_the_cache_stores_the_teachers_logits_once(tokenizer, tmp_path):
    calls = []

    def logits_fn(examples):
        calls.append(len(examples))
        return torch.arange(2 * len(examples), dtype=torch.float).reshape(-1, 2)

    augmenter = Augmenter(tokenizer, _model(), AugmentSpec(p=1.0, n_copies=2, k=1))
    data = [Example("good movie", None, 1), Example("bad film", None, 0)]
    first, logits, path = augment_cached(data, augmenter, "teacher-digest", tmp_path, logits_fn)
    again, cached, same = augment_cached(data, augmenter, "teacher-digest", tmp_path, logits_fn)
    assert calls == [6] and same == path and [e.text for e in again] == [e.text for e in first]
    torch.testing.assert_close(cached, logits)
    augment_cached(data, augmenter, "another-teacher", tmp_path, logits_fn)
    assert calls == [6, 6]  # another model: another cache file


# -- data.augment: the data module's training split (what every labelled stage reads) -----------

def _module(tmp_path, source=None, **augment):
    from lmcompress.data.datamodule import TextDataModule
    from lmcompress.data.synthetic import SyntheticSource

    source = source or SyntheticSource(seed=0, n_train=6, n_validation=5, n_test=4)
    return TextDataModule(source, tokenizer="embedded:minilm-l6", cache_dir=str(tmp_path),
                          augment={"n_copies": 0, "p": 0.4, "k": 15, "mode": "embedding",
                                   "seed": 0, "model": None, **augment})


def test_data_augment_adds_copies_to_the_training_split_only_and_caches_them(tmp_path,
                                                                           monkeypatch):
    plain = _module(tmp_path)
    assert plain.validate() == {"train": 6, "validation": 5, "test": 4}  # n_copies 0: off
    dm = _module(tmp_path, n_copies=3, p=1.0)
    sizes = dm.validate()
    assert sizes["train"] == 24 and sizes["validation"] == 5 and sizes["test"] == 4
    report = sizes["augment"]
    assert (report["original"], report["copies"], report["model"]) == (6, 18, "embedded:minilm-l6")
    train = dm._examples("train")
    originals = plain._examples("train")
    assert [e.text for e in train[::4]] == [e.text for e in originals]  # each then its copies
    assert [e.label for e in train] == [e.label for e in originals for _ in range(4)]
    changed = sum(c.text != o.text for o, c in zip(train[::4], train[1::4], strict=True))
    assert changed == 6  # p=1: every sentence has a whole word to replace
    # the same settings read the cache file instead of augmenting again
    from lmcompress.data import augment as module

    monkeypatch.setattr(module.Augmenter, "augment", lambda *a: 1 / 0)
    again = _module(tmp_path, n_copies=3, p=1.0)
    assert again.validate()["augment"]["cache"] == report["cache"]
    assert [e.text for e in again._examples("train")] == [e.text for e in train]


@pytest.mark.parametrize("setting, message", [
    ({"p": 1.5}, r"data.augment.p=1.5: must be in \[0, 1\]"),
    ({"mode": "wordnet"}, r"data.augment.mode='wordnet'"),
    ({"copies": 3}, r"data.augment: unknown key\(s\) \['copies'\]"),
    ({"mode": "mlm"}, r"data.augment.mode=mlm: data.augment.model='embedded:minilm-l6' has no "
                      r"masked-LM head"),
])
def test_bad_augment_settings_are_refused_by_key_in_validate(tmp_path, setting, message):
    with pytest.raises(ValueError, match=message):
        _module(tmp_path, n_copies=2, **setting).validate()


class _Tagging:
    """A two-sentence token-classification source."""

    def __new__(cls):
        from lmcompress.data.base import Source

        class Tags(Source):
            kind, label_names = "token_classification", ["A", "B"]

            def _load(self, split):
                return [Example(["good", "movie"], None, [0, 1]),
                        Example(["bad", "film"], None, [1, 0])]
        return Tags()


def test_a_token_classification_task_is_not_augmented(tmp_path):
    with pytest.raises(ValueError, match="token-classification task's labels are per word"):
        _module(tmp_path, _Tagging(), n_copies=2).validate()


def test_data_augment_mlm_mode_reads_the_models_head(tmp_path, tokenizer):
    from lmcompress.data.base import Source

    model = _model(BertForMaskedLM)
    bias = torch.full((len(VOCAB),), -10.0)
    bias[VOCAB.index("awful")] = 10.0
    model.cls.predictions.decoder.bias.data.copy_(bias)
    model.cls.predictions.bias.data.copy_(bias)
    model.save_pretrained(tmp_path / "mlm")
    tokenizer.save_pretrained(tmp_path / "mlm")

    class Words(Source):
        label_names = ["neg", "pos"]

        def _load(self, split):
            return [Example("good movie", None, 1), Example("bad film", None, 0)]

    from lmcompress.data.datamodule import TextDataModule

    dm = TextDataModule(Words(), tokenizer=str(tmp_path / "mlm"), cache_dir=None,
                        augment={"n_copies": 1, "p": 1.0, "k": 1, "mode": "mlm"})
    sizes = dm.validate()
    assert sizes["train"] == 4 and sizes["augment"]["mode"] == "mlm"
    assert [e.text for e in dm._examples("train")] == ["good movie", "awful awful",
                                                       "bad film", "awful awful"]
