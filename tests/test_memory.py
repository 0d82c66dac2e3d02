"""Activation checkpointing (``*.gradient_checkpointing``) and the frozen teacher's eval mode."""

from __future__ import annotations

import warnings

import pytest
import torch

from lmcompress.models.hub import build_model
from lmcompress.models.memory import is_checkpointing, set_checkpointing
from lmcompress.run import run_stage
from lmcompress.specs import ModelSpec, TaskSpec
from lmcompress.utils.instantiate import instantiate_plain

TINY = {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32, "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0}


def _loss_and_grads(checkpointing: bool):
    torch.manual_seed(0)
    spec = ModelSpec(pretrained=False, config=dict(TINY), gradient_checkpointing=checkpointing)
    model = build_model(spec, TaskSpec(name="t", kind="classification", metrics=["accuracy"],
                                           main_metric="accuracy", num_labels=2)).train()
    ids = torch.randint(5, 50, (3, 7))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 1]))
    out.loss.backward()
    return model, out.loss, {n: p.grad for n, p in model.named_parameters()}


def test_checkpointing_recomputes_but_gives_the_same_loss_and_gradients():
    plain, loss, grads = _loss_and_grads(False)
    model, loss_ckpt, grads_ckpt = _loss_and_grads(True)
    assert is_checkpointing(model) and not is_checkpointing(plain)
    torch.testing.assert_close(loss_ckpt, loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_ckpt[name], grad, msg=name)


def test_checkpointing_is_refused_for_a_model_that_cannot():
    with pytest.raises(ValueError, match=r"student.gradient_checkpointing=true: Linear does not"):
        set_checkpointing(torch.nn.Linear(2, 2), True, "student")


def test_student_and_teacher_keys_reach_the_models(make_cfg):
    cfg = make_cfg("distill", "teacher=tiny", "student=tiny", "loss=kd",
                   "student.gradient_checkpointing=true")
    module = instantiate_plain(cfg.module)
    assert is_checkpointing(module.model) and not is_checkpointing(module.teacher)
    cfg = make_cfg("teacher", "model.gradient_checkpointing=true")
    assert is_checkpointing(instantiate_plain(cfg.module).model)


def test_the_frozen_teacher_raises_no_eval_mode_warning_but_a_stray_module_does(make_cfg):
    cfg = make_cfg("distill", "teacher=tiny", "student=tiny", "loss=kd", "test=false",
                   "export=false", "task.source.n_train=16",
                   "+callbacks.probe._target_=helpers.eval_probe.StudentClassifierEval")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        run_stage(cfg)
    messages = [str(w.message) for w in seen]
    assert not [m for m in messages if "in eval mode at the start of training." in m]
    ours = [m for m in messages if "outside the frozen teacher are in eval mode" in m]
    assert ours and "model.classifier" in ours[0] and "teacher" not in ours[0].split(":")[1]
