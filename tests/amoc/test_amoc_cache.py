"""Running a candidate from its first changed layer on cached base states changes nothing."""

from __future__ import annotations

import pytest
import torch
from amoc_fixtures import cached_candidate, tiny_model

from lmcompress.amoc.cache import states_needed
from lmcompress.amoc.train import TrainSpec, predict, train_candidate, trained_state

KIND = {"mix": "classification", "pooler": "classification", "token": "token_classification"}


def _setup(head: str, removed: tuple[int, ...], rule: str = "official"):
    base = tiny_model(head, num_labels=3)
    return (base, *cached_candidate(base, removed, KIND[head], rule))


@pytest.mark.parametrize("head", ["mix", "pooler", "token"])
@pytest.mark.parametrize("removed", [(2,), (2, 3), (0, 2)])
def test_cached_prefix_gives_the_same_outputs_and_training(head, removed):
    base, start, train, dev, model = _setup(head, removed)
    assert start == (removed[0] - 1 if removed[0] else -1)
    cached, independent = model(), model()
    torch.testing.assert_close(predict(cached, start, dev), predict(independent, start, dev,
                                                                   cached=False))
    spec = TrainSpec(lr=1e-2, batch_size=8, seed=5, epochs=2, dropout=True)
    stats = train_candidate(cached, start, train, spec)
    train_candidate(independent, start, train, spec, cached=False)
    assert stats["steps"] == 6  # 3 batches x 2 epochs
    after, other = trained_state(cached), trained_state(independent)
    assert set(after) == set(other) and after
    for name in after:
        torch.testing.assert_close(after[name], other[name], msg=name)
    torch.testing.assert_close(predict(cached, start, dev), predict(independent, start, dev,
                                                                   cached=False))


def test_only_the_trainable_parts_change():
    base, start, train, _, model = _setup("mix", (2,))
    candidate = model()
    before = {n: p.detach().clone() for n, p in candidate.named_parameters()}
    train_candidate(candidate, start, train, TrainSpec(lr=1e-2, batch_size=8))
    changed = {n for n, p in candidate.named_parameters() if not torch.equal(p, before[n])}
    # removing layer 2 re-trains layer 1 and the head (mix weights, conv, classifier)
    assert changed and all(n.startswith(("bert.encoder.layer.1.", "mix.", "head."))
                           for n in changed)
    assert any(n.startswith("bert.encoder.layer.1.") for n in changed)
    assert torch.equal(base.bert.encoder.layer[1].output.dense.weight,
                       before["bert.encoder.layer.1.output.dense.weight"])  # base untouched


def test_mix_cache_holds_every_lower_state_and_tagging_masks():
    base = tiny_model("mix")
    assert states_needed(base, [-1, 1, 2]) == {0, 1, 2}
    assert states_needed(tiny_model("pooler"), [-1, 1, 2]) == {1, 2}
    _, _, train, dev, _ = _setup("token", (2,))
    batch = train.batches[0]
    assert torch.equal(batch.token_mask, batch.labels != -100)
    unlabelled = dev.batches[0]  # no labels: real tokens minus [CLS]/[SEP]/[PAD]
    assert unlabelled.labels is None and not unlabelled.token_mask[:, 0].any()
    real = int(unlabelled.inputs["attention_mask"].sum())
    assert int(unlabelled.token_mask.sum()) == real - 2 * 4  # 4 sentences, [CLS] and [SEP] each
