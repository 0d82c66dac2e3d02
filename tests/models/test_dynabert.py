"""DynaBERT model layer: sub-network rules, importance, rewiring, dynamic model, export."""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPT2Config,
    GPT2ForSequenceClassification,
)

import lmcompress  # noqa: F401  (registers the sliced classes with the Auto API)
from lmcompress.models.dynabert import (
    DEPTHS,
    WIDTHS,
    compute_importance,
    current_subnet,
    dynabert_layer_map,
    extract_subnetwork,
    kept_layers,
    param_count,
    rewire,
    round_half_up,
    set_subnet,
    subnet,
    subnet_shape,
)
from lmcompress.models.dynabert.auto import SlicedBertForSequenceClassification

VOCAB = 60


def _model(cls=BertForSequenceClassification, layers: int = 4, **overrides):
    torch.manual_seed(0)
    settings = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers,
                    num_attention_heads=4, intermediate_size=64, num_labels=3)
    config = BertConfig(**{**settings, **overrides})
    return cls(config).eval()


def _batch(seed: int, kind: str = "classification", size: int = 4, length: int = 9):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (size, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1:, length - 3:] = 0  # some padding
    labels = {"classification": torch.randint(0, 3, (size,), generator=g),
              "regression": torch.randn(size, generator=g),
              "token_classification": torch.randint(0, 3, (size, length), generator=g)}[kind]
    if kind == "token_classification":
        labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": labels}


def _inputs(batch):
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


# --- rules -------------------------------------------------------------------------------------

def test_rounding_and_kept_layer_rule():
    assert [round_half_up(x) for x in (0.49, 0.5, 1.5, 2.5, 4.5)] == [0, 1, 2, 3, 5]
    assert kept_layers(12, 0.5) == [0, 2, 4, 6, 8, 10]
    assert kept_layers(12, 0.75) == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert kept_layers(12, 1.0) == list(range(12))
    assert kept_layers(6, 0.5) == [0, 2, 4]
    assert kept_layers(6, 0.75) == [0, 1, 2, 4, 5]  # round_half_up(4.5) = 5 layers
    assert kept_layers(6, 0.25) == [0, 4]  # round_half_up(1.5) = 2 layers


def test_subnet_shape_follows_the_head_grid():
    base = BertConfig()  # 12 heads, FFN 3072
    shapes = {w: subnet_shape(base, w, 1.0)[:2] for w in WIDTHS}
    assert shapes == {1.0: (12, 3072), 0.75: (9, 2304), 0.5: (6, 1536), 0.25: (3, 768)}
    minilm = BertConfig(num_hidden_layers=6, hidden_size=384, intermediate_size=1536)
    assert subnet_shape(minilm, 0.75, 0.75) == (9, 1152, [0, 1, 2, 4, 5])


def test_layer_map_matches_kept_layers_plus_output():
    layer_map = dynabert_layer_map(12, 0.5)
    assert layer_map.teacher == [0, 2, 4, 6, 8, 10, 12]
    assert layer_map.student == [0, 1, 2, 3, 4, 5, 6]
    assert dynabert_layer_map(12, 0.75).teacher == [0, 1, 2, 4, 5, 6, 8, 9, 10, 12]


# --- importance and rewiring -------------------------------------------------------------------

def test_importance_is_sane_and_leaves_the_model_unchanged():
    model = _model().requires_grad_(False)
    state = copy.deepcopy(model.state_dict())
    batches = [_batch(seed) for seed in range(3)]
    heads, neurons = compute_importance(model, batches, "classification")
    assert heads.shape == (4, 4) and neurons.shape == (4, 64)
    for scores in (heads, neurons):
        assert torch.isfinite(scores).all() and (scores >= 0).all() and scores.sum() > 0
    official = compute_importance(model, batches, "classification", mode="official")
    assert not torch.allclose(heads, official[0]) and not torch.allclose(neurons, official[1])
    one = [batches[0]]  # with one batch there is nothing to accumulate: the modes agree
    for a, b in zip(compute_importance(model, one, "classification"),
                    compute_importance(model, one, "classification", mode="official"),
                    strict=True):
        torch.testing.assert_close(a, b)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("kind", ["regression", "token_classification"])
def test_importance_other_task_kinds(kind):
    if kind == "regression":
        model = _model(num_labels=1)
    else:
        model = _model(BertForTokenClassification)
    heads, neurons = compute_importance(model, [_batch(0, kind), _batch(1, kind)], kind)
    assert heads.shape == (4, 4) and torch.isfinite(neurons).all() and heads.sum() > 0



