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
