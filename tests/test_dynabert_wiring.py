"""DynaBERT stage wiring: which sub-networks train, what reaches the step, whether it rewires.

Each test observes the run's own module through ``helpers.spy.Spy`` and checks it against a
second computation written here (docs/testing.md lists which test guards which key).
"""

from __future__ import annotations

import copy

import pytest
import torch

from helpers.spy import SPY, Spy
from lmcompress.losses import TermInputs
from lmcompress.models.dynabert import (
    compute_importance,
    dynabert_layer_map,
    make_dynamic,
    rewire,
    subnet,
)
from lmcompress.run import run_stage
from lmcompress.utils.instantiate import instantiate_plain

# a 4-layer / 4-head / 32-dim teacher: width 0.5 runs 16 query rows, depth 0.5 runs 2 layers;
# no dropout, so a second forward on the same weights and batch gives the same gradients
TEACHER = ["teacher=tiny", "teacher.config.num_attention_heads=4",
           "teacher.config.num_hidden_layers=4", "+teacher.config.hidden_dropout_prob=0.0",
           "+teacher.config.attention_probs_dropout_prob=0.0"]
GRID = ["module.widths=[1.0,0.5]", "module.depths=[1.0,0.5]"]
ONE_STEP = ["data.batch_size=16", "trainer.max_steps=1", "test=false", "export=false",
            "callbacks.best=null", "callbacks.last=null", "trainer.limit_val_batches=1", SPY]
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@pytest.mark.parametrize(("phase", "expected", "aggregate"), [
    ("width", {(4, 32), (4, 16)}, "mean"),
    ("width_depth", {(4, 32), (4, 16), (2, 32), (2, 16)}, "sum"),
])
def test_each_phase_trains_its_sub_networks_once_per_step(make_cfg, phase, expected, aggregate):
    """phase=width: every width at full depth; width_depth: the whole grid, each once.
    ``val/accuracy`` is the configured aggregate of the sub-networks' dev scores."""
    result = run_stage(make_cfg("dynabert", *TEACHER, *ONE_STEP, f"phase={phase}", *GRID,
                                f"module.aggregate={aggregate}"))
    forwards = Spy.last().forwards
    assert len(forwards) == 1  # one training batch
    # (encoder layers that ran, query rows per layer) of each training forward of the student
    assert sorted(forwards[0]) == sorted(expected)
    scores = [v for k, v in result["val"].items() if k.startswith("val/accuracy/w")]
    assert len(scores) == 4
    combine = {"mean": lambda x: sum(x) / len(x), "sum": sum}[aggregate]
    assert result["val"]["val/accuracy"] == pytest.approx(combine(scores), abs=1e-6)


def _reference_grads(module, weights, batch, grid, num_layers):
    """Sum over the sub-networks of each one's own gradient, one autograd call each."""
    model = module.model
    model.load_state_dict(weights)
    model.eval()  # no dropout anyway (TEACHER); eval also freezes nothing else
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    with torch.no_grad():
        teacher = module.teacher(**inputs, output_hidden_states=True)
    params = dict(model.named_parameters())
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    per_subnet = []
    for width, depth in grid:
        with subnet(model, width, depth):
            student = model(**inputs, output_hidden_states=True)
            loss, _ = module.objective(TermInputs(student, teacher, batch, "classification",
                                                  dynabert_layer_map(num_layers, depth)))
        names = [n for n, p in params.items() if p.requires_grad]
        grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
        one = {n: g for n, g in zip(names, grads, strict=True) if g is not None}
        per_subnet.append(one)
        for n, g in one.items():
            total[n] += g
    return total, per_subnet


