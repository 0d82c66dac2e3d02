"""Faults that once ended in exit 0 and a normal-looking metrics.json: each must now fail clearly,
at or before the fault, naming the culprit, and leave no metrics.json and no export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig

from helpers.cli import TINY, run_cli
from lmcompress.losses import Objective


def _fails(tmp_path: Path, *overrides: str, expect: list[str], stage: str = "teacher") -> str:
    base = TINY if stage == "teacher" else [o for o in TINY if not o.startswith("model=")]
    proc = run_cli("-cn", stage, *base, f"paths.log_dir={tmp_path / 'out'}", *overrides,
                   timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-2000:]
    for needle in expect:
        assert needle in text, f"'{needle}' not in output:\n{text[-3000:]}"
    assert not list(tmp_path.glob("out/**/metrics.json"))
    assert not list(tmp_path.glob("out/**/export"))
    return text


@pytest.mark.slow
def test_non_finite_loss_stops_at_its_step_naming_the_term(tmp_path):
    text = _fails(tmp_path, "module.optim.lr=1e3", "trainer.max_epochs=3", "divergence=null",
                  expect=["NonFiniteLossError", "the loss is nan", "task=nan"])
    assert "step " in text


@pytest.mark.slow
@pytest.mark.parametrize("override", ["trainer.max_epochs=0", "trainer.max_steps=0",
                                      "trainer.limit_train_batches=0"])
def test_a_run_that_plans_no_optimizer_step_is_refused(tmp_path, override):
    _fails(tmp_path, override, expect=[override, "no optimizer step"])


@pytest.mark.slow
def test_task_label_count_must_agree_with_label_names_and_the_source(tmp_path):
    _fails(tmp_path, "task.num_labels=3", expect=["task.num_labels=3", "2 names"])
    _fails(tmp_path, "task.num_labels=3", "task.label_names=[a,b,c]",
           expect=["task.num_labels=3 but the data source has 2 labels"])


@pytest.mark.slow
def test_max_length_beyond_position_embeddings_names_both_numbers(tmp_path):
    _fails(tmp_path, "data.max_length=600", expect=["data.max_length=600", "512 position"])


def test_loss_options_are_checked_when_the_objective_is_built():
    base = {"weights": {"kd": 1.0, "wr_triple": 1.0}}
    cases = [({"ckd": {"window": 20}}, "loss.ckd.window=20"),
             ({"ckd": {"window": 0}}, "loss.ckd.window=0"),
             ({"ckd": {"distance": "manhattan"}}, "loss.ckd.distance='manhattan'"),
             ({"temperature": 0}, "loss.temperature=0"),
             ({"weights": {"kd": -0.5}}, "loss.weights.kd=-0.5")]
    for extra, needle in cases:
        with pytest.raises(ValueError, match=needle.replace(".", r"\.").replace("(", r"\(")):
            Objective.from_config({**base, **extra})


@pytest.mark.slow
def test_bad_loss_option_fails_before_training(tmp_path):
    text = _fails(tmp_path, "teacher=tiny", "student=tiny", "loss=kd_ckd", "loss.ckd.window=20",
                  stage="distill", expect=["loss.ckd.window=20"])
    assert "training:" not in text  # no optimizer step was planned or taken


def test_teacher_fine_tuned_on_another_label_set_is_refused(make_cfg, tmp_path):
    from lmcompress.utils.instantiate import instantiate_plain

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=2,
                        id2label={0: "not_equivalent", 1: "equivalent"},
                        label2id={"not_equivalent": 0, "equivalent": 1},
                        finetuning_task="glue_mrpc")
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "mrpc")
    cfg = make_cfg("distill", "teacher=path", f"teacher.name_or_path={tmp_path / 'mrpc'}",
                   "teacher.tokenizer=embedded:minilm-l6", "student=tiny", "loss=kd")
    with pytest.raises(ValueError, match=r"fine-tuned on 'glue_mrpc'.*trained with labels "
                                         r"\['not_equivalent', 'equivalent'\].*'tiny'"):
        instantiate_plain(cfg.module)


def _local_task(tmp_path: Path, train_rows: list[str], test_rows: list[str] | None = None):
    train = tmp_path / "train.tsv"
    train.write_text("\n".join(["text\tlabel", *train_rows]) + "\n")
    args = ["task=local", f"task.source.train={train}", f"task.source.validation={train}",
            "task.num_labels=2", "task.label_names=[neg,pos]"]
    if test_rows is not None:
        test = tmp_path / "test.tsv"
        test.write_text("\n".join(["text", *test_rows]) + "\n")
        args += [f"task.source.test={test}", "task.test_split=test"]
    return args


@pytest.mark.slow
def test_placeholder_label_in_a_labelled_split_names_file_and_line(tmp_path):
    args = _local_task(tmp_path, ["good movie\tpos", "bad movie\t-", "fine movie\tpos"])
    _fails(tmp_path, *args, expect=["train.tsv, line 3: no label"])


def test_label_less_test_split_runs_as_predictions_only(make_cfg, tmp_path):
    from lmcompress.run import run_stage

    rows = [f"{w} movie\t{y}" for w, y in [("good", "pos"), ("bad", "neg")] * 8]
    cfg = make_cfg("teacher", *_local_task(tmp_path, rows, ["great film", "awful film"]))
    result = run_stage(cfg)
    assert result["test"] == {}
    lines = Path(result["predictions"]).read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 3
    assert {line.split("\t")[1] for line in lines[1:]} <= {"neg", "pos"}


def test_distill_run_records_its_teachers_weights_and_publish_refuses_to_overwrite(
        make_cfg, tmp_path):
    from lmcompress.run import run_stage

    teacher = run_stage(make_cfg("teacher", "publish_as=tiny_teacher"))
    published = Path(teacher["published"])
    digest = json.dumps(sorted(p.name for p in published.iterdir()))
    cfg = make_cfg("distill", "teacher=path", f"teacher.name_or_path={published}",
                   "student=tiny", "loss=kd")
    result = run_stage(cfg)
    assert result["teacher"]["name_or_path"] == str(published.resolve())
    assert len(result["teacher"]["sha256"]) == 64
    again = make_cfg("teacher", "publish_as=tiny_teacher")
    with pytest.raises(FileExistsError, match="publish_as=tiny_teacher.*publish_overwrite=true"):
        run_stage(again)
    assert json.dumps(sorted(p.name for p in published.iterdir())) == digest
    assert not (Path(again.paths.output_dir) / "metrics.json").exists()
    replaced = run_stage(make_cfg("teacher", "publish_as=tiny_teacher", "publish_overwrite=true",
                                  "seed=3"))
    assert replaced["published"] == str(published)


@pytest.mark.slow
def test_configs_and_outputs_come_from_the_checkout_the_command_runs_in(tmp_path):
    other = tmp_path / "other_clone"
    (other / "conf").mkdir(parents=True)
    (other / "conf" / "base.yaml").write_text("task_name: x\n")
    (other / "pyproject.toml").write_text('[project]\nname = "lmcompress"\n')
    proc = run_cli("-cn", "teacher", *TINY, cwd=other, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"runs in the checkout {other}" in text and "pip install -e ." in text


@pytest.mark.slow
def test_progress_lines_show_dev_metrics_and_the_run_folder(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli("-cn", "teacher", *TINY, f"hydra.run.dir={run_dir}", "logger=csv")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-2000:]
    assert "dev: val/accuracy=" in text and f"run folder: {run_dir}" in text
    assert "Tip:" not in text and "LOAD REPORT" not in text


def test_strict_student_loading_refuses_missing_keys(make_cfg):
    from lmcompress.utils.instantiate import instantiate_plain

    module = instantiate_plain(make_cfg("distill", "teacher=tiny", "student=tiny",
                                        "loss=kd").module)
    state = {k: v for k, v in module.state_dict().items() if not k.startswith("teacher.")}
    module.check_state_keys(state)  # the frozen teacher is never saved: fine
    del state["model.classifier.weight"]
    with pytest.raises(KeyError, match="missing.*model.classifier.weight"):
        module.check_state_keys(state)
    with pytest.raises(KeyError, match="unexpected.*model.extra"):
        module.check_state_keys({**module.state_dict(), "model.extra": torch.zeros(1)})
