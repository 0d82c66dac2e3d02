"""Mixed precision on CPU: bf16 autocast against fp32, and GPU settings refused without CUDA.

Tolerances (bf16 keeps 8 bits of mantissa, a relative step of 2**-8 = 0.4%): the loss within 2%
of fp32's, the first step's update (the gradient: SGD's step, and the direction AdamW's first
step takes) with a cosine of at least 0.99 to fp32's and a norm within 5%.
"""

from __future__ import annotations

import pytest
import torch

from lmcompress.losses import TermInputs
from lmcompress.models.dynabert import dynabert_layer_map, set_subnet
from lmcompress.utils.checks import check_plan
from lmcompress.utils.instantiate import instantiate_plain

NO_DROPOUT = {"teacher": [f"+model.config.{p}=0.0" for p in
                          ("hidden_dropout_prob", "attention_probs_dropout_prob")],
              "distill": [f"+{m}.config.{p}=0.0" for m in ("teacher", "student")
                          for p in ("hidden_dropout_prob", "attention_probs_dropout_prob")]}
NO_DROPOUT["dynabert"] = [f"+teacher.config.{p}=0.0" for p in
                          ("hidden_dropout_prob", "attention_probs_dropout_prob")]
DYNABERT = ["teacher=tiny", "teacher.config.num_attention_heads=4"]
STAGES = {"teacher": [], "distill": ["teacher=tiny", "student=tiny", "loss=kd_ckd"],
          "dynabert": DYNABERT, "dynabert_ckd": [*DYNABERT, "loss=dynabert_ckd"]}
"""DynaBERT: the width-0.5 sub-network (sliced heads and neurons), hidden MSE + KD or CKD."""
BATCH = {"input_ids": torch.tensor([[101, 2204, 3185, 2003, 102, 0], [101, 2919, 102, 0, 0, 0],
                                    [101, 1037, 2307, 2143, 2200, 102]]),
         "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0],
                                         [1, 1, 1, 1, 1, 1]]),
         "labels": torch.tensor([1, 0, 1])}


def _loss(module, stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The stage's loss and its terms on BATCH (the teacher stage: the task loss alone)."""
    if stage == "teacher":
        loss = module.model(**BATCH).loss
        return loss, {"task": loss}
    if stage.startswith("dynabert"):
        teacher = module.teacher_outputs(BATCH)
        set_subnet(module.model, 0.5, 1.0)
        student = module(BATCH, output_hidden_states=module.objective.needs_hidden)
        layers = dynabert_layer_map(module.teacher.config.num_hidden_layers, 1.0)
        return module.objective(TermInputs(student, teacher, BATCH, module.kind, layers))
    return module.objective(module.term_inputs(BATCH))


def _loss_and_gradient(module, stage: str, bf16: bool):
    module.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, _ = _loss(module, stage)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in module.model.parameters() if p.grad is not None])
    return loss.detach().float(), grad


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_bf16_loss_and_first_update_agree_with_fp32(make_cfg, stage):
    config = stage.split("_")[0]
    module = instantiate_plain(make_cfg(config, *STAGES[stage], *NO_DROPOUT[config]).module)
    module.train()
    loss32, grad32 = _loss_and_gradient(module, stage, bf16=False)
    loss16, grad16 = _loss_and_gradient(module, stage, bf16=True)
    assert loss16 != loss32  # autocast really ran in bf16
    assert abs(loss16 - loss32) <= 0.02 * abs(loss32), (float(loss16), float(loss32))
    cosine = torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)
    assert cosine >= 0.99, float(cosine)
    assert abs(grad16.norm() - grad32.norm()) <= 0.05 * grad32.norm()


def test_gpu_settings_are_refused_by_key_without_cuda(make_cfg):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot show")
    for hardware in ("gpu", "bf16_mixed", "fp16_mixed", "ddp"):
        cfg = make_cfg("teacher", f"hardware={hardware}")
        with pytest.raises(ValueError, match=r"trainer.accelerator=gpu \(precision .*\) needs a "
                                             "CUDA device"):
            check_plan(cfg)
    cfg = make_cfg("teacher", "hardware=fp16_mixed", "trainer.accelerator=cpu")
    assert cfg.trainer.precision == "16-mixed"
    check_plan(cfg)  # fp16 autocast composes on a CPU (Lightning runs it there too)
