"""Export a DynaBERT sub-network as a physically smaller model (docs/dynabert.md §7, §11).

The official code only ever runs sub-networks inside the full supernet. Here the (width, depth)
sub-network becomes its own model, for every supported family (through its adapter): kept
layers renumbered 0..d-1, the head rows of q/k/v (of each q | k | v block of a fused ``Wqkv``,
and of DeBERTa's position projections) and the attention-output columns cut to the kept heads,
the FFN rows (both value | gate halves of a gated ``Wi``) and columns cut to the kept neurons, a
shared per-head position table (MPNet) cut to the kept heads. Its outputs equal the dynamic
model's at (width, depth) (fp32: within 1e-5), and ``save_pretrained`` gives a folder that loads
in a plain transformers environment, lmcompress not installed:

* all heads kept (depth-only or FFN-only): the family's stock class (fewer layers, a smaller
  intermediate size), loaded with ``AutoModelFor...from_pretrained(folder)``;
* fewer heads: the family's head-sliced twin (:mod:`.modeling_lmcompress_sliced`), whose file
  is copied into the folder and named by ``auto_map``: ``from_pretrained(folder,
  trust_remote_code=True)``; after ``import lmcompress`` no ``trust_remote_code`` is needed.

    small = extract_subnetwork(model, width=0.5, depth=0.75)
    small.save_pretrained("outputs/artifacts/sst2_w0.50_d0.75")
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import PreTrainedModel

from lmcompress.models.dynabert import modeling_lmcompress_sliced as twins
from lmcompress.models.dynabert.slicing import (
    family_adapter,
    head_size,
    kept_rows,
    layer_slices,
    per_head_positions,
)
from lmcompress.models.dynabert.subnets import SubnetShape, subnet_shape

HEAD_ATTRS = ("num_attention_heads", "all_head_size", "n_heads")
"""Attention-module attributes a twin restores (whichever the family's module has)."""


def extract_subnetwork(model: PreTrainedModel, width: float, depth: float) -> PreTrainedModel:
    """A new, smaller model computing ``model``'s (width, depth) sub-network.

    ``model`` itself is not changed (dynamic or not, whatever sub-network it is set to). The
    copy has the source's dtype, device and train/eval mode.

    Raises:
        ValueError: a multiplier outside (0, 1] or leaving nothing, an unsupported family, or
            fewer heads on a class with no sliced twin (named).
    """
    family_adapter(model)  # an unsupported family is refused by name first
    shape = subnet_shape(model.config, width, depth)
    twin = sliced_twin(model, shape)
    small = _sliced_copy(model, shape)
    if twin is None:
        return small
    config = twin.config_class(**{**small.config.to_dict(), "sliced_layout": _layout(small)})
    for key in ("model_type", "transformers_version"):
        config.__dict__.pop(key, None)
    exported = twin(config).to(device=next(model.parameters()).device,
                               dtype=next(model.parameters()).dtype)
    exported.load_state_dict(small.state_dict(), strict=True)
    exported.register_for_auto_class(_auto_name(type(model)))
    type(config).register_for_auto_class()
    return exported.train(model.training)


def param_count(model: PreTrainedModel, width: float, depth: float) -> int:
    """Parameters of ``extract_subnetwork(model, width, depth)``, without building it (§8).

    Everything outside the layers is kept whole (a per-head position table loses the columns of
    the dropped heads); each kept layer loses the sliced rows and columns of its linears.
    """
    adapter = family_adapter(model)
    shape = subnet_shape(model.config, width, depth)
    layers, size = adapter.layers(model), head_size(adapter, model)
    total = sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in layers.parameters())
    for table in per_head_positions(adapter, model):
        total -= table.param.numel() * (model.config.num_attention_heads - shape.heads) // \
            model.config.num_attention_heads
    for index in shape.kept:
        layer = layers[index]
        total += sum(p.numel() for p in layer.parameters())
        for part in layer_slices(adapter, layer):
            out_features, in_features = _sliced_size(part, shape, size)
            linear = part.linear
            total -= linear.weight.numel() - out_features * in_features
            if linear.bias is not None:
                total -= linear.bias.numel() - out_features
    return total


def check_exportable(model: PreTrainedModel, width: float, depth: float) -> None:
    """Refuse, before any training, a (width, depth) or family the export cannot handle."""
    family_adapter(model)
    sliced_twin(model, subnet_shape(model.config, width, depth))


