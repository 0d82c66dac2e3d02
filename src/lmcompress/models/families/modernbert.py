"""ModernBERT (``modernbert``): fused qkv, gated FFN, rotary, local / global attention.

Layers: ``model.layers`` (no ``encoder``); attention ``attn.Wqkv`` (fused, rows q | k | v, each
head-major) and ``attn.Wo``; FFN ``mlp.Wi`` (``2 * intermediate`` rows: value | gate, GLU) ->
``mlp.Wo``. Each layer's attention type (``config.layer_types[i]``: ``full_attention`` every
``global_attn_every_n_layers``-th layer, else ``sliding_attention`` over ``local_attention``
tokens) is fixed when it is built and travels with the layer, so after surgery the config's
``layer_types`` are rebuilt from the kept layers. Layer 0 has no attention pre-norm
(``attn_norm`` is the identity): a kept layer moved to position 0 loses its norm, so the smaller
model is exactly what ``from_pretrained`` rebuilds from its export. The base
model ends with ``final_norm``, which only the head reads; the head is ``head`` (dense, act,
norm), dropout, classifier, on ``h[:, 0]`` or the masked mean (``classifier_pooling``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lmcompress.models.families.base import AttentionParts, FamilyAdapter, FfnParts, register


@register
class ModernBertAdapter(FamilyAdapter):
    """ModernBERT (docs/families.md)."""

    name = "modernbert"
    model_types = ("modernbert",)
    head_inside_base = ("final_norm",)
    optional_config_keys = ("global_attn_every_n_layers",)

    def complete_config(self, config: Any, overrides: dict[str, Any]) -> None:
        """``layer_types`` for the new depth: global every ``global_attn_every_n_layers``-th.

        Only when the overrides change the depth or the period and give no ``layer_types``.
        """
        if "layer_types" in overrides or not {"num_hidden_layers",
                                              "global_attn_every_n_layers"} & set(overrides):
            return
        every = int(overrides.get("global_attn_every_n_layers", 3))
        config.layer_types = ["sliding_attention" if i % every else "full_attention"
                              for i in range(config.num_hidden_layers)]

    def encoder(self, model: nn.Module) -> nn.Module:
        """The base model itself owns ``layers``."""
        return self.base(model)

    def layers(self, model: nn.Module) -> nn.ModuleList:
        """``model.layers``."""
        return self.base(model).layers

    def set_layers(self, model: nn.Module, layers: nn.ModuleList) -> None:
        """Install ``layers``; ``layer_types`` and layer ids follow (see the module doc)."""
        self.base(model).layers = layers
        self.after_set_layers(model, layers)

    def after_set_layers(self, model: nn.Module, layers: nn.ModuleList) -> None:
        """``num_hidden_layers``, ``layer_types`` from the layers, ``layer_idx`` positions."""
        for position, layer in enumerate(layers):
            if position and isinstance(layer.attn_norm, nn.Identity):
                raise ValueError(f"modernbert: the layer built as layer 0 (no attention "
                                 f"norm) cannot move to position {position}")
        model.config.num_hidden_layers = len(layers)
        model.config.layer_types = [layer.attention_type for layer in layers]
        if layers:  # position 0 is built without an attention norm: as a rebuilt model is
            layers[0].attn_norm = nn.Identity()
        for position, layer in enumerate(layers):
            layer.layer_idx = position
            layer.attn.layer_idx = position

    def positions_in_embeddings(self, config: Any) -> bool:
        """Never: positions are rotary, inside the attention."""
        return False

    def attention(self, layer: nn.Module) -> AttentionParts:
        """Fused ``attn.Wqkv`` and ``attn.Wo``."""
        return AttentionParts(None, None, None, layer.attn.Wqkv, layer.attn.Wo, layer.attn)

    def ffn(self, layer: nn.Module) -> FfnParts:
        """Gated ``mlp.Wi`` (value | gate) and ``mlp.Wo``."""
        return FfnParts(layer.mlp.Wi, layer.mlp.Wo, gated=True)

    def num_heads(self, layer: nn.Module) -> int:
        """``Wqkv`` rows over ``3 * head_dim``."""
        return layer.attn.Wqkv.out_features // (3 * layer.attn.head_dim)

    def set_num_heads(self, layer: nn.Module, heads: int) -> None:
        """Nothing to record: the attention reshapes by ``head_dim`` from ``Wqkv``'s rows."""
        if self.num_heads(layer) != heads:
            raise ValueError(f"modernbert: Wqkv holds {self.num_heads(layer)} heads, not {heads}")

    def run_layers(self, model: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor,
                   start: int = 0) -> Iterator[torch.Tensor]:
        """The base model's loop: a mask and rotary table per attention type."""
        from transformers.masking_utils import (
            create_bidirectional_mask,
            create_bidirectional_sliding_window_mask,
        )
        base = self.base(model)
        kwargs = {"config": model.config, "inputs_embeds": hidden,
                  "attention_mask": attention_mask}
        masks = {"full_attention": create_bidirectional_mask(**kwargs),
                 "sliding_attention": create_bidirectional_sliding_window_mask(**kwargs)}
        position_ids = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        rotary = {kind: base.rotary_emb(hidden, position_ids, kind)
                  for kind in set(model.config.layer_types)}
        for layer in self.layers(model)[start:]:
            hidden = layer(hidden, attention_mask=masks[layer.attention_type],
                           position_embeddings=rotary[layer.attention_type])
            yield hidden

    def final_hidden(self, model: nn.Module, last: torch.Tensor) -> torch.Tensor:
        """``final_norm`` of the last layer's output."""
        return self.base(model).final_norm(last)

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Sequence: pool (cls or masked mean), head, dropout, classifier; token: per position."""
        if self.head_kind(model) == "sequence":
            if model.config.classifier_pooling == "mean":
                mask = attention_mask.unsqueeze(-1).to(last.dtype)
                last = (last * mask).sum(1) / attention_mask.sum(1, keepdim=True)
            else:
                last = last[:, 0]
        return model.classifier(model.drop(model.head(last)))
