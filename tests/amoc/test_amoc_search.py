"""Target resolution, refusals, and the order in which a search reads its data."""

from __future__ import annotations

import pytest
import torch
from amoc_fixtures import collate, examples, tiny_model

from lmcompress.amoc.search import Search, SearchData
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.targets import StreamInfo, resolve_targets
from lmcompress.specs import parse

STREAMS = {"books_unlabeled": StreamInfo("books", False), "books_test": StreamInfo("books", True),
           "dvd_unlabeled": StreamInfo("dvd", False), "dvd_test": StreamInfo("dvd", True)}


def test_targets_default_to_every_declared_domain_but_the_source():
    assert list(resolve_targets("books", STREAMS)) == ["dvd"]
    assert list(resolve_targets("kitchen", STREAMS)) == ["books", "dvd"]


@pytest.mark.parametrize(("streams", "targets", "message"), [
    (STREAMS, ["books"], "target 'books' is the source domain 'books'"),
    (STREAMS, ["kitchen"], "target 'kitchen': no stream 'kitchen_unlabeled'"),
    ({**STREAMS, "dvd_unlabeled": StreamInfo("dvd", True)}, ["dvd"],
     "stream 'dvd_unlabeled' must be declared labels: false"),
    ({k: v for k, v in STREAMS.items() if k != "dvd_test"}, ["dvd"],
     "needs a labelled stream 'dvd_test'"),
    ({k: v for k, v in STREAMS.items() if k.startswith("books")}, None,
     "no target domain besides the source 'books'"),
])
def test_target_refusals(streams, targets, message):
    with pytest.raises(ValueError, match=message):
        resolve_targets("books", streams, targets)


def _data(log: list[str], kind: str = "classification", empty: str = "") -> SearchData:
    tokens = kind == "token_classification"

    def loader(name: str, n: int, seed: int, labels: bool):
        def load():
            log.append(name)
            rows = examples(n, seed, token_labels=tokens, labels=labels, num_labels=2)
            return ([] if name == empty else rows), collate
        return load

    return SearchData(
        source="src", kind=kind, train=loader("train", 16, 0, True),
        dev=loader("dev", 8, 1, True), test=loader("source_test", 8, 2, True),
        targets={t: (loader(f"{t}_unlabeled", 8, 3 + i, False),
                     loader(f"{t}_test", 8, 5 + i, True)) for i, t in enumerate(("x", "y"))},
        special_ids=[0, 2, 3])


def _spec(**overrides) -> SearchSpec:
    return parse(SearchSpec, {"budgets": [1], "eval_batch_size": 8,
                              "train": {"batch_size": 8}, **overrides}, "callbacks.amoc")


def test_labelled_target_splits_are_read_only_after_every_feature(monkeypatch):
    log: list[str] = []
    fit = Search.fit
    monkeypatch.setattr(Search, "fit", lambda self, c: (log.append(f"fit {c.name}"),
                                                        fit(self, c))[1])
    table = Search(tiny_model("mix"), _data(log), _spec()).run()
    last_fit = max(i for i, entry in enumerate(log) if entry.startswith("fit"))
    first_test = min(i for i, entry in enumerate(log) if entry.endswith("test"))
    assert last_fit < first_test
    assert len(table) == 2 * 4 and set(table["target"]) == {"x", "y"}
    assert (table["source_drop"] == table["source_score"] - table["base_source_score"]).all()
    assert table["ate_target"].between(0, 1).all() and table["removed_3"].sum() == 2


def test_tagging_search_scores_tokens():
    table = Search(tiny_model("token"), _data([], kind="token_classification"), _spec()).run()
    assert set(table["metric"]) == {"token_accuracy"} and len(table) == 2 * 4
    assert table["ate_target"].between(0, 1).all() and table["target_score"].between(0, 1).all()


def test_search_refusals():
    with pytest.raises(ValueError, match="AMoC split 'x_unlabeled' has no examples"):
        Search(tiny_model("mix"), _data([], empty="x_unlabeled"), _spec()).run()
    with pytest.raises(ValueError, match="task.kind='regression' is not supported"):
        Search(tiny_model("mix"), _data([], kind="regression"), _spec())
    with pytest.raises(TypeError, match="AMoC runs"):
        Search(torch.nn.Linear(2, 2), _data([]), _spec())
    with pytest.raises(ValueError, match="unknown key"):
        parse(SearchSpec, {"budget": [1]}, "callbacks.amoc")
    assert SearchSpec().train.lr == 1e-4
