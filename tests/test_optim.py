"""The one AdamW weight-decay rule (docs/optim.md) and the two optimizers that must use it."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

from lmcompress.amoc.train import TrainSpec, _optimizer
from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification, as_mixcnn_config
from lmcompress.optim import adamw_groups
from lmcompress.utils.instantiate import instantiate_plain


def _config() -> BertConfig:
    return BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, num_labels=2)


def _no_decay_names(model: torch.nn.Module, groups: list[dict]) -> set[str]:
    ids = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_groups_split_by_dimension_and_agree_with_the_bert_name_rule():
    torch.manual_seed(0)
    model = BertForSequenceClassification(_config())
    model.bert.embeddings.requires_grad_(False)  # frozen: in no group at all
    groups = adamw_groups(model.parameters(), 0.01)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    by_name = {n for n in trainable if "bias" in n or "LayerNorm" in n}  # the BERT code's rule
    assert _no_decay_names(model, groups) == by_name
    assert groups[0]["weight_decay"] == 0.01
    grouped = sum(len(g["params"]) for g in groups)
    assert grouped == len(trainable) < len(list(model.parameters()))


def test_amoc_fine_tune_does_not_decay_the_mix_weights():
    config = as_mixcnn_config(_config())
    config.input_length = 8
    model = ScalarMixCNNForSequenceClassification(config)
    optimizer, _ = _optimizer(model, TrainSpec(), steps=4)
    no_decay = _no_decay_names(model, optimizer.param_groups)
    assert {"mix.weights", "mix.gamma"} <= no_decay  # 1-D, neither "bias" nor "LayerNorm"
    assert not any(p.ndim < 2 for g in optimizer.param_groups if g["weight_decay"] > 0
                   for p in g["params"])


def test_stage_optimizer_uses_the_rule(make_cfg):
    module = instantiate_plain(make_cfg("teacher", "module.optim.weight_decay=0.05").module)
    module.extra_scale = torch.nn.Parameter(torch.ones(3))  # 1-D, named like neither rule word
    module.planned_steps = lambda: 10  # no Trainer attached
    optimizer = module.configure_optimizers()["optimizer"]
    no_decay = _no_decay_names(module, optimizer.param_groups)
    assert "extra_scale" in no_decay
    expected = _no_decay_names(module, adamw_groups(module.parameters(), 0.05))
    assert no_decay == expected
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.05, 0.0}
