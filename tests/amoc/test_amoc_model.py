"""The AMoC base model (scalar mix + CNN head) and layer removal for both heads."""

from __future__ import annotations

import pytest
import torch
from amoc_fixtures import LENGTH, VOCAB, bert_config, tiny_model
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from lmcompress.models.hub import build_model
from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification, as_mixcnn_config
from lmcompress.models.surgery import drop_layers
from lmcompress.specs import ModelSpec, TaskSpec

TASK = TaskSpec(name="t", kind="classification", num_labels=3, metrics=["accuracy"],
                main_metric="accuracy")
TINY = {"model_type": "bert", "vocab_size": VOCAB, "hidden_size": 16, "num_hidden_layers": 3,
        "num_attention_heads": 2, "intermediate_size": 32, "input_length": LENGTH}


def _ids(batch: int = 3) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, LENGTH), generator=torch.Generator().manual_seed(1))


def test_build_model_head_option_round_trips_through_save_pretrained(tmp_path):
    spec = ModelSpec(pretrained=False, head="scalar_mix_cnn", config=TINY)
    model = build_model(spec, TASK).eval()
    assert isinstance(model, ScalarMixCNNForSequenceClassification)
    assert model.mix.weights.tolist() == [0.0] * 4 and model.mix.gamma.item() == 1.0
    assert model.head.classifier.in_features == 16 * LENGTH // 2
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(reloaded) is ScalarMixCNNForSequenceClassification
    torch.testing.assert_close(reloaded(input_ids=_ids()).logits, model(input_ids=_ids()).logits)


def test_head_refusals():
    model = build_model(ModelSpec(pretrained=False, head="scalar_mix_cnn", config=TINY), TASK)
    with pytest.raises(ValueError, match="pad_to_max_length=true and data.max_length=12"):
        model(input_ids=torch.ones(2, LENGTH - 1, dtype=torch.long))
    tagging = TaskSpec(name="t", kind="token_classification", num_labels=3,
                       metrics=["token_accuracy"], main_metric="token_accuracy")
    with pytest.raises(ValueError, match="use model.head=pooler"):
        build_model(ModelSpec(pretrained=False, head="scalar_mix_cnn", config=TINY), tagging)
    from lmcompress.specs import SpecError, parse

    with pytest.raises(SpecError, match="model.head='cnn'"):
        parse(ModelSpec, {"head": "cnn"}, "model")


def test_layer_dropout_only_in_training_unless_configured():
    model = tiny_model("mix")
    model.config.mix_layer_dropout = model.mix.layer_dropout = 0.5
    ids = _ids()
    torch.testing.assert_close(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model.mix.dropout_at_eval = True  # the official code's quirk: random at evaluation too
    torch.manual_seed(0)
    outs = [model(input_ids=ids).logits for _ in range(6)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("head", ["pooler", "mix"])
@pytest.mark.parametrize("removed", [[1], [0, 2], [3]])
def test_removal_equals_a_model_built_without_those_layers(head, removed):
    model = tiny_model(head)
    smaller = drop_layers(model, removed)
    kept = [i for i in range(4) if i not in removed]
    config = bert_config(len(kept))
    if head == "mix":
        config = as_mixcnn_config(config)
        config.input_length = LENGTH
        reference = ScalarMixCNNForSequenceClassification(config)
    else:
        reference = BertForSequenceClassification(config)
    state = model.state_dict()
    mapped = {}
    for key in reference.state_dict():
        source = key
        for new, old in enumerate(kept):
            prefix = f"bert.encoder.layer.{new}."
            if key.startswith(prefix):
                source = f"bert.encoder.layer.{old}." + key[len(prefix):]
        mapped[key] = state[source]
    if head == "mix":  # the reference mixes embeddings + the kept layers' outputs
        mapped["mix.weights"] = state["mix.weights"][[0] + [i + 1 for i in kept]]
    reference.load_state_dict(mapped)
    reference.eval()
    assert smaller.config.num_hidden_layers == len(kept) == model.config.num_hidden_layers - len(
        removed)
    torch.testing.assert_close(smaller(input_ids=_ids()).logits, reference(input_ids=_ids()).logits)
    assert sum(p.numel() for p in smaller.parameters()) == sum(
        p.numel() for p in reference.parameters())


def test_removed_mix_model_round_trips(tmp_path):
    smaller = drop_layers(tiny_model("mix"), [1, 2])
    assert smaller.mix.weights.shape == (3,)
    smaller.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(input_ids=_ids()).logits, smaller(input_ids=_ids()).logits)


@pytest.mark.parametrize(("removed", "message"), [
    ([], "empty"), ([0, 1, 2, 3], "cannot remove all 4 layers"),
    ([1, 4], "layer index 4 is out of range; valid layers are 0..3"),
    ([-1], "layer index -1 is out of range")])
def test_removal_refusals(removed, message):
    with pytest.raises((ValueError, IndexError), match=message):
        drop_layers(tiny_model("pooler"), removed)
