"""Stage general: task-agnostic CKD on a corpus, its export as the start of the task stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from transformers import AutoModel, AutoModelForSequenceClassification

from lmcompress.run import run_stage
from lmcompress.utils.instantiate import instantiate_plain
from lmcompress.utils.paths import conf_dir

SMALL = ["model@teacher=tiny", "student.num_layers=1", "module.allow_uninformative_ltr=true",
         "data.max_length=32", "data.batch_size=8", "data.val_blocks=8", "data.train_limit=32",
         "task=corpus/tiny"]


def test_general_trains_on_unlabelled_text_and_the_task_stages_start_from_it(make_cfg):
    cfg = make_cfg("general", *SMALL)
    result = run_stage(cfg)
    assert result["status"] == "ok" and result["main_metric"] == "val/loss"
    assert torch.isfinite(torch.tensor(result["val"]["val/loss"]))
    corpus = result["data_sizes"]["corpus"]
    assert corpus["texts_read"] == 600 and corpus["exclude_texts"] > 0
    logged = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    assert all(f"train/loss_{t}" in logged for t in ("wr_pair", "wr_triple", "ltr_pair"))
    export = result["export_dir"]
    encoder = AutoModel.from_pretrained(export)
    assert encoder.config.num_hidden_layers == 1
    # the task stages read it as a pretrained student: same encoder weights, a new head
    distill = make_cfg("distill", "teacher=tiny", "student=pretrained",
                       f"student.name_or_path={export}", "loss=kd_ckd",
                       "module.allow_uninformative_ltr=true", "data.train_limit=16")
    module = instantiate_plain(distill.module)
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(module.model.base_model.state_dict()[name], value)
    assert run_stage(distill)["status"] == "ok"
    classifier = AutoModelForSequenceClassification.from_pretrained(export, num_labels=2)
    assert classifier.config.num_hidden_layers == 1


def test_general_with_mlm_trains_the_students_masked_lm(make_cfg):
    cfg = make_cfg("general", *SMALL, "data.mlm_probability=0.15", "+loss.weights.mlm=1.0")
    module = instantiate_plain(cfg.module)
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    datamodule.validate()
    batch = next(iter(datamodule.train_dataloader()))
    assert (batch["mlm_labels"] != -100).any()
    total, parts = module.objective(module.term_inputs(batch))
    assert set(parts) == {"wr_pair", "wr_triple", "ltr_pair", "ltr_triple", "mlm"}
    assert parts["mlm"] > 5  # about ln(vocab) for a random head
    total.backward()
    assert module.model.get_output_embeddings().weight.grad is not None


@pytest.mark.parametrize("overrides, message", [
    (["+loss.weights.kd=1.0"], r"\['kd'\] need labels or task logits"),
    (["task=tiny"], r"task.kind=classification.*reads a corpus task"),
    (["+loss.weights.mlm=1.0"], r"loss.weights.mlm=1.0 with data.mlm_probability=0.0"),
    (["data.mlm_probability=0.15"], r"loss.weights.mlm=0 with data.mlm_probability=0.15"),
])
def test_general_refusals_name_the_key(make_cfg, overrides, message):
    cfg = make_cfg("general", *SMALL, *overrides)
    with pytest.raises(ValueError, match=message):
        module = instantiate_plain(cfg.module)
        datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
        datamodule.validate()
        module.objective(module.term_inputs(next(iter(datamodule.train_dataloader()))))


def test_a_labelled_stage_refuses_a_corpus_task(make_cfg):
    cfg = make_cfg("distill", "teacher=tiny", "student=tiny", "task=corpus/generated")
    with pytest.raises(ValueError, match=r"task.kind=corpus.*general stage \(-cn general\)"):
        instantiate_plain(cfg.module)


def test_teacher_without_mlm_head_is_refused_for_the_mlm_term(tmp_path):
    from lmcompress.models.general import build_general_teacher
    from lmcompress.specs import TeacherSpec

    AutoModel.from_config(_tiny_config()).save_pretrained(tmp_path / "enc")
    with pytest.raises(ValueError, match="has no MLM head"):
        build_general_teacher(TeacherSpec(name_or_path=str(tmp_path / "enc")), mlm=True)


def test_paper_scale_config_composes():
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("general", overrides=["experiment=general_paper"])
    GlobalHydra.instance().clear()
    assert cfg.teacher.name_or_path == "bert-base-uncased" and cfg.student.num_layers == 6
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.task.source.hf_datasets[0].path == "wikimedia/wikipedia"
    assert json.loads(json.dumps(list(cfg.task.source.exclude[0].splits))) == ["validation"]
    source = instantiate_plain(cfg.task.source)  # builds without reading anything
    assert source.kind == "corpus"


def _tiny_config():
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=64)


@pytest.mark.slow
def test_general_under_ddp_trains_every_parameter_it_owns(tmp_path):
    # no term reads the pooler: it is frozen, or DDP stops at step 1 with unused parameters
    from helpers.cli import run_cli

    out = tmp_path / "ddp"
    done = run_cli("-cn", "general", *SMALL, "hardware=ddp_sim", "logger=csv",
                   "data.val_blocks=9", f"paths.log_dir={tmp_path}", f"hydra.run.dir={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "metrics.json").read_text())
    assert result["world_size"] == 2 and result["global_step"] == 12  # 32 blocks / 8 x 3 epochs


def test_cpu_scale_general_config_composes_with_its_budget():
    GlobalHydra.instance().clear()
    folder = Path(__file__).parents[1] / "sweeps" / "general_ckd_cpu"
    with initialize_config_dir(str(folder), version_base="1.3"):
        cfg = compose("general_cpu")
    GlobalHydra.instance().clear()
    assert cfg.task.name == "corpus_shared_cpu" and cfg.trainer.max_steps == 1200
    # the budget is the steps (an epoch limit cut it to 733), evaluated at 400, 800 and 1,200
    assert cfg.trainer.max_epochs == -1 and cfg.trainer.check_val_every_n_epoch is None
    assert cfg.trainer.max_steps % cfg.trainer.val_check_interval == 0
    assert cfg.publish_as == "general_cpu_w384" and cfg.student.num_layers == 3
    excluded = [(e.source.task, list(e.splits)) for e in cfg.task.source.exclude]
    assert ("mrpc", ["validation", "test"]) in excluded and ("sst2", ["validation"]) in excluded


@pytest.mark.parametrize("stage, overrides", [("general", SMALL),
                                              ("teacher", ["data.batch_size=8"])])
def test_a_step_budget_the_epoch_limit_stops_short_of_is_refused(make_cfg, stage, overrides):
    # Lightning stops at whichever limit comes first: max_epochs=1 silently cut a 1,200-step
    # general budget to the corpus's 733 batches
    cfg = make_cfg(stage, *overrides, "trainer.max_epochs=1", "trainer.max_steps=100000")
    with pytest.raises(ValueError, match=r"trainer.max_steps=100000 is never reached: "
                                         r"trainer.max_epochs=1 x \d+ optimizer steps per epoch"):
        run_stage(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_with_max_epochs_minus_one_the_step_budget_runs_past_an_epoch(make_cfg):
    cfg = make_cfg("general", *SMALL, "trainer.max_epochs=-1", "trainer.max_steps=7", "test=false")
    result = run_stage(cfg)
    assert result["global_step"] == 7 and result["epochs_completed"] >= 1
