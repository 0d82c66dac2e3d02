"""Every encoder family through its adapter: structure, layer runs, surgery, teacher, students.

Tiny random configs of the seven families (``tests/helpers/families.py``, no download).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AlbertConfig, AlbertForSequenceClassification, BertForMultipleChoice

from helpers.families import FAMILIES, NAMES, batch, family_config, family_model, narrow_keys
from lmcompress.amoc.cache import check_supported
from lmcompress.models.families import UnsupportedFamilyError, adapter_for, supported_model_types
from lmcompress.models.hub import build_model
from lmcompress.models.layers import resolve_layer_map
from lmcompress.models.student import build_student
from lmcompress.models.surgery import drop_layers
from lmcompress.specs import LayerMapSpec, ModelSpec, StudentSpec, TaskSpec

TASK = TaskSpec(name="tiny", kind="classification", num_labels=2, metrics=["accuracy"],
                main_metric="accuracy")


def test_an_unsupported_family_is_refused_by_name_listing_the_supported():
    albert = AlbertForSequenceClassification(AlbertConfig(
        vocab_size=60, embedding_size=8, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32))
    listed = ", ".join(supported_model_types())
    for call in (lambda: adapter_for(albert), lambda: drop_layers(albert, [0]),
                 lambda: check_supported(albert),
                 lambda: build_student(StudentSpec(num_layers=1), TASK, albert)):
        with pytest.raises(UnsupportedFamilyError) as err:
            call()
        assert "AlbertForSequenceClassification (model_type 'albert')" in str(err.value)
        assert listed in str(err.value)
    assert set(supported_model_types()) >= {"bert", "roberta", "xlm-roberta", "electra",
                                            "deberta-v2", "mpnet", "distilbert", "modernbert"}
    with pytest.raises(UnsupportedFamilyError, match="key.x: model_type 'gpt2'"):
        adapter_for("gpt2", key="key.x")
    choice = BertForMultipleChoice(family_config("bert"))
    with pytest.raises(UnsupportedFamilyError, match="BertForMultipleChoice: only"):
        check_supported(choice)


@pytest.mark.parametrize("family", NAMES)
def test_adapter_describes_the_architecture(family):
    model = family_model(family)
    adapter = adapter_for(model)
    layers = adapter.layers(model)
    assert isinstance(layers, torch.nn.ModuleList) and len(layers) == 4
    head_size = adapter.head_size(model.config)
    assert head_size == 8
    for layer in layers:
        heads = adapter.num_heads(layer)
        att, ffn = adapter.attention(layer), adapter.ffn(layer)
        assert heads == 4 and att.output.in_features == heads * head_size
        if att.fused:  # ModernBERT's Wqkv: q | k | v rows
            assert att.qkv.out_features == 3 * heads * head_size and att.query is None
        else:
            assert {p.out_features for p in (att.query, att.key, att.value)} == {heads * head_size}
        assert ffn.neurons == 64 and ffn.output.out_features == 32
        assert ffn.input.out_features == (2 if ffn.gated else 1) * ffn.neurons
        assert ffn.gated == (family == "modernbert")
        parts = [att.output, ffn.input, ffn.output, *(att.position)]
        assert all(any(p is m for m in layer.modules()) for p in parts)
    head = dict(adapter.head_parameters(model))
    in_layers = {id(p) for p in layers.parameters()}
    assert head and not any(id(p) in in_layers for p in head.values())
    assert all(isinstance(m, torch.nn.Module) for m in adapter.input_modules(model))
    relative = {r.name: r.per_head_dim for r in adapter.relative_positions(model)}
    expected = {"deberta-v2": {"deberta.encoder.rel_embeddings.weight": None,
                               "deberta.encoder.LayerNorm.weight": None,
                               "deberta.encoder.LayerNorm.bias": None},
                "mpnet": {"mpnet.encoder.relative_attention_bias.weight": 1}}
    assert relative == expected.get(family, {})


@pytest.mark.parametrize("head", ["sequence", "token"])
@pytest.mark.parametrize("family", NAMES)
def test_run_layers_and_head_reproduce_the_model(family, head):
    model, inputs = family_model(family, head), batch()
    adapter = adapter_for(model)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
        states = out.hidden_states
        assert len(states) == 5  # embeddings + 4 layers, as CKD's layer map counts them
        for start in range(4):
            outs = list(adapter.run_layers(model, states[start], inputs["attention_mask"], start))
            for got, want in zip(outs[:-1], states[start + 1:-1], strict=True):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
            last = adapter.final_hidden(model, outs[-1])
            torch.testing.assert_close(last, states[-1], atol=1e-5, rtol=0)
            logits = adapter.head_logits(model, last, [*states[:start + 1], *outs],
                                         inputs["attention_mask"])
            torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)


def _skipping(model, removed):
    """``model``'s logits with the ``removed`` layers passing their input through unchanged."""
    def identity(module, args, kwargs, output):
        hidden = args[0] if args else kwargs["hidden_states"]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    layers = adapter_for(model).layers(model)
    handles = [layers[i].register_forward_hook(identity, with_kwargs=True) for i in removed]
    try:
        with torch.no_grad():
            return model(**batch()).logits
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("removed", [(1,), (0, 2), (3,)])
@pytest.mark.parametrize("family", NAMES)
def test_drop_layers_equals_the_model_without_them(family, removed, tmp_path):
    model = family_model(family)
    smaller = drop_layers(model, removed)
    adapter = adapter_for(smaller)
    assert smaller.config.num_hidden_layers == len(adapter.layers(smaller)) == 4 - len(removed)
    assert len(adapter.layers(model)) == 4  # the original is untouched
    with torch.no_grad():
        logits = smaller(**batch()).logits
    if family == "modernbert":  # each layer keeps its attention type; the config follows
        kept = [i for i in range(4) if i not in removed]
        assert smaller.config.layer_types == [model.config.layer_types[i] for i in kept]
        # position 0 has no attention norm: the layer moved there loses its own
        assert isinstance(adapter.layers(smaller)[0].attn_norm, torch.nn.Identity)
    if family != "modernbert" or 0 not in removed:
        torch.testing.assert_close(logits, _skipping(model, removed), atol=1e-5, rtol=0)
    smaller.save_pretrained(tmp_path)  # a model built with that many layers, same weights
    rebuilt = type(smaller).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(**batch()).logits, logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", NAMES)
