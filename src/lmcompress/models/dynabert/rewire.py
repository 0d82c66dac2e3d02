"""Network rewiring: each layer's most important heads and FFN neurons first (docs/dynabert.md §3).

Within every layer, heads are sorted by descending importance and their Q/K/V output rows (blocks
of head_size, with bias) and attention-output input columns are permuted alike; FFN neurons
likewise (intermediate rows with bias, output-dense input columns). The permutations cancel, so
the full model computes the same function, and afterwards width ``m_w`` means "the first
``heads`` heads and ``ffn`` neurons" (§4).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from lmcompress.models.dynabert.dynamic import (
    FFN_COLUMNS,
    FFN_ROWS,
    HEAD_COLUMNS,
    HEAD_ROWS,
    bert_layers,
)


def rewire(model: PreTrainedModel, head_importance: torch.Tensor,
           neuron_importance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Permute ``model``'s heads and FFN neurons in place, most important first.

    Do it before an optimizer is built: the parameter objects stay, their optimizer state
    would not follow the permutation.

    Args:
        model: a full-size BERT-family model (dynamic or not).
        head_importance: ``[L, H]`` scores (:func:`compute_importance`).
        neuron_importance: ``[L, F]`` scores.

    Returns:
        The orders applied, ``[L, H]`` and ``[L, F]``: new position p of layer l holds the old
        head (neuron) ``order[l, p]``. Ties keep their original order.

    Raises:
        ValueError: a score tensor of the wrong shape, or an unsupported architecture.
    """
    layers, config = bert_layers(model), model.config
    _check_shape("head_importance", head_importance, (len(layers), config.num_attention_heads))
    _check_shape("neuron_importance", neuron_importance, (len(layers), config.intermediate_size))
    head_order = head_importance.argsort(dim=1, descending=True, stable=True)
    neuron_order = neuron_importance.argsort(dim=1, descending=True, stable=True)
    with torch.no_grad():
        for layer, heads, neurons in zip(layers, head_order, neuron_order, strict=True):
            head_size = layer.attention.self.attention_head_size
            # head h owns rows h*head_size .. (h+1)*head_size - 1 of Q, K and V
            offsets = torch.arange(head_size, device=heads.device)
            rows = (heads[:, None] * head_size + offsets).flatten()
            for path in HEAD_ROWS:
                _permute(layer.get_submodule(path), rows, dim=0)
            _permute(layer.get_submodule(HEAD_COLUMNS), rows, dim=1)
            _permute(layer.get_submodule(FFN_ROWS), neurons, dim=0)
            _permute(layer.get_submodule(FFN_COLUMNS), neurons, dim=1)
    return head_order, neuron_order


def _check_shape(name: str, scores: torch.Tensor, expected: tuple[int, int]) -> None:
    if tuple(scores.shape) != expected:
        raise ValueError(f"{name} has shape {tuple(scores.shape)}; this model needs {expected} "
                         f"(layers, {name.split('_')[0]}s)")


def _permute(linear: torch.nn.Linear, order: torch.Tensor, dim: int) -> None:
    """Reorder a linear's output rows (``dim=0``, bias too) or input columns (``dim=1``)."""
    order = order.to(linear.weight.device)
    linear.weight.copy_(linear.weight.index_select(dim, order))
    if dim == 0 and linear.bias is not None:
        linear.bias.copy_(linear.bias.index_select(0, order))
