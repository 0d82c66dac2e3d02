"""Network rewiring: each layer's most important heads and FFN neurons first (docs/dynabert.md §3).

Within every layer (docs/dynabert.md §11 for fused and gated projections and shared per-head
position tables), heads are sorted by descending importance and their Q/K/V output rows (blocks
of head_size, with bias) and attention-output input columns are permuted alike; FFN neurons
likewise (intermediate rows with bias, output-dense input columns). The permutations cancel, so
the full model computes the same function, and afterwards width ``m_w`` means "the first
``heads`` heads and ``ffn`` neurons" (§4).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from lmcompress.models.dynabert.slicing import (
    family_adapter,
    head_size,
    layer_slices,
    per_head_positions,
)
from lmcompress.models.dynabert.subnets import intermediate_size


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
    adapter, config = family_adapter(model), model.config
    layers = adapter.layers(model)
    _check_shape("head_importance", head_importance, (len(layers), config.num_attention_heads))
    _check_shape("neuron_importance", neuron_importance,
                 (len(layers), intermediate_size(config)))
    tables = per_head_positions(adapter, model)
    if tables:  # one table serves every layer: one head order for all (the summed scores)
        head_importance = head_importance.sum(0, keepdim=True).expand_as(head_importance)
    head_order = head_importance.argsort(dim=1, descending=True, stable=True)
    neuron_order = neuron_importance.argsort(dim=1, descending=True, stable=True)
    size = head_size(adapter, model)
    with torch.no_grad():
        for layer, heads, neurons in zip(layers, head_order, neuron_order, strict=True):
            # head h owns rows h*head_size .. (h+1)*head_size - 1 of Q, K and V
            offsets = torch.arange(size, device=heads.device)
            rows = (heads[:, None] * size + offsets).flatten()
            for part in layer_slices(adapter, layer):
                order = rows if part.unit == "heads" else neurons
                _permute(part.linear, _blocked(order, part), dim=0 if part.side == "rows" else 1)
        for table in tables:
            table.param.copy_(table.param.index_select(table.per_head_dim,
                                                       head_order[0].to(table.param.device)))
    return head_order, neuron_order


def _blocked(order: torch.Tensor, part) -> torch.Tensor:
    """The same permutation inside each of a fused linear's row blocks (q | k | v, value | gate)."""
    if part.side == "cols" or part.blocks == 1:
        return order
    size = part.linear.out_features // part.blocks
    return torch.cat([order + b * size for b in range(part.blocks)])


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
