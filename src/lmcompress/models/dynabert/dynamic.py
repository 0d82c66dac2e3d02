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
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

from lmcompress.models.dynabert.subnets import subnet_shape
from lmcompress.models.surgery import encoder_layers

# The linears a DynaBERT width slices, and which side: attention projections and the FFN's first
# linear lose output rows; the attention output and the FFN's second linear lose input columns.
HEAD_ROWS = ("attention.self.query", "attention.self.key", "attention.self.value")
HEAD_COLUMNS = "attention.output.dense"
FFN_ROWS = "intermediate.dense"
FFN_COLUMNS = "output.dense"
SLICED_LINEARS = (*HEAD_ROWS, HEAD_COLUMNS, FFN_ROWS, FFN_COLUMNS)


def bert_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The encoder layers of an unsliced BERT-family model, checked for what slicing needs.

    Accepted: BERT (and MiniLM, which is BERT) and any model whose ``base_model.encoder.layer``
    layers have BERT's ``attention.self.{query,key,value}``, ``attention.output.dense``,
    ``intermediate.dense`` and ``output.dense`` linears, at the sizes its config gives.

    Raises:
        ValueError: another architecture (named), or layers already smaller than the config
            (an extracted sub-network).
    """
    name = type(model).__name__
    try:
        layers = encoder_layers(model)
    except TypeError:
        layers = None
    if not layers or not all(_has_bert_structure(layer) for layer in layers):
        raise ValueError(
            f"{name}: DynaBERT slicing supports BERT-family encoders only (base_model.encoder."
            f"layer[i] with attention.self.query/key/value, attention.output.dense, "
            f"intermediate.dense and output.dense linears), e.g. BERT or MiniLM")
    config = model.config
    full = (config.num_attention_heads * layers[0].attention.self.attention_head_size,
            config.intermediate_size)
    for index, layer in enumerate(layers):
        if (layer.attention.self.query.out_features, layer.intermediate.dense.out_features) != full:
            raise ValueError(f"{name}: layer {index} is smaller than its config says (an "
                             "extracted sub-network?); slice the full supernet instead")
    return layers


def _has_bert_structure(layer: nn.Module) -> bool:
    try:
        linears = [layer.get_submodule(path) for path in SLICED_LINEARS]
    except AttributeError:
        return False
    attention = layer.get_submodule("attention.self")
    return all(isinstance(m, nn.Linear) for m in linears) and hasattr(
        attention, "attention_head_size")


def make_dynamic(model: PreTrainedModel) -> PreTrainedModel:
    """Make ``model`` width- and depth-adaptive in place (idempotent), at (1.0, 1.0); returns it.

    Raises:
        ValueError: an architecture the slicer does not support (see :func:`bert_layers`).
    """
    if current_subnet(model) is not None:
        return model
    layers = bert_layers(model)
    for layer in layers:
        for path in SLICED_LINEARS:
            linear = layer.get_submodule(path)
            linear.dynabert_out, linear.dynabert_in = linear.out_features, linear.in_features
            linear.forward = partial(_sliced_linear_forward, linear)
    encoder = _encoder(model)
    encoder.dynabert_kept = None
    encoder.forward = partial(_kept_layers_forward, encoder)
    model.dynabert_subnet = (1.0, 1.0)
    return model


def set_subnet(model: PreTrainedModel, width: float, depth: float) -> None:
    """Make ``model`` compute the (width, depth) sub-network (making it dynamic if needed).

    Raises:
        ValueError: a multiplier outside (0, 1], one that leaves no head or no layer, or an
            unsupported architecture. Nothing changes when it is raised.
    """
    layers = bert_layers(model)  # refuse before anything changes
    shape = subnet_shape(model.config, width, depth)
    make_dynamic(model)
    attention_width = shape.heads * layers[0].attention.self.attention_head_size
    for layer in layers:
        for path in HEAD_ROWS:
            layer.get_submodule(path).dynabert_out = attention_width
        layer.get_submodule(HEAD_COLUMNS).dynabert_in = attention_width
        layer.get_submodule(FFN_ROWS).dynabert_out = shape.ffn
        layer.get_submodule(FFN_COLUMNS).dynabert_in = shape.ffn
    _encoder(model).dynabert_kept = None if len(shape.kept) == len(layers) else shape.kept
    model.dynabert_subnet = (width, depth)


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


def _encoder(model: PreTrainedModel) -> nn.Module:
    return getattr(model, model.base_model_prefix, model).encoder


def _sliced_linear_forward(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``nn.Linear`` on the top-left [out, in] block of its weight (and the first out biases)."""
    weight, bias = linear.weight, linear.bias
    out_features, in_features = linear.dynabert_out, linear.dynabert_in
    if (out_features, in_features) != (linear.out_features, linear.in_features):
        weight = weight[:out_features, :in_features]
        bias = None if bias is None else bias[:out_features]
    return F.linear(x, weight, bias)


def _kept_layers_forward(encoder: nn.Module, *args, **kwargs):
    """The encoder's forward: its class's own at full depth, else over the kept layers only."""
    if encoder.dynabert_kept is None:
        return type(encoder).forward(encoder, *args, **kwargs)
    return _run_kept_layers(encoder, *args, **kwargs)


def _run_kept_layers(encoder: nn.Module, hidden_states: torch.Tensor,
                     attention_mask: torch.Tensor | None = None,
                     encoder_hidden_states: torch.Tensor | None = None,
                     encoder_attention_mask: torch.Tensor | None = None,
                     cache=None, use_cache: bool | None = None,
                     **kwargs) -> BaseModelOutputWithPastAndCrossAttentions:
    """BertEncoder.forward over ``encoder.dynabert_kept`` (the same call for every layer).

    Layers that do not run record no hidden state, so ``output_hidden_states`` gives d + 1
    entries: [embeddings, out(kept[0]), ..., out(kept[-1])] (docs/dynabert.md §5.2).
    """
    for index in encoder.dynabert_kept:
        hidden_states = encoder.layer[index](
            hidden_states, attention_mask, encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, cache=cache, **kwargs)
    return BaseModelOutputWithPastAndCrossAttentions(
        last_hidden_state=hidden_states, cache=cache if use_cache else None)
