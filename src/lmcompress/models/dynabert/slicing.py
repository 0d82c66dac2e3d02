"""Which rows and columns a DynaBERT width keeps in each linear, for every encoder family.

Everything goes through the family adapter (``models/families``, docs/dynabert.md §11): a layer's
attention projections (separate q/k/v, or ModernBERT's fused ``Wqkv`` whose rows are three
head-major blocks q | k | v), the attention output projection (heads are its input columns),
DeBERTa's per-layer position projections (sliced like q/k), the FFN input (gated: two blocks
value | gate, ModernBERT's ``Wi``) and output. A width keeps the *first* heads and neurons
(after rewiring), so every kept set is a union of block prefixes: :func:`kept_rows`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from lmcompress.models.dynabert.subnets import intermediate_size
from lmcompress.models.families.base import FamilyAdapter, UnsupportedFamilyError, adapter_for


class Sliced(NamedTuple):
    """One linear of a layer and how a width slices it."""

    linear: nn.Linear
    side: str
    """``rows`` (output features) or ``cols`` (input features)."""
    unit: str
    """``heads`` or ``ffn``: what the kept count counts."""
    blocks: int
    """Row blocks laid side by side (fused qkv: 3, gated FFN input: 2, else 1)."""


def layer_slices(adapter: FamilyAdapter, layer: nn.Module) -> list[Sliced]:
    """Every linear of ``layer`` a width slices, with its side, unit and block count."""
    att, ffn = adapter.attention(layer), adapter.ffn(layer)
    if att.fused:
        heads = [Sliced(att.qkv, "rows", "heads", 3)]
    else:
        heads = [Sliced(m, "rows", "heads", 1) for m in (att.query, att.key, att.value)]
    heads += [Sliced(m, "rows", "heads", 1) for m in att.position]
    return [*heads, Sliced(att.output, "cols", "heads", 1),
            Sliced(ffn.input, "rows", "ffn", 2 if ffn.gated else 1),
            Sliced(ffn.output, "cols", "ffn", 1)]


def kept_rows(full: int, blocks: int, keep: int) -> torch.Tensor | None:
    """Indices of the first ``keep`` of every one of ``blocks`` equal blocks of ``full`` rows.

    None when everything is kept (the unsliced code path).
    """
    size = full // blocks
    if keep == size:
        return None
    return torch.cat([torch.arange(b * size, b * size + keep) for b in range(blocks)])


def family_adapter(model: nn.Module) -> FamilyAdapter:
    """The model's adapter, checked for what DynaBERT needs (a ValueError naming the family).

    Raises:
        ValueError: a family without an adapter (the supported ones listed), or layers already
            smaller than the config says (an extracted sub-network).
    """
    try:
        adapter = adapter_for(model)
        layers = adapter.layers(model)
    except (UnsupportedFamilyError, AttributeError) as err:
        raise ValueError(f"{type(model).__name__}: DynaBERT needs a supported encoder family: "
                         f"{err}") from err
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        raise ValueError(f"{type(model).__name__}: no encoder layers for DynaBERT")
    full_heads = model.config.num_attention_heads
    for index, layer in enumerate(layers):
        if adapter.num_heads(layer) != full_heads or \
                adapter.ffn(layer).neurons != intermediate_size(model.config):
            raise ValueError(f"{type(model).__name__}: layer {index} is smaller than its config "
                             "says (an extracted sub-network?); slice the full supernet instead")
    return adapter


def head_size(adapter: FamilyAdapter, model: nn.Module) -> int:
    """One head's width (the family's own rule: it never changes with slicing)."""
    return adapter.head_size(model.config)


def per_head_positions(adapter: FamilyAdapter, model: nn.Module) -> list:
    """Shared relative-position tables indexed by head (MPNet's bias): sliced with the heads."""
    return [p for p in adapter.relative_positions(model) if p.per_head_dim is not None]
