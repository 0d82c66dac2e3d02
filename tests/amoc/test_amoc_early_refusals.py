"""AMoC options are checked against the model before the first training step, not after the base
fine-tune or the search (``candidates.check_search``, ``AMoCCallback.on_fit_start``)."""

from __future__ import annotations

import pytest

from lmcompress.amoc.candidates import check_search
from lmcompress.modules.base import TaskModule
from lmcompress.run import run_stage

FIXED = ("ate_target", "n_removed")


@pytest.mark.parametrize("options, message", [
    ({"budgets": [1, 10]}, r"budgets: cannot remove 10 of 4 layers \(each budget must be in 1..3"),
    ({"budgets": []}, r"budgets is empty"),
    ({"patterns": ["top", "middle"]}, r"patterns: unknown layer-dropping pattern 'middle'"),
    ({"rule": "some"}, r"trainable='some'"),
    ({"per_budget": 0}, r"sample_per_budget=0: must be >= 1"),
    ({"features": ["ate_target", "removed_7"]},
     r"features: 'removed_7': layer 7 does not exist: the model has layers 0..3"),
    ({"features": ["ate_targte"]}, r"features: 'ate_targte': choose from"),
])
def test_each_search_option_is_checked_against_the_layer_count(options, message):
    good = {"budgets": [1, 2, 3], "patterns": ["top", "bottom", "alternate"],
            "rule": "official", "per_budget": None, "features": ["n_removed", "removed_3"]}
    check_search(4, **good, fixed_features=FIXED)  # every good value passes
    with pytest.raises(ValueError, match=message):
        check_search(4, **{**good, **options}, fixed_features=FIXED)


@pytest.fixture
def steps(monkeypatch):
    """Counts training steps taken by any task module."""
    taken = []
    original = TaskModule.training_step

    def counted(self, batch, batch_idx):
        taken.append(batch_idx)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(TaskModule, "training_step", counted)
    return taken


@pytest.mark.parametrize("override, message", [
    ("callbacks.amoc.budgets=[1,10]", "cannot remove 10 of 4 layers"),
    ("callbacks.amoc.patterns=[top,middle]", "unknown layer-dropping pattern 'middle'"),
    ("callbacks.amoc.regression.features=[removed_7]", "layer 7 does not exist"),
    ("callbacks.amoc.metric=bleu", "bleu"),
])
def test_a_bad_amoc_option_stops_the_run_before_the_first_training_step(
        make_cfg, tmp_path, steps, override, message):
    cfg = make_cfg("amoc_tiny", "task=tiny_electronics", "trainer.max_epochs=1", override)
    with pytest.raises(ValueError, match=message):
        run_stage(cfg)
    assert steps == []  # no base fine-tune step, let alone a search
    assert not list(tmp_path.glob("**/*.ckpt")) and not list(tmp_path.glob("**/candidates.csv"))