@pytest.mark.parametrize("kind", ["classification", "regression", "token_classification"])
def test_importance_differentiates_the_objectives_task_term(kind, monkeypatch):
    """One definition of the task loss: scaling the registry's term scales every score."""
    import lmcompress.losses.kd as kd

    model = {"regression": _model(num_labels=1),
             "token_classification": _model(BertForTokenClassification)}.get(kind, _model())
    batches = [_batch(0, kind), _batch(1, kind)]
    heads, neurons = compute_importance(model, batches, kind)
    for name in ("hard_ce", "hard_mse"):
        loss = getattr(kd, name)
        monkeypatch.setattr(kd, name, lambda *a, loss=loss: 3.0 * loss(*a))
    heads3, neurons3 = compute_importance(model, batches, kind)
    torch.testing.assert_close(heads3, 3.0 * heads)
    torch.testing.assert_close(neurons3, 3.0 * neurons)

def test_rewiring_preserves_outputs_and_sorts_scores():
    model = _model()
    batches = [_batch(seed) for seed in range(2)]
    reference = model(**_inputs(batches[0])).logits
    heads, neurons = compute_importance(model, batches, "classification")
    head_order, neuron_order = rewire(model, heads, neurons)
    torch.testing.assert_close(model(**_inputs(batches[0])).logits, reference)
    # every score moved with its head / neuron: recomputed, they come out sorted
    new_heads, new_neurons = compute_importance(model, batches, "classification")
    torch.testing.assert_close(new_heads, heads.gather(1, head_order), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(new_neurons, neurons.gather(1, neuron_order),
                               rtol=1e-4, atol=1e-7)
    assert (new_heads[:, :-1] >= new_heads[:, 1:] - 1e-6).all()


# --- dynamic model -----------------------------------------------------------------------------

def test_full_subnet_is_exactly_the_original_model(tmp_path):
    model, original = _model(), _model()
    params = dict(model.named_parameters())
    batch = _inputs(_batch(0))
    set_subnet(model, 0.5, 0.5)
    model.save_pretrained(tmp_path)  # the whole supernet, whatever sub-network is set
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded(**batch).logits, original(**batch).logits)
    set_subnet(model, 1.0, 1.0)
    ours = model(**batch, output_hidden_states=True)
    theirs = original(**batch, output_hidden_states=True)
    assert torch.equal(ours.logits, theirs.logits)
    assert all(torch.equal(a, b) for a, b in zip(ours.hidden_states, theirs.hidden_states,
                                                 strict=True))
    assert list(model.state_dict()) == list(original.state_dict())
    assert all(p is params[name] for name, p in model.named_parameters())


def test_subnet_context_restores_and_depth_shortens_hidden_states():
    model = _model(layers=6)
    batch = _inputs(_batch(0))
    set_subnet(model, 0.75, 1.0)
    with subnet(model, 0.25, 0.5):
        assert current_subnet(model) == (0.25, 0.5)
        hidden = model(**batch, output_hidden_states=True).hidden_states
        assert len(hidden) == 1 + len(kept_layers(6, 0.5))
    assert current_subnet(model) == (0.75, 1.0)


def test_smaller_subnets_train_only_their_slice():
    model = _model().train()
    set_subnet(model, 0.5, 0.5)  # 2 of 4 heads (head size 8), FFN 32, layers [0, 2]
    model(**_inputs(_batch(0))).logits.sum().backward()
    layer = model.bert.encoder.layer[0]
    assert layer.attention.self.query.weight.grad[16:].abs().sum() == 0
    assert layer.attention.self.query.weight.grad[:16].abs().sum() > 0
    assert layer.output.dense.weight.grad[:, 32:].abs().sum() == 0
    assert model.bert.encoder.layer[1].attention.self.query.weight.grad is None


# --- export ------------------------------------------------------------------------------------

def test_every_subnetwork_exports_to_an_equal_smaller_model():
    model = _model(layers=6)
    batch = _inputs(_batch(0))
    for width, depth in itertools.product((0.25, 0.5, 0.75, 1.0), DEPTHS):
        small = extract_subnetwork(model, width, depth)
        with subnet(model, width, depth), torch.no_grad():
            expected = model(**batch).logits
            torch.testing.assert_close(small(**batch).logits, expected, rtol=0, atol=1e-5)
        assert sum(p.numel() for p in small.parameters()) == param_count(model, width, depth)
        heads = subnet_shape(model.config, width, depth).heads
        assert isinstance(small, SlicedBertForSequenceClassification) == (heads < 4)
    assert current_subnet(model) == (1.0, 1.0)


