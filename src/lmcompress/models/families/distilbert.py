"""DistilBERT (``distilbert``): other names for a BERT layer, no token types, no pooler.

Layers: ``distilbert.transformer.layer`` (``TransformerBlock``); attention
``attention.{q_lin,k_lin,v_lin,out_lin}`` with the head count in ``attention.n_heads``; FFN
``ffn.lin1`` -> ``ffn.lin2``; post-norms ``sa_layer_norm`` and ``output_layer_norm``. The config
names are ``n_layers``/``dim``/``n_heads``/``hidden_dim`` (``num_hidden_layers`` etc. are
aliases). The sequence head is ``pre_classifier`` on ``h[:, 0]``, ReLU, dropout, classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from lmcompress.models.families.base import AttentionParts, FamilyAdapter, FfnParts, register


@register
class DistilBertAdapter(FamilyAdapter):
    """DistilBERT (docs/families.md)."""

    name = "distilbert"
    model_types = ("distilbert",)

    def encoder(self, model: nn.Module) -> nn.Module:
        """``distilbert.transformer``."""
        return self.base(model).transformer

    def after_set_layers(self, model: nn.Module, layers: nn.ModuleList) -> None:
        """``config.n_layers`` and ``transformer.n_layers``."""
        model.config.num_hidden_layers = len(layers)
        self.encoder(model).n_layers = len(layers)

    def attention(self, layer: nn.Module) -> AttentionParts:
        """``q_lin``/``k_lin``/``v_lin`` and ``out_lin``."""
        a = layer.attention
        return AttentionParts(a.q_lin, a.k_lin, a.v_lin, None, a.out_lin, a)

    def ffn(self, layer: nn.Module) -> FfnParts:
        """``ffn.lin1`` and ``ffn.lin2``."""
        return FfnParts(layer.ffn.lin1, layer.ffn.lin2)

    def num_heads(self, layer: nn.Module) -> int:
        """``attention.n_heads``."""
        return int(layer.attention.n_heads)

    def set_num_heads(self, layer: nn.Module, heads: int) -> None:
        """``attention.n_heads`` (its reshapes use the head size, which stays)."""
        layer.attention.n_heads = heads

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Sequence: pre_classifier, ReLU, dropout, classifier on ``h[:, 0]``; token: no pool."""
        if self.head_kind(model) == "sequence":
            pooled = torch.relu(model.pre_classifier(last[:, 0]))
            return model.classifier(model.dropout(pooled))
        return model.classifier(model.dropout(last))
