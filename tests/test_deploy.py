"""python -m lmcompress.deploy: model cards, variants and their parity, refusals, budget choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from lmcompress.deploy import budget, card, variants
from lmcompress.deploy.__main__ import main
from lmcompress.deploy.pipeline import deploy
from lmcompress.models.hub import resolve_model_path
from lmcompress.utils.latency import timing_batch

TEACHER = {"name_or_path": "some/teacher", "sha256": "ab" * 32}


def tiny_bert(layers: int = 2, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=64, num_labels=2)).eval()


def make_export(folder: Path, cfg, layers: int = 2, dev: float = 0.5, seed: int = 0) -> Path:
    """A saved tiny model with the card and record a stage would write."""
    tiny_bert(layers, seed).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("embedded:minilm-l6")).save_pretrained(folder)
    result = {"task": cfg.task.name, "seed": 1, "teacher": TEACHER, "export_dir": str(folder),
              "val": {"val/accuracy": dev}, "test": {"test/accuracy": 0.25},
              "model": {"params_total": 123}}
    card.write_cards(result, cfg)
    return folder


def test_card_and_record(make_cfg, tmp_path):
    cfg = make_cfg("teacher")
    folder = make_export(tmp_path / "export", cfg, dev=0.75)
    text = (folder / "README.md").read_text()
    assert "tiny" in text and "0.7500" in text and "ab" * 32 in text and "123" in text
    assert "trust_remote_code=True" in text and "negative, positive" in text
    rec = card.read_record(folder)
    assert rec["task_config"]["source"]["_target_"].endswith("SyntheticSource")
    assert rec["val"] == {"accuracy": 0.75} and rec["teacher"] == TEACHER


def test_variants_match_eager_on_other_shapes(tmp_path):
    model = tiny_bert()
    sample = timing_batch(1, 16, 30522)
    built, skipped = variants.build(model, tmp_path, tmp_path / "v", sample, threads=1)
    assert not skipped and set(built) == set(variants.VARIANTS)
    other = timing_batch(5, 24, 30522)  # not the exported / traced shape: dynamic axes
    with torch.no_grad():
        ref = model(**other)[0]
    for name, v in built.items():
        err = (v.run(other) - ref).abs().max().item()
        assert err < (1e-4 if name in ("fp32_eager", "torchscript", "onnx_fp32") else 0.05), name
        assert v.size_bytes() > 0
    assert built["onnx_int8"].size_bytes() < built["onnx_fp32"].size_bytes()


def test_onnx_skipped_with_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(variants, "onnx_missing", lambda: "onnx not installed (pip install x)")
    built, skipped = variants.build(tiny_bert(), tmp_path, tmp_path / "v",
                                    timing_batch(1, 8, 30522), 1, ("fp32_eager", "onnx_int8"))
    assert set(built) == {"fp32_eager"} and "not installed" in skipped["onnx_int8"]


def test_refuses_non_export_folder(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not an lmcompress export folder" in err
    assert not (tmp_path / "o").exists()


def test_refuses_unknown_task(make_cfg, tmp_path, capsys):
    folder = make_export(tmp_path / "export", make_cfg("teacher"))
    rec = json.loads((folder / card.RECORD).read_text())
    rec["task_config"]["source"]["_target_"] = "lmcompress.data.nowhere.Source"
    (folder / card.RECORD).write_text(json.dumps(rec))
    assert main([str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(folder) in err and "cannot be loaded" in err


@pytest.mark.slow  # ~25 s: tokenizes the tiny task, builds and times variants
def test_deploy_table_evaluates_dev_split(make_cfg, tmp_path):
    cfg = make_cfg("teacher")
    base = make_export(tmp_path / "teacher", cfg, layers=2)
    small = make_export(tmp_path / "student", cfg, layers=1, seed=3)
    res = deploy([small], tmp_path / "o", base, [1, 4], [1], seq=16, repeats=1,
                 wanted=("fp32_eager", "torch_int8"))
    rows = {(r["model"], r["variant"]): r for r in res["rows"]}
    assert set(rows) == {("baseline", "fp32_eager"), (str(small), "fp32_eager"),
                         (str(small), "torch_int8")}
    # the dev metric is the record's task (tiny: 32 dev examples), scored by this model
    model = tiny_bert(1, 3)
    from lmcompress.deploy.evaluate import datamodule, dev_metric
    data = datamodule(card.read_record(small), str(small))
    expected = dev_metric(lambda b: model(**{k: b[k] for k in ("input_ids", "attention_mask",
                                                                "token_type_ids")})[0],
                          data, card.read_record(small))["accuracy"]
    assert rows[(str(small), "fp32_eager")]["dev"] == pytest.approx(expected)
    assert len(data.features(data.val_split)) == 32
    lat = rows[(str(small), "torch_int8")]["latency"]["b4_t1"]
    assert lat["ms"] > 0 and lat["speedup_vs_baseline"] > 0


def test_budget_picks_most_accurate_within_budget(make_cfg, tmp_path):
    cfg = make_cfg("teacher")
    for name, layers, dev in (("w1.00_d1.00", 2, 0.9), ("w0.50_d0.50", 1, 0.6)):
        make_export(tmp_path / "run" / "export" / name, cfg, layers=layers, dev=dev)
    res = budget.choose(tmp_path / "run", 1e9, batch=1, seq=8, repeats=3, threads=1)
    assert res["chosen"] == "w1.00_d1.00" and res["check_meets_budget"] is True
    assert set(res["subnets"]) == {"w1.00_d1.00", "w0.50_d0.50"}
    assert budget.choose(tmp_path / "run", 0.0, 1, 8, 1, 1)["chosen"] is None
    with pytest.raises(ValueError, match="no exported sub-networks"):
        budget.grid_folders(tmp_path)


@pytest.mark.slow  # a 4-step recipe in subprocesses (~3 min on 2 busy cores)
def test_recipe_chain_ends_with_the_deploy_table(tmp_path):
    import os
    import subprocess
    import sys

    from helpers.cli import OFFLINE_ENV, REPO

    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "lmcompress.recipe",
                           str(REPO / "recipes" / "deploy_tiny.yaml"), "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "deploy" / "deploy.json").read_text())
    rows = {(Path(r["model"]).name, r["variant"]) for r in res["rows"]}
    # the teacher as baseline, every variant of the head-sliced sub-network and of the student
    assert ("baseline", "fp32_eager") in rows and len(rows) == 1 + 2 * len(variants.VARIANTS)
    assert ("w0.50_d1.00", "onnx_int8") in rows
    assert all(r["dev"] is not None for r in res["rows"])
    assert "fastest at batch 4" in (tmp_path / "deploy" / "deploy.md").read_text()
