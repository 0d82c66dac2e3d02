"""The objective registry: a new term is one function plus its registration, no stage changes."""

from __future__ import annotations

import pytest
import torch

from lmcompress.losses import REGISTRY, Objective, TermInputs, register_term


@pytest.fixture
def logit_l2():
    """A term defined here, in a test: squared distance between student and teacher logits."""

    @register_term("logit_l2", options="logit_l2")
    def term(inputs: TermInputs, *, scale: float = 1.0) -> torch.Tensor:
        return scale * (inputs.student.logits - inputs.teacher.logits).pow(2).mean()

    yield term
    REGISTRY.pop("logit_l2")


def test_a_new_term_trains_in_the_distill_stage_without_touching_it(make_cfg, logit_l2):
    from lmcompress.utils.instantiate import instantiate_plain

    cfg = make_cfg("distill", "teacher=tiny", "student=tiny", "loss=kd",
                   "+loss.weights.logit_l2=0.5", "+loss.logit_l2.scale=2.0")
    module = instantiate_plain(cfg.module).eval()  # no dropout: the check recomputes logits
    batch = {"input_ids": torch.tensor([[101, 2204, 3185, 102]]),
             "attention_mask": torch.ones(1, 4, dtype=torch.long), "labels": torch.tensor([1])}
    total, parts = module.objective(module.term_inputs(batch))
    assert set(parts) == {"task", "kd", "logit_l2"}
    with torch.no_grad():
        expected = 2.0 * (module(batch).logits - module.teacher(**module.model_inputs(batch))
                          .logits).pow(2).mean()
    torch.testing.assert_close(parts["logit_l2"], expected)
    torch.testing.assert_close(total, sum(module.objective.weights[k] * v
                                          for k, v in parts.items()))
    total.backward()
    assert module.model.classifier.weight.grad is not None


def test_objective_refuses_unknown_terms_and_options(logit_l2):
    with pytest.raises(ValueError, match=r"unknown term\(s\) \['logit_l3'\]"):
        Objective.from_config({"weights": {"logit_l3": 1.0}})
    with pytest.raises(ValueError, match=r"loss.logit_l2: unknown option\(s\) \['scal'\]"):
        Objective.from_config({"weights": {"logit_l2": 1.0}, "logit_l2": {"scal": 2}})
    with pytest.raises(ValueError, match="every weight is 0"):
        Objective.from_config({"weights": {"logit_l2": 0.0}})


def test_objective_reports_what_the_stage_must_run():
    ce = Objective.from_config({"weights": {"task": 1.0}})
    assert (ce.needs_teacher, ce.needs_hidden, ce.needs_labels) == (False, False, True)
    ckd = Objective.from_config({"weights": {"kd": 1.0, "ltr_pair": 1.0}})
    assert (ckd.needs_teacher, ckd.needs_hidden, ckd.needs_labels) == (True, True, False)
