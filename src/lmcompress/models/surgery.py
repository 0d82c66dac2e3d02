"""Layer surgery on BERT-style Hugging Face encoders (no Lightning): keep or drop whole layers.

Works for any model whose base model has ``encoder.layer`` (BERT, RoBERTa, ELECTRA, MiniLM, ...).
The result is a physically smaller model with a consistent config, reloadable after
``save_pretrained``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from lmcompress.models.layers import select_layers


def encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The ``ModuleList`` of Transformer layers of ``model``."""
    base = getattr(model, model.base_model_prefix, model)
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no base_model.encoder.layer ModuleList")
    return layers


def keep_layers(model: PreTrainedModel, indices: Sequence[int]) -> PreTrainedModel:
    """A deep copy of ``model`` holding only the Transformer layers ``indices`` (in that order)."""
    layers = encoder_layers(model)
    idx = select_layers(len(layers), list(indices), key="keep_layers")
    new = copy.deepcopy(model)
    new_layers = encoder_layers(new)
    kept = torch.nn.ModuleList([new_layers[i] for i in idx])
    base = getattr(new, new.base_model_prefix, new)
    base.encoder.layer = kept
    new.config.num_hidden_layers = len(kept)
    for position, layer in enumerate(kept):  # keep per-layer bookkeeping consistent (KV cache ids)
        attn = getattr(getattr(layer, "attention", None), "self", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = position
    return new


def drop_layers(model: PreTrainedModel, indices: Sequence[int]) -> PreTrainedModel:
    """A deep copy of ``model`` without the Transformer layers ``indices``."""
    total = len(encoder_layers(model))
    drop = set(select_layers(total, list(indices), key="drop_layers"))
    if len(drop) == total:
        raise ValueError(f"drop_layers: cannot drop all {total} layers")
    return keep_layers(model, [i for i in range(total) if i not in drop])
