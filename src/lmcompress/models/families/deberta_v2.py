"""DeBERTa-v2 and -v3 (``deberta-v2``): disentangled attention on shared relative positions.

Layers: ``deberta.encoder.layer``; attention ``attention.self.{query,key,value}_proj`` and
``attention.output.dense``; FFN ``intermediate.dense`` -> ``output.dense``. Every layer reads the
encoder's shared ``rel_embeddings`` (hidden-wide, optionally LayerNorm-ed): head slicing leaves
it alone, but removing or training it touches every layer. With ``share_att_key: false`` each
layer has its own ``pos_key_proj`` / ``pos_query_proj`` (heads are their output rows). An
optional convolution (``conv_kernel_size > 0``) runs after layer 0 only, at position 0 of the
list. The sequence head is ``pooler`` (ContextPooler: ``h[:, 0]``, dropout, dense, act) outside
the base model, then dropout and the classifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lmcompress.models.families.base import (
    AttentionParts,
    FamilyAdapter,
    RelativePosition,
    register,
)


@register
class DebertaV2Adapter(FamilyAdapter):
    """DeBERTa-v2/v3 (docs/families.md)."""

    name = "deberta-v2"
    model_types = ("deberta-v2",)
    optional_config_keys = ("attention_head_size", "cls_dropout", "conv_act", "conv_groups",
                            "conv_kernel_size", "norm_rel_ebd", "position_buckets",
                            "share_att_key")

    def complete_config(self, config: Any, overrides: dict[str, Any]) -> None:
        """``pooler_hidden_size`` follows a new ``hidden_size`` (as at construction)."""
        if "hidden_size" in overrides and "pooler_hidden_size" not in overrides:
            config.pooler_hidden_size = config.hidden_size

    def attention(self, layer: nn.Module) -> AttentionParts:
        """``query_proj``/``key_proj``/``value_proj``, ``output.dense``, position projections."""
        s = layer.attention.self
        position = tuple(getattr(s, n) for n in ("pos_key_proj", "pos_query_proj")
                         if isinstance(getattr(s, n, None), nn.Linear))
        return AttentionParts(s.query_proj, s.key_proj, s.value_proj, None,
                              layer.attention.output.dense, s, position)

    def positions_in_embeddings(self, config: Any) -> bool:
        """Only with ``position_biased_input`` (DeBERTa-v3 sets it false)."""
        return bool(getattr(config, "position_biased_input", True))

    def relative_positions(self, model: nn.Module) -> list[RelativePosition]:
        """``encoder.rel_embeddings`` and its LayerNorm (hidden-wide, shared by all layers)."""
        prefix = f"{model.base_model_prefix}.encoder."
        return [RelativePosition(name, param, None) for name, param in model.named_parameters()
                if name.startswith((prefix + "rel_embeddings.", prefix + "LayerNorm."))]

    def layer_mask(self, model: nn.Module, hidden: torch.Tensor,
                   attention_mask: torch.Tensor) -> torch.Tensor:
        """DeBERTa's own pairwise mask ``[B, 1, T, T]`` (``encoder.get_attention_mask``)."""
        return self.encoder(model).get_attention_mask(attention_mask)

    def run_layers(self, model: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor,
                   start: int = 0) -> Iterator[torch.Tensor]:
        """The encoder's loop: relative positions, shared rel. embeddings, conv after layer 0."""
        encoder = self.encoder(model)
        mask = self.layer_mask(model, hidden, attention_mask)
        relative_pos = encoder.get_rel_pos(hidden)
        rel_embeddings = encoder.get_rel_embedding()
        embedded = hidden
        for i, layer in enumerate(self.layers(model)[start:], start):
            out, _ = layer(hidden, mask, relative_pos=relative_pos, rel_embeddings=rel_embeddings)
            if i == 0 and encoder.conv is not None:
                out = encoder.conv(embedded, out, attention_mask)
            hidden = out
            yield hidden

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Sequence: pooler, dropout, classifier; token: dropout, classifier."""
        if self.head_kind(model) == "sequence":
            return model.classifier(model.dropout(model.pooler(last)))
        return model.classifier(model.dropout(last))
