"""The teacher stage end to end at tiny scale: fit, best checkpoint, metrics.json, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from lmcompress.run import run_stage


def test_teacher_tiny_end_to_end(make_cfg, tmp_path):
    cfg = make_cfg("teacher", "trainer.max_epochs=2")
    result = run_stage(cfg)
    out = Path(cfg.paths.output_dir)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["val"] == result["val"]
    assert set(on_disk["val"]) >= {"val/accuracy"} and set(on_disk["test"]) >= {"test/accuracy"}
    assert 0.0 <= on_disk["val"]["val/accuracy"] <= 1.0
    assert on_disk["global_step"] == 2 * 4  # 64 examples / batch 16 = 4 steps per epoch
    assert Path(on_disk["best_checkpoint"]).is_file()
    assert on_disk["model"]["num_layers"] == 2 and on_disk["model"]["params_total"] > 0
    # the export reloads with the Auto class and reproduces the module's predictions
    model = AutoModelForSequenceClassification.from_pretrained(on_disk["export_dir"])
    batch = {"input_ids": torch.tensor([[101, 2204, 3185, 102]]),
             "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    ckpt = torch.load(on_disk["best_checkpoint"], map_location="cpu", weights_only=False)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    reference = AutoModelForSequenceClassification.from_config(model.config)
    reference.load_state_dict(state, strict=False)
    model.eval(), reference.eval()
    torch.testing.assert_close(model(**batch).logits, reference(**batch).logits)
    csv_metrics = (out / "csv" / "metrics.csv").read_text()
    assert "train/loss" in csv_metrics and "model/params_total" in csv_metrics


def test_token_classification_tiny(make_cfg, tmp_path):
    lines = []
    tags = ["DET", "NOUN", "VERB", "PUNCT"]
    for i in range(24):
        words = ["the", f"dog{i % 5}", "runs", "."]
        lines += [f"# sent_id = s{i}"] + [
            f"{j + 1}\t{w}\t{w}\t{t}\t_\t_\t0\t_\t_\t_"
            for j, (w, t) in enumerate(zip(words, tags, strict=True))
        ] + [""]
    for split in ("train", "dev", "test"):
        (tmp_path / "ud" / split).mkdir(parents=True, exist_ok=True)
        (tmp_path / "ud" / split / "answers.conllu").write_text("\n".join(lines))
    cfg = make_cfg("teacher", "task=ud_ewt/answers", f"task.source.data_dir={tmp_path}/ud",
                   "trainer.max_epochs=1")
    result = run_stage(cfg)
    assert 0.0 <= result["val"]["val/token_accuracy"] <= 1.0
    model = AutoModelForTokenClassification.from_pretrained(result["export_dir"])
    assert model.config.num_labels == 17


def _sklearn_metric(name, preds, target):
    """The metric by scipy / scikit-learn, not by lmcompress.metrics."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    return {"spearman": lambda: spearmanr(preds, target).statistic,
            "pearson": lambda: pearsonr(preds, target).statistic,
            "f1": lambda: f1_score(target, preds),
            "matthews": lambda: matthews_corrcoef(target, preds)}[name]()


@pytest.mark.data
@pytest.mark.parametrize("task", ["glue/stsb", "glue/mrpc", "glue/cola"])
def test_glue_metrics_real_data(make_cfg, shared_data, task):
    """Regression head and F1/Matthews metrics on a slice of the real files, recomputed with
    scipy/sklearn from the exported model's own predictions on the same dev slice."""
    from lmcompress.utils.instantiate import instantiate_plain

    cfg = make_cfg("teacher", f"task={task}", "data.train_limit=32", "data.eval_limit=32",
                   "export=true", "test=false", "data.max_length=32")
    result = run_stage(cfg)
    name = cfg.task.main_metric
    model = AutoModelForSequenceClassification.from_pretrained(result["export_dir"]).eval()
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    datamodule.validate()
    preds, target = [], []
    with torch.no_grad():
        for batch in datamodule.eval_dataloader("validation"):
            logits = model(**{k: v for k, v in batch.items()
                              if k not in ("labels", "index")}).logits
            preds += (logits[:, 0] if task == "glue/stsb" else logits.argmax(-1)).tolist()
            target += batch["labels"].tolist()
    assert len(target) == 32
    expected = _sklearn_metric(name, preds, target)
    assert result["val"][f"val/{name}"] == pytest.approx(expected, abs=1e-5)
    if task == "glue/cola":  # dev is both halves; each half is scored too
        assert set(result["reports"]) == {"validation_in_domain", "validation_out_of_domain"}
        assert "validation_in_domain/matthews" in result["reports"]["validation_in_domain"]
