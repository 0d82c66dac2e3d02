"""AMoC wiring: the target ATE reads each target's own text; the search starts from the best
checkpoint. Both against values computed here, not the search's earlier output."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from amoc_fixtures import collate, examples, tiny_model
from torch import nn

from helpers.spy import SPY, Spy
from lmcompress.amoc.search import Search, SearchData
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.run import run_stage
from lmcompress.specs import parse
from lmcompress.utils.checkpoints import read_checkpoint

SEEDS = {"train": 0, "dev": 1, "x_unlabeled": 3, "y_unlabeled": 4, "x_test": 5, "y_test": 6}


# each target's text draws on its own part of the vocabulary (ids 5..59), so an ATE computed on
# the wrong text lands far from the right one
VOCAB_PART = {"x": (5, 20), "y": (40, 60)}


def _rows(name: str, n: int = 8) -> list[dict]:
    rows = examples(n, SEEDS[name], labels=not name.endswith("unlabeled"))
    part = VOCAB_PART.get(name.split("_")[0])
    if part:
        lo, hi = part
        for row in rows:
            row["input_ids"] = [row["input_ids"][0], *(lo + i % (hi - lo)
                                                      for i in row["input_ids"][1:-1]),
                                row["input_ids"][-1]]
    return rows


def _loader(name: str, n: int = 8):
    rows = _rows(name, n)
    return lambda: (rows, collate)


def _without(base, layer: int):
    """The base model with one encoder layer deleted, by hand."""
    model = copy.deepcopy(base)
    model.bert.encoder.layer = nn.ModuleList(
        [m for i, m in enumerate(model.bert.encoder.layer) if i != layer])
    model.config.num_hidden_layers -= 1
    return model.eval()


def _hand_ate(base, candidate, split: str) -> float:
    """Mean over the split's examples of 1/2 sum_c |p_base - p_candidate|."""
    batch = collate(_rows(split))
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        p = base(**inputs).logits.double().softmax(-1)
        q = candidate(**inputs).logits.double().softmax(-1)
    return float((0.5 * (p - q).abs().sum(-1)).mean())


def _wide_base():
    base = tiny_model("pooler", layers=4)
    with torch.no_grad():  # random-init outputs are near uniform (ATE ~1e-6): widen them
        for name, p in base.named_parameters():
            if p.ndim == 2 and "embeddings" not in name:
                p.mul_(60.0 if name.startswith("classifier") else 4.0)
    return base


def _search_table(base, metric=None):
    data = SearchData(source="src", kind="classification", train=_loader("train", 16),
                      dev=_loader("dev"), test=None,
                      targets={t: (_loader(f"{t}_unlabeled"), _loader(f"{t}_test", 16))
                               for t in ("x", "y")})
    # a negligible learning rate: each candidate is the base model minus its layer
    spec = parse(SearchSpec, {"budgets": [1], "eval_batch_size": 4, "patterns": [],
                              "metric": metric, "train": {"batch_size": 8, "lr": 1e-12}},
                 "callbacks.amoc")
    return Search(copy.deepcopy(base), data, spec).run()


def test_target_ate_is_the_tv_distance_on_that_targets_text():
    base = _wide_base()
    table = _search_table(base)
    assert len(table) == 2 * 4
    for layer in range(4):
        candidate = _without(base, layer)
        by_split = {s: _hand_ate(base, candidate, s)
                    for s in ("x_unlabeled", "y_unlabeled", "dev")}
        for target in ("x", "y"):
            row = table[(table["target"] == target) & (table["removed"] == str(layer))]
            expected = by_split[f"{target}_unlabeled"]
            assert row["ate_target"].item() == pytest.approx(expected, rel=1e-4, abs=1e-7)
            # the other splits' text gives another value: the check tells them apart
            for other in set(by_split) - {f"{target}_unlabeled"}:
                assert abs(by_split[other] - expected) > 1e-2 * expected
        # the source ATE is the dev split's
        assert table[table["removed"] == str(layer)]["ate_source"].iloc[0] == pytest.approx(
            by_split["dev"], rel=1e-4, abs=1e-7)


class _Stop(Exception):
    pass


def test_search_starts_from_the_best_checkpoint_not_the_last_weights(make_cfg, monkeypatch):
    """monitor=epoch, mode=min makes epoch 0 the best of two: the search's base model must be
    epoch 0's checkpoint, not the weights training ended with."""
    seen = {}

    def capture(self):
        seen["base"] = {k: v.detach().clone() for k, v in self.base.state_dict().items()}
        raise _Stop

    monkeypatch.setattr(Search, "run", capture)
    cfg = make_cfg("amoc_tiny", "task=tiny_electronics", "trainer.max_epochs=2",
                   "callbacks.best.monitor=epoch", "callbacks.best.mode=min",
                   "callbacks.amoc.budgets=[1]", "callbacks.amoc.independent_subset=0",
                   "callbacks.amoc.features_only=true", "test=false", "export=false", SPY)
    with pytest.raises(_Stop):
        run_stage(cfg)
    (path,) = Path(cfg.callbacks.best.dirpath).glob("best-*.ckpt")
    assert "epoch00" in path.name
    state = read_checkpoint(path)["state_dict"]
    final = Spy.last().module.model.state_dict()
    moved = 0
    for name, value in seen["base"].items():
        torch.testing.assert_close(value, state[f"model.{name}"].float(), msg=name)
        moved += not torch.equal(value, final[name].float())
    assert moved > 10  # the last weights differ: taking them would fail the check above


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_target_scores_use_the_configured_metric(metric):
    """callbacks.amoc.metric: each candidate's target score is that metric (sklearn) of its
    argmax predictions on the target's labelled test split."""
    from sklearn.metrics import accuracy_score, f1_score

    scorer = {"accuracy": accuracy_score,
              "macro_f1": lambda y, p: f1_score(y, p, average="macro")}[metric]
    base = _wide_base()
    table = _search_table(base, metric)
    assert set(table["metric"]) == {metric}
    pairs = []
    for layer in range(4):
        candidate = _without(base, layer)
        for target in ("x", "y"):
            batch = collate(_rows(f"{target}_test", 16))
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                preds = candidate(**inputs).logits.argmax(-1).tolist()
            gold = batch["labels"].tolist()
            pairs.append((gold, preds))
            row = table[(table["target"] == target) & (table["removed"] == str(layer))]
            assert row["target_score"].item() == pytest.approx(scorer(gold, preds), abs=1e-6)
    # the two metrics disagree on this data (so the key matters to the check)
    assert any(abs(accuracy_score(g, p) - f1_score(g, p, average="macro")) > 0.01
               for g, p in pairs)
