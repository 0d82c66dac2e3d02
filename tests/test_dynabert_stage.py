"""The dynabert stage at tiny scale: width phase -> width x depth phase through the export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import lmcompress  # noqa: F401  (registers the sliced-BERT classes with the Auto API)
from helpers.spy import SPY, Spy
from lmcompress.losses import Objective
from lmcompress.run import run_stage
from lmcompress.utils.instantiate import instantiate_plain

TINY_DYNA = ["teacher=tiny", "teacher.config.num_attention_heads=4", "data.batch_size=16"]


@pytest.mark.slow
def test_width_then_width_depth_chained_by_path(make_cfg):
    width = run_stage(make_cfg("dynabert", *TINY_DYNA))
    assert set(width["submodels"]) == {f"w{w:.2f}_d1.00" for w in (1.0, 0.75, 0.5, 0.25)}
    full = width["submodels"]["w1.00_d1.00"]["export_dir"]
    cfg = make_cfg("dynabert", "data.batch_size=16", "phase=width_depth", "teacher=path",
                   f"teacher.name_or_path={full}", "teacher.tokenizer=embedded:minilm-l6",
                   "loss=dynabert_ckd")
    grid = run_stage(cfg)
    assert len(grid["submodels"]) == 12 and grid["teacher"]["name_or_path"] == full
    assert set(grid["val"]) >= {"val/accuracy", "val/accuracy/w0.25_d0.50"}
    entry = grid["submodels"]["w0.25_d0.50"]
    assert entry["val"]["val/accuracy"] == grid["val"]["val/accuracy/w0.25_d0.50"]
    smallest = AutoModelForSequenceClassification.from_pretrained(entry["export_dir"])
    assert smallest.config.num_hidden_layers == 1
    assert entry["model"]["params_total"] < grid["submodels"]["w1.00_d1.00"]["model"][
        "params_total"]
    logged = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    assert "train/loss/w0.25_d0.50" in logged


def test_sub_networks_cut_from_the_rewired_teacher_without_training(make_cfg):
    cfg = make_cfg("dynabert", *TINY_DYNA, "fit=false", "module.depths=[1.0,0.5]",
                   "module.widths=[1.0,0.5]",
                   "latency={length: 16, batch_sizes: [1, 2], repeats: 1}", SPY)
    result = run_stage(cfg)
    assert result["global_step"] == 0 and len(result["submodels"]) == 4
    for entry in result["submodels"].values():  # measured, for the report's latency plots
        assert entry["model"]["latency_ms_b1"] > 0 and entry["model"]["latency_ms_b2"] > 0
    module = Spy.last().module  # the module the run used (its student was rewired)
    assert module.rewired and module.train_grid == [(1.0, 1.0), (0.5, 1.0)]


@pytest.mark.parametrize(("override", "message"), [
    ("module.widths=[0.1]", "0 of 4 attention heads"),
    ("module.widths=[1.5]", r"\(0, 1\]"),
    ("module.depths=[0.1]", "layers"),
    ("module.phase=depth", "module.phase='depth'"),
])
def test_bad_grids_are_refused_before_training(make_cfg, override, message):
    with pytest.raises(ValueError, match=message):
        instantiate_plain(make_cfg("dynabert", *TINY_DYNA, override).module)


def test_the_full_sub_network_of_a_fresh_module_is_the_teacher(make_cfg):
    module = instantiate_plain(make_cfg("dynabert", *TINY_DYNA).module).eval()
    batch = {"input_ids": torch.tensor([[101, 2204, 3185, 102]]),
             "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with module.subnet("w1.00_d1.00"), torch.no_grad():
        torch.testing.assert_close(module(batch).logits, module.teacher(**batch).logits)


@pytest.mark.parametrize(("overrides", "weights"), [
    ([], {"kd": 1.0, "hidden_mse": 0.1}),                        # dynabert_w
    (["phase=width_depth"], {"kd": 1.0, "hidden_mse": 1.0}),     # dynabert_wd, not width's λ
    (["phase=width_depth", "loss=kd"], {"task": 0.1, "kd": 0.9}),  # an explicit loss wins
    (["experiment=dynabert_sst2_cpu_wd", "loss=dynabert_ckd"],
     {"task": 1.0, "kd": 1.0, "wr_pair": 1.0, "wr_triple": 10.0, "ltr_pair": 1.0,
      "ltr_triple": 10.0}),
])
def test_each_phase_selects_its_own_objective_unless_a_loss_is_given(make_cfg, overrides,
                                                                      weights):
    cfg = make_cfg("dynabert", *TINY_DYNA, *overrides)
    assert Objective.from_config(cfg.loss).weights == weights