def sliced_twin(model: PreTrainedModel, shape: SubnetShape) -> type[PreTrainedModel] | None:
    """The head-sliced class exporting ``model`` at ``shape``; None if every head stays.

    Raises:
        ValueError: an unsupported family, or a task class with no twin (both named).
    """
    adapter = family_adapter(model)
    if shape.heads == model.config.num_attention_heads:
        return None
    family = model.config.model_type.removeprefix(twins.PREFIX)
    name = f"Sliced{type(model).__name__}"
    if family not in twins.FAMILIES or name not in twins.TWINS:
        families = ", ".join(f for f in twins.FAMILIES if twins.twin_names(f)[0] in twins.TWINS)
        raise ValueError(f"{type(model).__name__}: exporting {shape.heads} of "
                         f"{model.config.num_attention_heads} attention heads needs a sliced "
                         f"twin class, available for the ...Model, ...ForSequenceClassification "
                         f"and ...ForTokenClassification classes of {families} (this is family "
                         f"{adapter.name}); widths that keep every head export the stock class")
    return twins.TWINS[name]


def _auto_name(cls: type) -> str:
    """The Auto class of a task class (``...ForTokenClassification`` -> its Auto)."""
    for suffix in ("ForSequenceClassification", "ForTokenClassification"):
        if cls.__name__.endswith(suffix):
            return "AutoModel" + suffix
    return "AutoModel"


def _sliced_size(part, shape: SubnetShape, size: int) -> tuple[int, int]:
    keep = shape.heads * size if part.unit == "heads" else shape.ffn
    linear = part.linear
    if part.side == "rows":
        return keep * part.blocks, linear.in_features
    return linear.out_features, keep


def _sliced_copy(model: PreTrainedModel, shape: SubnetShape) -> PreTrainedModel:
    """A plain (not dynamic) copy of ``model`` with its linears cut to ``shape``, kept layers."""
    adapter = family_adapter(model)
    small = copy.deepcopy(model)
    for module in small.modules():  # drop the dynamic model's instance forwards and settings
        for key in [k for k in vars(module) if k == "forward" or k.startswith("dynabert_")]:
            delattr(module, key)
    size = head_size(adapter, small)
    with torch.no_grad():
        for layer in adapter.layers(small):
            for part in layer_slices(adapter, layer):
                _cut(part, shape, size)
            adapter.set_num_heads(layer, shape.heads)
        for table in per_head_positions(adapter, small):
            owner = next(m for m in small.modules() if getattr(m, "weight", None) is table.param)
            owner.weight = nn.Parameter(table.param.narrow(table.per_head_dim, 0, shape.heads)
                                        .clone(), requires_grad=table.param.requires_grad)
            owner.embedding_dim = owner.weight.shape[1]
    layers = adapter.layers(small)
    adapter.set_layers(small, nn.ModuleList(layers[i] for i in shape.kept))
    if hasattr(small.config, "hidden_dim") and small.config.model_type.endswith("distilbert"):
        small.config.hidden_dim = shape.ffn
    else:
        small.config.intermediate_size = shape.ffn
    return small


def _cut(part, shape: SubnetShape, size: int) -> None:
    """Replace ``part.linear``'s weight (and bias) with the kept block, in place."""
    linear = part.linear
    keep = shape.heads * size if part.unit == "heads" else shape.ffn
    weight, bias = linear.weight, linear.bias
    if part.side == "rows":
        rows = kept_rows(linear.out_features, part.blocks, keep)
        if rows is not None:
            weight = weight.index_select(0, rows.to(weight.device))
            bias = None if bias is None else bias.index_select(0, rows.to(bias.device))
        linear.out_features = weight.shape[0]
    else:
        weight = weight[:, :keep]
        linear.in_features = keep
    linear.weight = nn.Parameter(weight.clone(), requires_grad=linear.weight.requires_grad)
    if bias is not None:
        linear.bias = nn.Parameter(bias.clone(), requires_grad=linear.bias.requires_grad)


def _layout(small: PreTrainedModel) -> dict:
    """The twin's ``sliced_layout`` (its module doc): the sliced shapes of ``small``."""
    adapter = family_adapter_of_sliced(small)
    base = adapter.base(small)
    layers = adapter.layers(small)
    names = {id(m): n for n, m in layers[0].named_modules()}
    layer = layers[0]
    linears = {names[id(p.linear)]: [p.linear.out_features, p.linear.in_features]
               for p in layer_slices(adapter, layer)}
    module = adapter.attention(layer).module
    attrs = {names[id(module)]: {a: getattr(module, a) for a in HEAD_ATTRS if hasattr(module, a)}}
    base_names = {id(m): n for n, m in base.named_modules()}
    tables = {}
    for table in per_head_positions(adapter, small):
        owner = next(m for m in base.modules() if getattr(m, "weight", None) is table.param)
        tables[base_names[id(owner)]] = list(owner.weight.shape)
    return {"layers": next(n for n, m in base.named_modules() if m is layers),
            "linears": linears, "attrs": {k: v for k, v in attrs.items() if v}, "tables": tables}


def family_adapter_of_sliced(model: PreTrainedModel):
    """The adapter of an already sliced model (no full-size check)."""
    from lmcompress.models.families.base import adapter_for
    return adapter_for(model)
