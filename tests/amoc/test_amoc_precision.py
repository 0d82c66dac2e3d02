"""``callbacks.amoc.precision``: bf16 runs every pass of the search under autocast (the base
model's cached passes too, which the ATE compares each candidate with), 32 none; the weights
stay fp32 either way."""

from __future__ import annotations

import pytest
import torch
from amoc_fixtures import collate, examples, tiny_model

from lmcompress.amoc.finetune import FinetuneSpec, finetune_chosen
from lmcompress.amoc.search import Search, SearchData
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.train import TrainSpec, predict, search_precision, train_candidate
from lmcompress.specs import SpecError, parse


def _data() -> SearchData:
    def loader(n: int, seed: int, labels: bool = True):
        return lambda: (examples(n, seed, labels=labels), collate)

    return SearchData(source="src", kind="classification", train=loader(16, 0), dev=loader(8, 1),
                      test=loader(8, 2), special_ids=[0, 2, 3],
                      targets={"x": (loader(8, 3, labels=False), loader(8, 5))})


def _spec(precision: str) -> SearchSpec:
    return parse(SearchSpec, {"budgets": [1], "eval_batch_size": 8, "precision": precision,
                              "train": {"batch_size": 8}}, "callbacks.amoc")


@pytest.mark.parametrize(("precision", "dtype"), [("32", torch.float32), (32, torch.float32),
                                                ("bf16", torch.bfloat16)])
def test_every_linear_layer_of_the_search_runs_in_the_chosen_precision(monkeypatch, precision,
                                                                      dtype):
    seen: dict[str, set] = {"train": set(), "eval": set()}
    forward = torch.nn.Linear.forward

    def spy(self, x):
        out = forward(self, x)
        seen["train" if torch.is_grad_enabled() else "eval"].add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    base = tiny_model("mix")
    search = Search(base, _data(), _spec(precision))
    table = search.run()
    assert seen == {"train": {dtype}, "eval": {dtype}}  # fine-tunes; cached passes, predictions
    assert {p.dtype for p in base.parameters()} == {torch.float32}
    assert len(table) == 4 and table["ate_target"].between(0, 1).all()

    seen["train"].clear(), seen["eval"].clear()
    entries = [{"target": "x", "amoc": {"removed": table["removed"].iloc[0]}}]
    finetune_chosen(search, entries, FinetuneSpec(batch_size=8, methods=["amoc"]))
    assert seen == {"train": {dtype}, "eval": {dtype}}  # the chosen candidates' full fine-tune
    assert 0 <= entries[0]["amoc"]["finetuned_score"] <= 1


@pytest.mark.parametrize("precision", ["32", "bf16"])
def test_the_fine_tune_runs_on_its_updated_weights_not_on_a_stale_bf16_cast(precision):
    """Inside one bf16 context the candidate must see its weights as the optimizer left them.

    Autocast's weight-cast cache would keep serving the bf16 copies made before the first
    step until the context exits: the fine-tune would not learn and the predictions inside the
    search would be the untrained candidate's, different from the same weights' outside it.
    """
    base = tiny_model("mix")
    search = Search(base, _data(), _spec(precision))
    candidate = search.candidates[-1]  # keeps a lower layer: runs on the cached states
    start = search.starts[candidate]
    with search_precision(precision, base):
        search.train = search.cache("source_train", search.data.train, train=True)
        model, _ = search.candidate_model(candidate)
        before = torch.cat(predict(model, start, search.train))
        stats = train_candidate(model, start, search.train,
                                TrainSpec(lr=3e-2, epochs=4, batch_size=8, dropout=False))
        inside = torch.cat(predict(model, start, search.train))
    with search_precision(precision, base):
        fresh = torch.cat(predict(model, start, search.train))
    assert start >= 0 and stats["steps"] == 8
    assert (inside - before).abs().max() > 0.05  # the fine-tune changed the predictions ...
    torch.testing.assert_close(inside, fresh)     # ... computed from the current weights


def test_an_unknown_precision_is_refused_by_its_key():
    with pytest.raises(SpecError, match=r"callbacks.amoc.precision='16': must be one of"):
        _spec("16")