def test_sliced_export_traced_once_serves_other_batches_and_lengths():
    # docs/dynabert.md §8: trace + freeze is how a small sub-network is served at batch 1; a
    # trace made on one unpadded sequence must keep the attention mask for padded batches
    import warnings

    small = extract_subnetwork(_model(layers=6), 0.25, 0.5).eval()
    small.config.return_dict = False
    one = _inputs(_batch(3, size=1, length=12))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on HF's shape checks
        graph = torch.jit.trace(small, tuple(one.values()))
        graph = torch.jit.optimize_for_inference(torch.jit.freeze(graph))
        for size, length in ((1, 12), (4, 9), (3, 20)):
            batch = _inputs(_batch(size, size=size, length=length))
            torch.testing.assert_close(graph(*batch.values())[0], small(**batch)[0],
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", [BertForTokenClassification, BertModel])
def test_export_other_heads(cls):
    model, batch = _model(cls), _inputs(_batch(1))
    key = "last_hidden_state" if cls is BertModel else "logits"
    small = extract_subnetwork(model, 0.5, 0.75)
    with subnet(model, 0.5, 0.75), torch.no_grad():
        torch.testing.assert_close(small(**batch)[key], model(**batch)[key], rtol=0, atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) == param_count(model, 0.5, 0.75)


@pytest.mark.parametrize("cls,auto", [
    (BertForSequenceClassification, AutoModelForSequenceClassification),
    (BertForTokenClassification, AutoModelForTokenClassification),
    (BertModel, AutoModel),
])
def test_sliced_export_reloads_through_auto_api(tmp_path, cls, auto):
    small = extract_subnetwork(_model(cls), 0.25, 0.75)
    small.save_pretrained(tmp_path)
    reloaded = auto.from_pretrained(tmp_path).eval()
    assert type(reloaded) is type(small)
    batch = _inputs(_batch(2))
    key = "last_hidden_state" if cls is BertModel else "logits"
    assert torch.equal(reloaded(**batch)[key], small(**batch)[key])


_PLAIN_RELOAD = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor(json.loads(sys.argv[2]))
assert "lmcompress" not in sys.modules
print(json.dumps({"type": type(model).__name__, "layers": model.config.num_hidden_layers,
                  "logits": model(input_ids=ids).logits.tolist()}))
"""


@pytest.mark.parametrize("depth", [0.5, 0.75])
def test_depth_only_export_is_plain_bert(tmp_path, depth):
    model = _model(layers=6)
    small = extract_subnetwork(model, 1.0, depth)
    assert type(small) is BertForSequenceClassification and small.config.model_type == "bert"
    small.save_pretrained(tmp_path)
    ids = _batch(3)["input_ids"]
    # conftest's autouse fixture has put the offline switches in the inherited environment
    done = subprocess.run([sys.executable, "-c", _PLAIN_RELOAD, str(tmp_path),
                           json.dumps(ids.tolist())], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["type"] == "BertForSequenceClassification"
    assert result["layers"] == len(kept_layers(6, depth))
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(result["logits"]), small(input_ids=ids).logits)


# --- refusals ----------------------------------------------------------------------------------

def test_refusals_name_the_value():
    model = _model()
    with pytest.raises(ValueError, match=r"width=0\.01.*0 of 4 attention heads"):
        set_subnet(model, 0.01, 1.0)
    with pytest.raises(ValueError, match=r"width=1\.5"):
        set_subnet(model, 1.5, 1.0)
    with pytest.raises(ValueError, match=r"depth=0\.1.*0 of 4 layers"):
        extract_subnetwork(model, 1.0, 0.1)
    with pytest.raises(ValueError, match=r"depth=0"):
        kept_layers(12, 0)
    assert current_subnet(model) is None  # nothing happened
    with pytest.raises(ValueError, match="BertForMaskedLM"):  # no sliced twin for the MLM head
        extract_subnetwork(_model(BertForMaskedLM), 0.5, 1.0)
    with pytest.raises(ValueError, match="head_importance has shape"):
        rewire(model, torch.ones(4, 3), torch.ones(4, 64))
    with pytest.raises(ValueError, match="kind='ranking'"):
        compute_importance(model, [_batch(0)], "ranking")
    with pytest.raises(ValueError, match="smaller than its config"):  # already extracted
        set_subnet(extract_subnetwork(model, 0.5, 1.0), 0.5, 1.0)


@pytest.mark.parametrize("build", [
    lambda: GPT2ForSequenceClassification(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2,
                                                     n_head=4, n_positions=16)),
], ids=["gpt2"])
def test_non_bert_architectures_are_refused_by_name(build):
    """A family without an adapter (DistilBERT has one now: tests/models/test_dynabert_families)."""
    model = build()
    name = type(model).__name__
    for call in (lambda: set_subnet(model, 0.5, 1.0), lambda: extract_subnetwork(model, 1.0, 0.5),
                 lambda: compute_importance(model, [_batch(0)], "classification")):
        with pytest.raises(ValueError, match=f"{name}.*supported model types: bert"):
            call()
    assert current_subnet(model) is None
