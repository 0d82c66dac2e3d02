"""The amoc stage end to end on the tiny offline config, then the report command."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lmcompress.amoc.features import CANDIDATE_FEATURES, OUTCOMES, PAIR_FEATURES
from lmcompress.report.__main__ import main as report_main
from lmcompress.run import run_stage


def test_amoc_stage_writes_candidates_and_selection_then_the_report(make_cfg, tmp_path):
    cfg = make_cfg("amoc_tiny", "task=tiny_electronics", "trainer.max_epochs=3",
                   "callbacks.amoc.independent_subset=1")
    result = run_stage(cfg)
    out = tmp_path / "run0_amoc_tiny" / "amoc"
    assert result["export_dir"]
    table = pd.read_csv(out / "candidates.csv", dtype={"removed": str})
    indicators = [f"removed_{i}" for i in range(4)]
    columns = list(table.columns)
    assert columns[:4] == ["source", "target", "removed", "rule"]
    assert columns[4:4 + 12] == [*CANDIDATE_FEATURES, *PAIR_FEATURES, *indicators]
    assert columns[16:16 + len(OUTCOMES)] == list(OUTCOMES)
    assert len(table) == 14 * 2 and set(table["target"]) == {"restaurant", "movies"}
    assert set(table["source"]) == {"electronics"} and set(table["rule"]) == {"official"}
    assert table[[*CANDIDATE_FEATURES, *PAIR_FEATURES, "target_score"]].notna().all().all()

    selection = json.loads((out / "selection.json").read_text())
    assert selection["targets"] == ["movies", "restaurant"] and selection["budgets"] == [1, 2, 3]
    assert len(selection["selections"]) == 2 * 3
    assert set(selection["regressions"]) == {"electronics->movies", "electronics->restaurant"}
    for entry in selection["selections"]:
        fit = selection["regressions"][f"electronics->{entry['target']}"]
        assert ("refused" in fit) == (entry["amoc"] is None)
        # oracle = the best true score of that target and budget, random = their mean (read
        # from candidates.csv, not from the selection's own arithmetic)
        group = table[(table["target"] == entry["target"])
                      & (table["n_removed"] == entry["k"])]["target_score"]
        assert entry["oracle"]["target_score"] == pytest.approx(group.max())
        assert entry["random"]["target_score"] == pytest.approx(group.mean())
        assert entry["oracle"]["removed"] in set(
            table.loc[group[group == group.max()].index, "removed"])
    timing = selection["timing"]
    assert timing["candidates"] == 14 and timing["search_s"] > 0
    assert timing["independent"]["candidates"] == 1
    assert timing["independent"]["max_abs_prob_diff"] < 1e-5  # cached == independent path
    bound = timing["independent"]["bound"]
    assert 1.0 <= bound["train"] <= bound["eval"]

    # the one report command finds the AMoC run under tmp_path and makes the AMoC report
    assert report_main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "results.md").read_text()
    assert "electronics → movies" in text and "## Regression" in text
    assert f"{bound['train']:.2f}–{bound['eval']:.2f}×" in text  # the cost table's bound column
    assert "Left out" not in text  # the run's own table is complete (rows match selection.json)
    assert (tmp_path / "report" / "predicted_vs_actual.png").stat().st_size > 0
    assert (tmp_path / "report" / "ate_vs_drop.png").is_file()
    cut = tmp_path / "copy" / "amoc"  # a copy of the table cut short: named, not read in part
    cut.mkdir(parents=True)
    (cut / "candidates.csv").write_text((out / "candidates.csv").read_text()[:-20])
    assert report_main([str(tmp_path), "--out", str(tmp_path / "report2")]) == 0
    assert (f"Left out (incomplete): {cut / 'candidates.csv'}: truncated"
            in (tmp_path / "report2" / "results.md").read_text())


def test_unknown_target_is_refused_before_training(make_cfg, tmp_path):
    import pytest

    cfg = make_cfg("amoc_tiny", "task=tiny_electronics", "callbacks.amoc.targets=[nowhere]")
    with pytest.raises(ValueError, match="AMoC target 'nowhere'"):
        run_stage(cfg)
    assert not list(tmp_path.glob("**/*.ckpt")) and not list(tmp_path.glob("**/metrics.json"))


def test_chosen_candidates_are_fully_fine_tuned_and_reported(make_cfg, tmp_path):
    # budgets 1-3 (budget 1 alone gives each held-out fit 4 rows, 1 other target x 4
    # candidates, for 12 features: refused) and 3 epochs (after 1 the toy model predicts one
    # class, its target score is constant: refused too)
    cfg = make_cfg("amoc_tiny", "task=tiny_electronics", "trainer.max_epochs=3",
                   "callbacks.amoc.finetune={epochs: 1, methods: [amoc, oracle]}")
    run_stage(cfg)
    selection = json.loads((tmp_path / "run0_amoc_tiny" / "amoc" / "selection.json").read_text())
    entries = selection["selections"]
    chosen = {e[m]["removed"] for e in entries for m in ("amoc", "oracle") if e.get(m)}
    assert set(selection["timing"]["finetuned"]) == chosen  # each distinct choice trained once
    for entry in entries:
        for method in ("amoc", "oracle"):
            if entry.get(method):
                assert 0.0 <= entry[method]["finetuned_score"] <= 1.0
        assert "finetuned_score" not in (entry.get("top") or {})  # only the listed methods
    assert selection["summary"]["oracle_finetuned"]["n"] == len(entries)
    assert report_main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "results.md").read_text()
    assert "## Chosen candidates, fully fine-tuned" in text


def test_full_fine_tune_trains_every_remaining_part_and_refuses_a_mean():
    import pytest
    from transformers import BertConfig, BertForSequenceClassification

    from lmcompress.amoc.candidates import Candidate
    from lmcompress.amoc.finetune import FinetuneSpec, full_trainable
    from lmcompress.specs import SpecError, parse

    base = BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=32, num_labels=2))
    base.requires_grad_(False)
    model = full_trainable(base, Candidate((1, 2)), 4)
    assert len(model.bert.encoder.layer) == 2
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(SpecError, match=r"callbacks.amoc.finetune.methods=\['random'\]"):
        parse(FinetuneSpec, {"methods": ["random"]}, "callbacks.amoc.finetune")
