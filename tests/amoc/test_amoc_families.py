"""AMoC on every encoder family: the cached prefix, the trainable set and a whole search.

Tiny random models of the seven families (``tests/helpers/families.py``); the BERT-only
versions of these checks are in test_amoc_cache.py and test_amoc_search.py.
"""

from __future__ import annotations

import pytest
import torch
from amoc_fixtures import cached_candidate, collate, examples

from helpers.families import NAMES, family_model
from lmcompress.amoc.search import Search, SearchData
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.train import TrainSpec, predict, train_candidate, trained_state
from lmcompress.models.families import adapter_for
from lmcompress.specs import parse

KIND = {"sequence": "classification", "token": "token_classification"}


def _setup(family: str, head: str, removed: tuple[int, ...]):
    base = family_model(family, head, num_labels=3)
    return (base, *cached_candidate(base, removed, KIND[head], "official"))


@pytest.mark.parametrize(("head", "removed"), [("sequence", (2,)), ("sequence", (0, 2)),
                                               ("token", (2,))])
@pytest.mark.parametrize("family", NAMES)
def test_cached_prefix_equals_the_uncached_path(family, head, removed):
    _, start, train, dev, model = _setup(family, head, removed)
    cached, independent = model(), model()
    torch.testing.assert_close(predict(cached, start, dev),
                               predict(independent, start, dev, cached=False),
                               atol=1e-5, rtol=1e-5)
    spec = TrainSpec(lr=1e-2, batch_size=8, seed=5, epochs=2, dropout=True)
    train_candidate(cached, start, train, spec)
    train_candidate(independent, start, train, spec, cached=False)
    after, other = trained_state(cached), trained_state(independent)
    assert set(after) == set(other) and after
    for name in after:
        torch.testing.assert_close(after[name], other[name], atol=1e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(predict(cached, start, dev),
                               predict(independent, start, dev, cached=False),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", NAMES)
def test_only_the_layer_below_and_the_head_train(family):
    base, start, train, _, model = _setup(family, "sequence", (2,))
    candidate = model()
    adapter = adapter_for(candidate)
    before = {n: p.detach().clone() for n, p in candidate.named_parameters()}
    train_candidate(candidate, start, train, TrainSpec(lr=1e-2, batch_size=8))
    changed = {n for n, p in candidate.named_parameters() if not torch.equal(p, before[n])}
    layer1 = {n for n, p in candidate.named_parameters()
              if any(p is q for q in adapter.layers(candidate)[1].parameters())}
    head = {n for n, _ in adapter.head_parameters(candidate)}
    # removing layer 2 re-trains layer 1 and the head; embeddings, layer 0 and shared
    # relative-position tables stay as they were
    assert changed and changed <= layer1 | head and changed & layer1 and changed & head
    assert not changed & {r.name for r in adapter.relative_positions(candidate)}


def _data(kind: str) -> SearchData:
    tokens = kind == "token_classification"

    def loader(n: int, seed: int, labels: bool):
        return lambda: (examples(n, seed, token_labels=tokens, labels=labels), collate)

    return SearchData(source="src", kind=kind, train=loader(16, 0, True), dev=loader(8, 1, True),
                      test=loader(8, 2, True),
                      targets={"x": (loader(8, 3, False), loader(8, 5, True))},
                      special_ids=[0, 2, 3])


@pytest.mark.parametrize("family", NAMES)
def test_search_runs_on_every_family(family):
    spec = parse(SearchSpec, {"budgets": [1], "eval_batch_size": 8, "train": {"batch_size": 8}},
                 "callbacks.amoc")
    table = Search(family_model(family), _data("classification"), spec).run()
    assert len(table) == 4 and table["ate_target"].between(0, 1).all()
    assert table["target_score"].between(0, 1).all()


@pytest.mark.parametrize("family", NAMES)
def test_retraining_the_embeddings_frees_all_that_computes_hidden_state_0(family):
    base, _, train, _, model = _setup(family, "sequence", (0,))  # official: start = -1
    candidate = model()
    first = train.batches[0].inputs
    candidate.requires_grad_(True)
    h0 = candidate(**first, output_hidden_states=True).hidden_states[0]
    feeds = torch.autograd.grad(h0.sum(), list(candidate.parameters()), allow_unused=True)
    needed = {n for (n, _), g in zip(candidate.named_parameters(), feeds, strict=True)
              if g is not None}
    candidate = model()  # set_trainable's choice, untouched by the probe above
    trainable = {n for n, p in candidate.named_parameters() if p.requires_grad}
    assert needed and needed <= trainable