@pytest.mark.parametrize("clip", [None, 0.005])
def test_the_step_receives_the_sum_of_every_sub_networks_gradient(make_cfg, clip):
    """Gradient accumulation: the step's .grad equals the sum of per-sub-network gradients,
    scaled to norm ``module.clip_grad_norm`` when that is smaller (one global norm)."""
    run_stage(make_cfg("dynabert", *TEACHER, *GRID, *ONE_STEP, "phase=width_depth",
                       f"module.clip_grad_norm={'null' if clip is None else clip}"))
    spy = Spy.last()
    assert len(spy.step_grads) == 1
    grid = [(1.0, 1.0), (0.5, 1.0), (1.0, 0.5), (0.5, 0.5)]
    total, per_subnet = _reference_grads(spy.module, spy.weights[0], spy.batches[0], grid, 4)
    if clip is not None:
        norm = torch.sqrt(sum((g**2).sum() for g in total.values()))
        assert norm > 10 * clip  # clipping really happens
        total = {n: g * (clip / norm) for n, g in total.items()}
    got = spy.step_grads[0]  # clipping now acts in the module's on_before_optimizer_step
    for name, expected in total.items():
        torch.testing.assert_close(got[name] if got[name] is not None else
                                   torch.zeros_like(expected), expected, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, n=name: f"{n}: {m}")
    # the check can tell: the last sub-network alone is far from the sum
    name = "bert.encoder.layer.0.attention.self.query.weight"
    last = per_subnet[-1][name] * (1.0 if clip is None else clip / norm)
    assert (last - total[name]).abs().max() > 1e-2 * total[name].abs().max()


def _importance_batches(cfg, examples):
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    datamodule.validate()
    batches, seen = [], 0
    for batch in datamodule.eval_dataloader("train"):
        if seen >= examples:
            break
        batches.append({k: v for k, v in batch.items() if k != "index"})
        seen += len(batch["input_ids"])
    return batches


def _non_increasing(scores):
    tol = 1e-5 * scores.abs().max()
    return bool((scores[:, :-1] >= scores[:, 1:] - tol).all())


def test_the_run_rewires_the_student_by_importance(make_cfg):
    """phase=width with rewire=true: the run's student has heads and neurons sorted by importance
    on the configured slice, and still computes the teacher's function."""
    cfg = make_cfg("dynabert", *TEACHER, "fit=false", "module.depths=[1.0]",
                   "module.widths=[1.0,0.5]", "module.importance.examples=32",
                   "export=false", "test=false", SPY)
    run_stage(cfg)
    module = Spy.last().module
    assert module.rewired  # the module the run used, not a freshly built one
    batches = _importance_batches(cfg, 32)
    heads, neurons = compute_importance(module.model, batches, "classification")
    assert _non_increasing(heads) and _non_increasing(neurons)
    # the teacher itself is not sorted (else the check above could not fail)
    t_heads, t_neurons = compute_importance(module.teacher, batches, "classification")
    assert not (_non_increasing(t_heads) and _non_increasing(t_neurons))
    batch = {k: v for k, v in batches[0].items() if k != "labels"}
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(module.model(**batch).logits, module.teacher(**batch).logits,
                                   rtol=1e-5, atol=1e-5)


def test_rewire_false_leaves_the_student_as_the_teacher(make_cfg):
    cfg = make_cfg("dynabert", *TEACHER, "fit=false", "module.depths=[1.0]",
                   "module.widths=[1.0,0.5]", "module.rewire=false", "export=false",
                   "test=false", SPY)
    run_stage(cfg)
    module = Spy.last().module
    teacher = module.teacher.state_dict()
    for name, value in module.model.state_dict().items():
        torch.testing.assert_close(value, teacher[name])


def _rewired_copy(teacher, batches):
    model = make_dynamic(copy.deepcopy(teacher))
    heads, neurons = compute_importance(model, batches, "classification")
    rewire(model, heads, neurons)
    return model.state_dict()


def test_importance_reads_the_configured_split_and_example_count(make_cfg):
    """module.importance.split / examples: the run's student equals the teacher rewired here by
    the importance of the first 16 validation examples (and not of the default train slice)."""
    cfg = make_cfg("dynabert", *TEACHER, "fit=false", "module.depths=[1.0]",
                   "module.widths=[1.0,0.5]", "module.importance.split=validation",
                   "module.importance.examples=16", "data.eval_batch_size=8", "export=false",
                   "test=false", SPY)
    run_stage(cfg)
    module = Spy.last().module
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    datamodule.validate()

    def first(split, n):
        batches = []
        for batch in datamodule.eval_dataloader(split):
            if sum(len(b["input_ids"]) for b in batches) >= n:
                break
            batches.append({k: v for k, v in batch.items() if k != "index"})
        return batches

    expected = _rewired_copy(module.teacher, first("validation", 16))
    got = module.model.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, msg=name)
    other = _rewired_copy(module.teacher, first("train", 512))
    name = "bert.encoder.layer.0.intermediate.dense.weight"
    assert not torch.equal(other[name], expected[name])  # the default slice rewires otherwise
