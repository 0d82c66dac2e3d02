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


def encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The ``ModuleList`` of Transformer layers of ``model``."""
    base = getattr(model, model.base_model_prefix, model)
    encoder = getattr(base, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no base_model.encoder.layer ModuleList")
    return layers


def select_layers(num_layers: int, keep: int | Sequence[int], strategy: str = "skip") -> list[int]:
    """0-based indices of the teacher layers a ``keep``-layer student starts from.

    ``strategy="first"`` takes layers 0..k-1 (PKD "first" init); ``"skip"`` takes every
    (L/k)-th layer ending at the last one (12 -> 4: 2, 5, 8, 11). A list is validated and returned.
    """
    if not isinstance(keep, int):
        idx = [int(i) for i in keep]
        bad = [i for i in idx if not 0 <= i < num_layers]
        if bad or not idx:
            raise IndexError(f"layer indices {bad or idx} out of range for {num_layers} layers")
        if len(set(idx)) != len(idx):
            raise ValueError(f"duplicate layer indices in {idx}")
        return idx
    if not 1 <= keep <= num_layers:
        raise ValueError(f"cannot keep {keep} of {num_layers} layers")
    if strategy == "first":
        return list(range(keep))
    if strategy == "skip":
        step = num_layers / keep
        return [round(step * (i + 1)) - 1 for i in range(keep)]
    raise ValueError(f"unknown layer selection strategy '{strategy}' (first | skip)")


def keep_layers(model: PreTrainedModel, indices: Sequence[int]) -> PreTrainedModel:
    """A deep copy of ``model`` holding only the Transformer layers ``indices`` (in that order)."""
    layers = encoder_layers(model)
    idx = select_layers(len(layers), list(indices))
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
    drop = set(select_layers(total, list(indices)))
    if len(drop) == total:
        raise ValueError(f"cannot drop all {total} layers")
    return keep_layers(model, [i for i in range(total) if i not in drop])