def test_teacher_builds_and_trains(family):
    config = {**FAMILIES[family], "vocab_size": 60}  # as model.config keys of a random init
    model = build_model(ModelSpec(pretrained=False, config=config), TASK).train()
    assert type(model).__name__.endswith("ForSequenceClassification")
    assert model.config.hidden_size == 32 and len(adapter_for(model).layers(model)) == 4
    if family == "modernbert":  # derived at construction from the depth and the period
        assert model.config.layer_types == ["full_attention", "sliding_attention",
                                             "sliding_attention", "full_attention"]
    out = model(**batch(), labels=torch.tensor([0, 1, 1]))
    out.loss.backward()
    for layer in adapter_for(model).layers(model):
        grads = [p.grad for p in layer.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("family", NAMES)
def test_students_from_teacher_layers_and_narrower(family):
    teacher = family_model(family).requires_grad_(False)
    student = build_student(StudentSpec(num_layers=2), TASK, teacher)
    adapter = adapter_for(student)
    assert len(adapter.layers(student)) == 2 and student.training
    kept = adapter.layers(teacher)  # "skip": layers 1 and 3
    for got, want in zip(adapter.layers(student), [kept[1], kept[3]], strict=True):
        source = dict(want.named_parameters())  # (ModernBERT's position 0: no attention norm)
        for name, param in got.named_parameters():
            assert torch.equal(param, source[name]) and param.requires_grad
    narrow = build_student(StudentSpec(init="config", config=narrow_keys(family)), TASK, teacher)
    assert type(narrow) is type(teacher) and narrow.config.hidden_size == 16
    for model in (student, narrow):
        out = model(**batch(), output_hidden_states=True)
        assert len(out.hidden_states) == 3
        with torch.no_grad():
            target = teacher(**batch()).logits.softmax(-1)
        loss = -(target * out.logits.log_softmax(-1)).sum(-1).mean()
        loss = loss + out.hidden_states[-1].pow(2).mean()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters()
                   if p.grad is not None)


def test_layer_matching_leaves_out_a_hidden_state_0_without_positions():
    h0 = {f: adapter_for(family_config(f)).positions_in_embeddings(family_config(f))
          for f in NAMES}
    assert h0 == {**dict.fromkeys(NAMES, True), "modernbert": False, "deberta-v2": False}
    assert adapter_for("deberta-v2").positions_in_embeddings(
        family_config("deberta-v2", position_biased_input=True))
    same = resolve_layer_map(12, 6, None, uses_ltr=True)
    assert same.teacher == [0, 2, 4, 6, 8, 10, 12] and same.student == list(range(7))
    free = resolve_layer_map(12, 6, None, uses_ltr=True, student_h0=False)
    assert free.teacher == [2, 4, 6, 8, 10, 12] and free.student == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="hidden state 0 is left out"):
        resolve_layer_map(4, 2, None, uses_ltr=True, teacher_h0=False)
    with pytest.raises(ValueError, match=r"module.layer_map.teacher: hidden state 0 .* no"):
        resolve_layer_map(4, 2, LayerMapSpec(teacher=[0, 4], student=[0, 2]), uses_ltr=False,
                          teacher_h0=False)
