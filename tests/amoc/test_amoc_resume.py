"""An AMoC search killed mid-way resumes at its first unfinished candidate; a search that cannot
choose fails its stage (before training when the regression is bound to be refused)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from amoc_fixtures import collate, examples, tiny_model

from lmcompress.amoc.progress import CandidateStore
from lmcompress.amoc.regression import RegressionSpec
from lmcompress.amoc.search import Search, SearchData
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.select import check_selectable
from lmcompress.run import run_stage
from lmcompress.specs import parse

TIMING = ["train_seconds", "seconds"]  # wall-clock columns: the only ones a resume may change


def _data() -> SearchData:
    def loader(n: int, seed: int, labels: bool = True):
        return lambda: (examples(n, seed, labels=labels), collate)

    return SearchData(source="src", kind="classification", train=loader(16, 0), dev=loader(8, 1),
                      test=loader(8, 2), special_ids=[0, 2, 3],
                      targets={t: (loader(8, 3 + i, labels=False), loader(8, 5 + i))
                               for i, t in enumerate(("x", "y"))})


def _spec(**train) -> SearchSpec:
    return parse(SearchSpec, {"budgets": [1, 2], "eval_batch_size": 8,
                              "train": {"batch_size": 8, **train}}, "callbacks.amoc")


class Killed(Exception):
    pass


FIT = Search.fit


def _counting_fit(monkeypatch, fitted: list[str], die_after: int | None = None):
    fit = FIT

    def counted(self, candidate):
        if die_after is not None and len(fitted) == die_after:
            raise Killed
        fitted.append(candidate.name)
        return fit(self, candidate)

    monkeypatch.setattr(Search, "fit", counted)


def test_killed_search_resumes_at_the_first_unfinished_candidate(monkeypatch, tmp_path):
    straight = Search(tiny_model("mix"), _data(), _spec()).run()
    names = [c.name for c in Search(tiny_model("mix"), _data(), _spec()).candidates]
    store = tmp_path / "progress"
    fitted: list[str] = []
    _counting_fit(monkeypatch, fitted, die_after=3)
    with pytest.raises(Killed):
        Search(tiny_model("mix"), _data(), _spec(), CandidateStore(store, {"run": 1})).run()
    assert fitted == names[:3] and len(list(store.glob("*.pt"))) == 3

    fitted.clear()
    _counting_fit(monkeypatch, fitted)
    again = CandidateStore(store, {"run": 1})
    resumed = Search(tiny_model("mix"), _data(), _spec(), again).run()
    assert fitted == names[3:] and again.reused == 3  # finished rows kept, the rest fitted
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING), straight.drop(columns=TIMING))


@pytest.mark.parametrize("change", ["train", "base", "run", "precision", "bf16_before_fix"])
def test_stored_candidates_of_another_config_are_fitted_again(monkeypatch, tmp_path, change):
    store = tmp_path / "progress"
    first = _spec()
    if change == "bf16_before_fix":  # stored under the old key: trained on stale bf16 casts
        first.precision = "bf16"
        monkeypatch.setattr("lmcompress.amoc.search.STORE_PRECISION", {"bf16": "bf16"})
    Search(tiny_model("mix"), _data(), first, CandidateStore(store, {"run": 1})).run()
    monkeypatch.undo()
    fitted: list[str] = []
    _counting_fit(monkeypatch, fitted)
    spec = _spec(lr=5e-4) if change == "train" else _spec()
    if change in ("precision", "bf16_before_fix"):
        spec.precision = "bf16"
    base = tiny_model("mix", seed=1 if change == "base" else 0)
    again = CandidateStore(store, {"run": 2 if change == "run" else 1})
    Search(base, _data(), spec, again).run()
    assert again.reused == 0 and len(fitted) == 10  # 4 + 6 candidates, none reused


def test_a_regression_bound_to_be_refused_is_refused_before_training():
    spec = RegressionSpec()
    with pytest.raises(ValueError, match=r"get 4 rows \(2 targets - 1 x 4 candidates\) for 12 "
                                         r"offered features.*callbacks.amoc.features_only"):
        check_selectable(4, 2, 4, spec)
    with pytest.raises(ValueError, match="get 0 rows"):
        check_selectable(4, 1, 14, spec)  # one target: its fit has no other pair to learn from
    check_selectable(4, 2, 14, spec)  # 14 rows >= 4 + 3 + 4 indicator features
    check_selectable(4, 2, 4, RegressionSpec(features=["ate_target", "source_score"]))


def test_stage_refuses_too_few_rows_before_training_unless_features_only(make_cfg, tmp_path):
    cfg = make_cfg("amoc_tiny", "callbacks.amoc.budgets=[1]")
    with pytest.raises(ValueError, match="AMoC could choose nothing"):
        run_stage(cfg)
    assert not list(tmp_path.glob("**/*.ckpt")) and not list(tmp_path.glob("**/metrics.json"))
    assert json.loads((tmp_path / "run0_amoc_tiny" / "status.json").read_text())["status"] == \
        "failed"

    result = run_stage(make_cfg("amoc_tiny", "callbacks.amoc.budgets=[1]",
                                "callbacks.amoc.features_only=true"))
    selection = json.loads((tmp_path / "run1_amoc_tiny" / "amoc" / "selection.json").read_text())
    assert result["status"] == "ok" and selection["features_only"] is True
    assert all(entry["amoc"] is None for entry in selection["selections"])


def test_a_search_that_chooses_nothing_fails_then_resumes_as_features_only(make_cfg, tmp_path):
    # after 1 epoch the toy model predicts one class on every target: each held-out fit's
    # response is constant and refused, so AMoC chooses nothing
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError, match="AMoC selected nothing for 6 of 6 .*is constant"):
        run_stage(make_cfg("amoc_tiny", run_dir=run_dir))
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "AMoC selected nothing" in status["reason"]
    assert not (run_dir / "metrics.json").exists()
    selection = json.loads((run_dir / "amoc" / "selection.json").read_text())
    assert len(selection["unselected"]) == 6
    assert len(list((run_dir / "amoc" / "progress").glob("*.pt"))) == 14  # kept for a re-run

    result = run_stage(make_cfg("amoc_tiny", "callbacks.amoc.features_only=true",
                                run_dir=run_dir))
    selection = json.loads((run_dir / "amoc" / "selection.json").read_text())
    assert result["status"] == "ok" and result["resumed_from"]
    assert selection["timing"]["reused"] == 14 and selection["unselected"] == []
    assert not (run_dir / "amoc" / "progress").exists()  # cleared once the results are written
