"""Export a DynaBERT sub-network as a physically smaller model (docs/dynabert.md §7).

The official code only ever runs sub-networks inside the full supernet. Here the (width, depth)
sub-network becomes its own model: kept layers renumbered 0..d-1, Q/K/V rows and
attention-output columns cut to the kept heads, FFN rows and columns cut to the kept neurons.
Its outputs equal the dynamic model's at (width, depth) (fp32: within 1e-5), and it saves with
``save_pretrained`` and reloads through the Auto API:

* all heads kept (depth-only or FFN-only): a plain BERT checkpoint (fewer layers, smaller
  ``intermediate_size``) that any transformers install loads, no lmcompress needed;
* fewer heads: a :class:`SlicedBertConfig` checkpoint, loadable once ``lmcompress`` is imported.

    small = extract_subnetwork(model, width=0.5, depth=0.75)
    small.save_pretrained("outputs/artifacts/sst2_w0.50_d0.75")
"""

from __future__ import annotations

import copy

import torch
from transformers import PretrainedConfig, PreTrainedModel

from lmcompress.models.dynabert.auto import SLICED_CLASSES, SlicedBertConfig
from lmcompress.models.dynabert.dynamic import (
    FFN_COLUMNS,
    FFN_ROWS,
    HEAD_COLUMNS,
    HEAD_ROWS,
    bert_layers,
)
from lmcompress.models.dynabert.subnets import SubnetShape, layer_params, subnet_shape

# Config keys a SlicedBertConfig sets itself rather than copying from the source config.
_OWN_KEYS = ("model_type", "transformers_version", "architectures")


def extract_subnetwork(model: PreTrainedModel, width: float, depth: float) -> PreTrainedModel:
    """A new, smaller model computing ``model``'s (width, depth) sub-network.

    ``model`` itself is not changed (dynamic or not, whatever sub-network it is set to). The
    copy has the source's dtype, device and train/eval mode.

    Raises:
        ValueError: a multiplier outside (0, 1] or leaving nothing, an unsupported
            architecture, or fewer heads on a class with no sliced twin (named).
    """
    layers = bert_layers(model)
    shape = subnet_shape(model.config, width, depth)
    head_size = layers[0].attention.self.attention_head_size
    config, model_class = _target(model, shape, head_size)
    weight = layers[0].intermediate.dense.weight
    small = model_class(config).to(device=weight.device, dtype=weight.dtype)
    small.load_state_dict(_sliced_state_dict(model, layers, shape, head_size), strict=True)
    return small.train(model.training)


def param_count(model: PreTrainedModel, width: float, depth: float) -> int:
    """Parameters of ``extract_subnetwork(model, width, depth)``, without building it (§8).

    The embeddings, pooler and task head are counted on ``model`` (they are kept whole); each
    kept layer by :func:`layer_params`.
    """
    layers = bert_layers(model)
    heads, ffn, kept = subnet_shape(model.config, width, depth)
    outside = sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in layers.parameters())
    attention_width = heads * layers[0].attention.self.attention_head_size
    return outside + len(kept) * layer_params(model.config.hidden_size, attention_width, ffn)


def check_exportable(model: PreTrainedModel, width: float, depth: float) -> None:
    """Refuse, before any training, a (width, depth) whose export needs a missing sliced class.

    The same rule :func:`extract_subnetwork` applies at the end: fewer heads than the config's
    need the family's head-sliced twin (``auto.SLICED_CLASSES``).
    """
    shape = subnet_shape(model.config, width, depth)
    if shape.heads != model.config.num_attention_heads:
        sliced_twin(model, shape)


def sliced_twin(model: PreTrainedModel, shape: SubnetShape) -> type[PreTrainedModel]:
    """The head-sliced class exporting ``model`` at ``shape`` (a ValueError naming both if none)."""
    sliced_class = SLICED_CLASSES.get(type(model))
    if sliced_class is None:
        supported = ", ".join(cls.__name__ for cls in SLICED_CLASSES)
        raise ValueError(f"{type(model).__name__}: exporting {shape.heads} of "
                         f"{model.config.num_attention_heads} attention heads needs a sliced "
                         f"twin class, available for {supported}; widths that keep every head "
                         "export any BERT-family class")
    return sliced_class


def _target(model: PreTrainedModel, shape: SubnetShape, head_size: int
            ) -> tuple[PretrainedConfig, type[PreTrainedModel]]:
    """Config and class of the exported model: plain BERT if every head stays, else sliced."""
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(shape.kept)
    config.intermediate_size = shape.ffn
    if shape.heads == model.config.num_attention_heads:
        return config, type(model)
    sliced_class = sliced_twin(model, shape)
    fields = {k: v for k, v in config.to_dict().items() if k not in _OWN_KEYS}
    fields.update(num_heads_per_layer=[shape.heads] * len(shape.kept),
                  attention_head_size=head_size)
    return SlicedBertConfig(**fields), sliced_class


def _sliced_state_dict(model: PreTrainedModel, layers: torch.nn.ModuleList, shape: SubnetShape,
                       head_size: int) -> dict[str, torch.Tensor]:
    """``model``'s weights with layers renumbered 0..d-1 and every sliced linear cut (§7)."""
    prefix = next(name for name, module in model.named_modules() if module is layers) + "."
    attention, ffn = shape.heads * head_size, shape.ffn
    keep = {  # key inside a layer -> the block of that tensor the sub-network uses
        **{f"{path}.{kind}": (slice(attention),) for path in HEAD_ROWS
           for kind in ("weight", "bias")},
        f"{HEAD_COLUMNS}.weight": (slice(None), slice(attention)),
        f"{FFN_ROWS}.weight": (slice(ffn),),
        f"{FFN_ROWS}.bias": (slice(ffn),),
        f"{FFN_COLUMNS}.weight": (slice(None), slice(ffn)),
    }
    position = {old: new for new, old in enumerate(shape.kept)}
    state = {}
    for key, tensor in model.state_dict().items():
        if not key.startswith(prefix):
            state[key] = tensor
            continue
        index, inner = key[len(prefix):].split(".", 1)
        if int(index) in position:
            state[f"{prefix}{position[int(index)]}.{inner}"] = tensor[keep.get(inner, ())]
    return state
