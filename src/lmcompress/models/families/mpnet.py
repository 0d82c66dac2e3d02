"""MPNet (``mpnet``): BERT-like layers with ``q/k/v/o`` names and a shared relative bias.

Layers: ``mpnet.encoder.layer``; attention ``attention.attn.{q,k,v,o}``; FFN
``intermediate.dense`` -> ``output.dense``. The encoder's ``relative_attention_bias``
(``[buckets, heads]``) is computed once per forward and added to every layer's scores: it is
indexed by head, so a head slice must keep the same heads in the same order in *every* layer
(or give up sharing). The sequence head (``MPNetClassificationHead``) reads ``h[:, 0]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from lmcompress.models.families.base import (
    AttentionParts,
    FamilyAdapter,
    RelativePosition,
    register,
)


@register
class MPNetAdapter(FamilyAdapter):
    """MPNet (docs/families.md)."""

    name = "mpnet"
    model_types = ("mpnet",)

    def attention(self, layer: nn.Module) -> AttentionParts:
        """``attention.attn.{q,k,v}`` and ``o``."""
        a = layer.attention.attn
        return AttentionParts(a.q, a.k, a.v, None, a.o, a)

    def relative_positions(self, model: nn.Module) -> list[RelativePosition]:
        """``encoder.relative_attention_bias.weight``: ``[buckets, heads]``, head dim 1."""
        name = f"{model.base_model_prefix}.encoder.relative_attention_bias.weight"
        return [RelativePosition(name, self.encoder(model).relative_attention_bias.weight, 1)]

    def run_layers(self, model: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor,
                   start: int = 0) -> Iterator[torch.Tensor]:
        """The encoder's loop: one position bias from the shared table for every layer."""
        mask = self.layer_mask(model, hidden, attention_mask)
        bias = self.encoder(model).compute_position_bias(hidden)
        for layer in self.layers(model)[start:]:
            hidden = layer(hidden, mask, bias)[0]
            yield hidden

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Sequence: the classification head on ``last``; token: dropout -> classifier."""
        if self.head_kind(model) == "sequence":
            return model.classifier(last)
        return model.classifier(model.dropout(last))
