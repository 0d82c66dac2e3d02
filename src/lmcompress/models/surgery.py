"""Layer surgery on Hugging Face encoders (no Lightning): keep or drop whole layers.

Works for every family with an adapter (``models/families``, docs/families.md); others are
refused by name.
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

from lmcompress.models.families import adapter_for
from lmcompress.models.layers import select_layers
from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification, select_mix_states


def encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The ``ModuleList`` of Transformer layers of ``model`` (its family adapter's).

    Raises:
        UnsupportedFamilyError: ``model``'s family has no adapter (a ``TypeError``).
    """
    layers = adapter_for(model).layers(model)
    if not isinstance(layers, torch.nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no layer ModuleList")
    return layers


def keep_layers(model: PreTrainedModel, indices: Sequence[int]) -> PreTrainedModel:
    """A deep copy of ``model`` holding only the Transformer layers ``indices`` (in that order)."""
    adapter = adapter_for(model)
    layers = adapter.layers(model)
    idx = select_layers(len(layers), list(indices), key="keep_layers")
    new = copy.deepcopy(model)
    new_layers = adapter.layers(new)
    # config, layer ids and per-layer config lists follow the new order
    adapter.set_layers(new, torch.nn.ModuleList([new_layers[i] for i in idx]))
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
