"""Physically remove a set of encoder layers from a task model (docs/amoc.md §3).

The remaining layers form a chain (each takes the previous remaining layer's output); for the
scalar-mix model the removed layers' mix weights go too, so the softmax renormalises over the
embeddings and the kept layers. Layer indices are 0-based positions in the model given.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedModel

from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification, select_mix_states
from lmcompress.models.surgery import encoder_layers, keep_layers


def check_removal(removed: Iterable[int], num_layers: int) -> tuple[int, ...]:
    """``removed`` sorted, after refusing an empty set, every layer, or an index out of range."""
    layers = tuple(sorted({int(i) for i in removed}))
    if not layers:
        raise ValueError("remove_layers: the set of layers to remove is empty")
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise IndexError(f"remove_layers: layer index {bad[0]} is out of range; valid layers "
                         f"are 0..{num_layers - 1} (0-based, {num_layers} layers)")
    if len(layers) == num_layers:
        raise ValueError(f"remove_layers: cannot remove all {num_layers} layers")
    return layers


def remove_layers(model: PreTrainedModel, removed: Iterable[int]) -> PreTrainedModel:
    """A deep copy of ``model`` without the encoder layers ``removed`` (and their mix weights)."""
    total = len(encoder_layers(model))
    drop = set(check_removal(removed, total))
    kept = [i for i in range(total) if i not in drop]
    smaller = keep_layers(model, kept)
    if isinstance(smaller, ScalarMixCNNForSequenceClassification):
        select_mix_states(smaller, kept)
    return smaller
