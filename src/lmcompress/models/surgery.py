"""Layer surgery on BERT-style Hugging Face encoders (no Lightning): keep or drop whole layers.

Works for any model whose base model has ``encoder.layer`` (BERT, RoBERTa, ELECTRA, MiniLM, ...).
The result is a physically smaller model with a consistent config, reloadable after
``save_pretrained``. The remaining layers form a chain (each takes the previous remaining
layer's output); for AMoC's scalar-mix model the mix weights of the removed layers go too, so the
softmax renormalises over the embeddings and the kept layers (docs/amoc.md §3). This is the one
removal of every stage: students built from teacher layers, DynaBERT depth, AMoC candidates.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from transformers import PreTrainedModel

from lmcompress.models.layers import select_layers
from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification, select_mix_states


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
    if isinstance(new, ScalarMixCNNForSequenceClassification):
        select_mix_states(new, idx)
    return new


def check_removal(removed: Iterable[int], num_layers: int) -> tuple[int, ...]:
    """``removed`` sorted, after refusing an empty set, every layer, or an index out of range."""
    layers = tuple(sorted({int(i) for i in removed}))
    if not layers:
        raise ValueError("drop_layers: the set of layers to remove is empty")
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise IndexError(f"drop_layers: layer index {bad[0]} is out of range; valid layers "
                         f"are 0..{num_layers - 1} (0-based, {num_layers} layers)")
    if len(layers) == num_layers:
        raise ValueError(f"drop_layers: cannot remove all {num_layers} layers")
    return layers


def drop_layers(model: PreTrainedModel, removed: Iterable[int]) -> PreTrainedModel:
    """A deep copy of ``model`` without the encoder layers ``removed`` (0-based positions).

    Raises:
        ValueError: ``removed`` is empty or holds every layer.
        IndexError: an index is out of range (the message names it and the valid range).
    """
    total = len(encoder_layers(model))
    drop = set(check_removal(removed, total))
    return keep_layers(model, [i for i in range(total) if i not in drop])
