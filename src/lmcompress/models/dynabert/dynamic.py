"""Width- and depth-adaptive BERT: one set of weights, every DynaBERT sub-network at forward time.

``set_subnet(model, width, depth)`` makes the model compute the (width, depth) sub-network
(docs/dynabert.md §6): the six linears of every layer multiply by the top-left block of their
weight (fewer heads, fewer FFN neurons: smaller matmuls, like the official DynaLinear), and the
encoder runs only the kept layers. The first call makes the model dynamic in place by giving
those modules an instance-level ``forward`` (the pattern accelerate's hooks use). Nothing else
changes: same classes, same parameter objects (optimizers stay valid), same ``state_dict`` keys
(Lightning checkpoints and ``save_pretrained`` save the whole supernet), and at (1.0, 1.0) the
original code path runs, so the outputs are bit-identical to the original model's.

    set_subnet(model, 0.5, 0.75)          # 6 of 12 heads, FFN 1536, layers 0,1,2,4,5,6,8,9,10
    with subnet(model, 0.25, 0.5):        # temporarily; the previous setting comes back after
        logits = model(**batch).logits
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from lmcompress.models.dynabert.slicing import (
    family_adapter,
    head_size,
    kept_rows,
    layer_slices,
    per_head_positions,
)
from lmcompress.models.dynabert.subnets import subnet_shape
from lmcompress.models.families.base import adapter_for


def bert_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The encoder layers of an unsliced model of a supported family (docs/dynabert.md §11).

    Raises:
        ValueError: a family without an adapter (named, the supported ones listed), or
            layers already smaller than the config (an extracted sub-network).
    """
    return family_adapter(model).layers(model)


def make_dynamic(model: PreTrainedModel) -> PreTrainedModel:
    """Make ``model`` width- and depth-adaptive in place (idempotent), at (1.0, 1.0); returns it.

    Raises:
        ValueError: an architecture the slicer does not support (see :func:`bert_layers`).
    """
    if current_subnet(model) is not None:
        return model
    adapter = family_adapter(model)
    for layer in adapter.layers(model):
        for part in layer_slices(adapter, layer):
            part.linear.dynabert_rows, part.linear.dynabert_in = None, part.linear.in_features
            part.linear.forward = partial(_sliced_linear_forward, part.linear)
    for table in per_head_positions(adapter, model):
        owner = next(m for m in model.modules() if getattr(m, "weight", None) is table.param)
        owner.dynabert_heads = None
        owner.forward = partial(_sliced_table_forward, owner, table.per_head_dim)
    model.dynabert_kept = None
    model.forward = partial(_kept_layers_forward, model, adapter)
    model.dynabert_subnet = (1.0, 1.0)
    return model


def set_subnet(model: PreTrainedModel, width: float, depth: float) -> None:
    """Make ``model`` compute the (width, depth) sub-network (making it dynamic if needed).

    Raises:
        ValueError: a multiplier outside (0, 1], one that leaves no head or no layer, or an
            unsupported architecture. Nothing changes when it is raised.
    """
    if current_subnet(model) is None:
        family_adapter(model)  # refuse before anything changes
    shape = subnet_shape(model.config, width, depth)
    make_dynamic(model)
    adapter = adapter_for(model)
    full = adapter.layers(model)
    for layer in full:
        for part in layer_slices(adapter, layer):
            keep = shape.heads * head_size(adapter, model) if part.unit == "heads" else shape.ffn
            if part.side == "rows":
                part.linear.dynabert_rows = kept_rows(part.linear.out_features, part.blocks, keep)
            else:
                part.linear.dynabert_in = keep
        if shape.heads != adapter.num_heads(layer) and _records_heads(adapter, layer):
            adapter.set_num_heads(layer, shape.heads)
    for table in per_head_positions(adapter, model):
        owner = next(m for m in model.modules() if getattr(m, "weight", None) is table.param)
        owner.dynabert_heads = None if shape.heads == model.config.num_attention_heads \
            else shape.heads
    model.dynabert_kept = shape.kept if len(shape.kept) < len(full) else None
    model.dynabert_subnet = (width, depth)


def _records_heads(adapter, layer: nn.Module) -> bool:
    """Whether the attention keeps a head count of its own (ModernBERT's follows ``Wqkv``)."""
    module = adapter.attention(layer).module
    return any(hasattr(module, name) for name in ("num_attention_heads", "n_heads"))


def current_subnet(model: nn.Module) -> tuple[float, float] | None:
    """The (width, depth) ``model`` computes, or None if it was never made dynamic."""
    return getattr(model, "dynabert_subnet", None)


@contextmanager
def subnet(model: PreTrainedModel, width: float, depth: float) -> Iterator[PreTrainedModel]:
    """Compute the (width, depth) sub-network inside the block, then restore the previous one."""
    previous = current_subnet(model) or (1.0, 1.0)
    set_subnet(model, width, depth)
    try:
        yield model
    finally:
        set_subnet(model, *previous)


def _kept_layers_forward(model: PreTrainedModel, adapter, *args, **kwargs):
    """The model's own forward, over the kept layers only while it runs (docs/dynabert.md §5).

    The kept layers are installed through the adapter for the call and the full list put back
    after it, so ``state_dict`` keys, the config and parameters outside a forward are always the
    supernet's. Layers that do not run record no hidden state: ``output_hidden_states`` gives
    d + 1 entries, [embeddings, out(kept[0]), ..., out(kept[-1])] (§5.2).
    """
    forward = type(model).forward
    if model.dynabert_kept is None:
        return forward(model, *args, **kwargs)
    full = adapter.layers(model)
    adapter.set_layers(model, nn.ModuleList(full[i] for i in model.dynabert_kept))
    try:
        return forward(model, *args, **kwargs)
    finally:
        adapter.set_layers(model, full)


def _sliced_linear_forward(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``nn.Linear`` on the kept rows and the first ``dynabert_in`` columns of its weight."""
    weight, bias = linear.weight, linear.bias
    rows, in_features = linear.dynabert_rows, linear.dynabert_in
    if rows is not None:
        rows = rows.to(weight.device)
        weight = weight.index_select(0, rows)
        bias = None if bias is None else bias.index_select(0, rows)
    if in_features != linear.in_features:
        weight = weight[:, :in_features]
    return F.linear(x, weight, bias)


def _sliced_table_forward(embedding: nn.Embedding, head_dim: int, ids: torch.Tensor
                          ) -> torch.Tensor:
    """A shared per-head position table (MPNet's bias) restricted to the first kept heads."""
    out = type(embedding).forward(embedding, ids)
    heads = embedding.dynabert_heads
    # the table's head dimension is the last one of its lookup
    return out if heads is None else out.narrow(-1 if head_dim == 1 else head_dim, 0, heads)
