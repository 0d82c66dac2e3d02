"""The distill stage at tiny scale: students of other shapes, teacher chaining, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertTokenizer

from lmcompress.run import run_stage
from lmcompress.utils.checkpoints import CheckpointError
from lmcompress.utils.instantiate import instantiate_plain

TINY_DISTILL = ["teacher=tiny", "student=tiny", "loss=kd_ckd"]


def test_distill_student_of_other_width_and_depth_no_projection(make_cfg):
    cfg = make_cfg("distill", *TINY_DISTILL, "student.config.num_hidden_layers=1",
                   "teacher.config.num_hidden_layers=2", "module.allow_uninformative_ltr=false",
                   "loss.weights.ltr_pair=0", "loss.weights.ltr_triple=0")
    result = run_stage(cfg)
    assert result["model"]["hidden_size"] == 24 and result["model"]["num_layers"] == 1
    module = instantiate_plain(cfg.module)
    # nothing maps student space to teacher space: every parameter belongs to the student's HF model
    own = {n for n, _ in module.named_parameters() if not n.startswith("teacher.")}
    assert own == {f"model.{n}" for n, _ in module.model.named_parameters()}
    logged = (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").read_text()
    for term in ("task", "kd", "wr_pair", "wr_triple"):
        assert f"train/loss_{term}" in logged
    ckpt = torch.load(result["best_checkpoint"], map_location="cpu", weights_only=False)
    assert not any(k.startswith("teacher.") for k in ckpt["state_dict"])
    exported = AutoModelForSequenceClassification.from_pretrained(result["export_dir"])
    assert exported.config.hidden_size == 24


def test_distill_all_terms_finite_gradients(make_cfg):
    cfg = make_cfg("distill", *TINY_DISTILL)
    module = instantiate_plain(cfg.module)
    assert module.layer_map.teacher == [0, 1, 2] and module.layer_map.student == [0, 1, 2]
    batch = {"input_ids": torch.tensor([[101, 2204, 3185, 102, 0], [101, 2919, 102, 0, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]]),
             "labels": torch.tensor([1, 0])}
    module.train()
    assert not module.teacher.training  # the teacher stays in eval mode
    total, terms = module.objective(module.term_inputs(batch))
    assert set(terms) == {"task", "kd", "wr_pair", "wr_triple", "ltr_pair", "ltr_triple"}
    torch.testing.assert_close(total, sum(module.objective.weights[k] * v
                                          for k, v in terms.items()))
    total.backward()
    grads = [p.grad for p in module.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in module.teacher.parameters())


def _logged_losses(cfg):
    import pandas as pd

    table = pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv")
    columns = ["train/loss", *(f"train/loss_{t}" for t in ("kd", "wr_pair", "wr_triple",
                                                         "ltr_pair", "ltr_triple"))]
    return table.dropna(subset=["train/loss"]).set_index("step")[columns]


def test_distill_under_bf16_mixed_precision(make_cfg):
    """hardware=bf16_mixed (the GPU default of hardware=ddp), run on CPU: every logged loss
    term of the first steps matches the fp32 run from the same seed to bf16's precision."""
    steps = ["trainer.max_steps=3", "log_every_n_steps=1", "export=false", "test=false",
             "trainer.limit_val_batches=1"]
    bf16 = make_cfg("distill", *TINY_DISTILL, *steps, "hardware=bf16_mixed",
                    "trainer.accelerator=cpu")
    run_stage(bf16)
    fp32 = make_cfg("distill", *TINY_DISTILL, *steps)
    run_stage(fp32)
    low, full = _logged_losses(bf16), _logged_losses(fp32)
    assert list(low.index) == list(full.index) and len(low) == 3
    assert (low - full).abs().max().max() <= 0.03 * full.abs().max().max()
    # at the first step the weights are the same: each term within 2% of its fp32 value
    first = ((low.iloc[0] - full.iloc[0]).abs() / full.iloc[0].abs())
    assert (first <= 0.02).all(), first.to_dict()
    assert (low.iloc[0] != full.iloc[0]).any()  # bf16 autocast really ran


def test_student_from_teacher_layers_copies_weights(make_cfg):
    cfg = make_cfg("distill", "teacher=tiny", "student=teacher_layers", "student.num_layers=1",
                   "student.strategy=skip", "loss=kd")
    module = instantiate_plain(cfg.module)
    t_layer = module.teacher.bert.encoder.layer[1].state_dict()  # skip: 2 -> 1 keeps layer 1
    s_layer = module.model.bert.encoder.layer[0].state_dict()
    for key in t_layer:
        torch.testing.assert_close(s_layer[key], t_layer[key])


def test_coprime_depth_with_ltr_is_refused(make_cfg):
    cfg = make_cfg("distill", *TINY_DISTILL, "student.config.num_hidden_layers=1")
    with pytest.raises(ValueError, match="LTR terms carry no information"):
        instantiate_plain(cfg.module)
    cfg = make_cfg("distill", *TINY_DISTILL, "student.config.num_hidden_layers=1",
                   "module.allow_uninformative_ltr=true")
    with pytest.warns(UserWarning, match="no information"):
        instantiate_plain(cfg.module)


def test_layer_map_out_of_range_is_refused(make_cfg):
    cfg = make_cfg("distill", *TINY_DISTILL, "module.layer_map={teacher: [0, 5], student: [0, 2]}")
    with pytest.raises(IndexError, match="layer_map.teacher: index 5"):
        instantiate_plain(cfg.module)


def test_different_tokenizer_is_refused(make_cfg, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]) + "\n")
    student_dir = tmp_path / "other_student"
    BertTokenizer(str(vocab)).save_pretrained(student_dir)
    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(student_dir)
    cfg = make_cfg("distill", "teacher=tiny", "student=pretrained", "loss=kd",
                   f"student.name_or_path={student_dir}")
    with pytest.raises(ValueError, match="different tokenizers"):
        instantiate_plain(cfg.module)


@pytest.mark.slow
def test_teacher_then_distill_through_export(make_cfg, tmp_path):
    teacher = run_stage(make_cfg("teacher", "trainer.max_epochs=1"))
    cfg = make_cfg("distill", "teacher=path", f"teacher.name_or_path={teacher['export_dir']}",
                   "student=teacher_layers", "student.num_layers=1", "loss=kd",
                   "trainer.max_epochs=1")
    result = run_stage(cfg)
    assert result["model"]["num_layers"] == 1
    written = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert written["stage"] == "distill"


def test_resume_refuses_another_stages_checkpoint(make_cfg, tmp_path):
    run_dir = tmp_path / "shared_dir"
    run_stage(make_cfg("teacher", "trainer.max_steps=2", "test=false", "export=false",
                       run_dir=run_dir))
    cfg = make_cfg("distill", *TINY_DISTILL, run_dir=run_dir)
    with pytest.raises(CheckpointError, match="written by TeacherModule on task 'tiny'"):
        run_stage(cfg)
    assert not (run_dir / "metrics.json").read_text().count('"distill"')


def test_data_augment_reaches_the_distillation_stages_training_data(make_cfg):
    # the stage glue: data.augment -> the data module -> the batches the student trains on
    cfg = make_cfg("distill", "teacher=tiny", "student=tiny", "task.source.n_train=16",
                   "data.augment.n_copies=2", "data.augment.p=1.0", "test=false",
                   "trainer.max_epochs=1", "data.batch_size=8")
    result = run_stage(cfg)
    sizes = result["data_sizes"]
    assert sizes["train"] == 48 and sizes["augment"]["original"] == 16
    assert result["global_step"] == 6  # 48 examples / 8: the copies are trained on
