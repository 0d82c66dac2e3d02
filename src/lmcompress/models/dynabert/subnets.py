"""Which DynaBERT sub-network a (width, depth) pair names, and what it costs.

Pure arithmetic on a config, no modules: the rounding rule, the head and FFN grid and the
kept-layer rule (docs/dynabert.md §4, §5), the teacher matching of the width x depth stage
(§5.2), and the parameter and FLOP counts of an extracted sub-network (§8).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from transformers import PretrainedConfig

from lmcompress.specs import LayerMapSpec


class SubnetShape(NamedTuple):
    """What one (width, depth) pair keeps: the same in every kept layer."""

    heads: int
    """Attention heads kept per layer (the first ``heads`` after rewiring)."""
    ffn: int
    """FFN neurons kept per layer (the first ``ffn``)."""
    kept: list[int]
    """0-based indices of the kept layers, in order."""


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``: 4.5 -> 5 where Python's banker's ``round`` gives 4 (§4)."""
    return math.floor(x + 0.5)


def check_multiplier(name: str, value: float) -> None:
    """Refuse a width or depth multiplier outside (0, 1], naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{name}={value!r}: a DynaBERT multiplier must be a number in (0, 1]")


def kept_layers(num_layers: int, depth_mult: float) -> list[int]:
    """The official kept-layer rule (§5.1): ``[floor(i / m_d) for i < round_half_up(L * m_d)]``.

    12 layers: 0.5 -> [0, 2, 4, 6, 8, 10]; 0.75 -> [0, 1, 2, 4, 5, 6, 8, 9, 10].

    Raises:
        ValueError: ``depth_mult`` outside (0, 1], or so small that no layer is left.
    """
    check_multiplier("depth", depth_mult)
    depth = round_half_up(num_layers * depth_mult)
    if depth < 1:
        raise ValueError(f"depth={depth_mult}: keeps round_half_up({num_layers} x {depth_mult}) "
                         f"= 0 of {num_layers} layers; the smallest usable depth multiplier is "
                         f"{0.5 / num_layers:g}")
    # i < L*m_d + 1/2 implies i / m_d < L, so every index is a real layer, and 1/m_d >= 1
    # makes them distinct.
    return [math.floor(i / depth_mult) for i in range(depth)]


def subnet_shape(config: PretrainedConfig, width: float, depth: float) -> SubnetShape:
    """Heads, FFN neurons and kept layers of the (width, depth) sub-network of ``config`` (§4).

    Heads = round_half_up(H * width); the FFN follows the head grid, ``F * heads // H`` (the
    official rule), so BERT-base's widths 0.25..1.0 give 3/6/9/12 heads and 768..3072 neurons.

    Raises:
        ValueError: a multiplier outside (0, 1], or one that leaves no head or no layer.
    """
    check_multiplier("width", width)
    num_heads = config.num_attention_heads
    heads = round_half_up(num_heads * width)
    if heads < 1:
        raise ValueError(f"width={width}: keeps round_half_up({num_heads} x {width}) = 0 of "
                         f"{num_heads} attention heads; the smallest usable width multiplier is "
                         f"{0.5 / num_heads:g}")
    ffn = intermediate_size(config) * heads // num_heads
    return SubnetShape(heads, ffn, kept_layers(config.num_hidden_layers, depth))


def intermediate_size(config: PretrainedConfig) -> int:
    """FFN neurons per layer (DistilBERT calls it ``hidden_dim``)."""
    size = getattr(config, "intermediate_size", None)
    return int(size if size is not None else config.hidden_dim)


def dynabert_layer_map(num_layers: int, depth_mult: float) -> LayerMapSpec:
    """Hidden states matched in the width x depth stage (§5.2): teacher ``kept + [L]``.

    The student's hidden states are [embeddings, out(kept[0]), ..., out(kept[-1])], indices
    0..d: entry i < d is the input of the student's layer i, which is teacher layer kept[i], and
    it is matched to the teacher's input of that same layer (hidden state kept[i]); entry d, the
    student's output, to the teacher's output (hidden state L).
    12 layers, 0.5: teacher [0, 2, 4, 6, 8, 10, 12] <-> student [0, 1, 2, 3, 4, 5, 6].
    """
    kept = kept_layers(num_layers, depth_mult)
    return LayerMapSpec(teacher=[*kept, num_layers], student=list(range(len(kept) + 1)))


def layer_params(hidden: int, attention_width: int, ffn: int) -> int:
    """Parameters of one BERT layer whose attention is ``attention_width`` = heads x head size.

    Q, K, V (hidden -> attention_width, with bias), the attention output (attention_width ->
    hidden, with bias), the FFN (hidden -> ffn -> hidden, with biases) and two LayerNorms.
    """
    attention = 3 * (hidden * attention_width + attention_width) + attention_width * hidden
    feed_forward = hidden * ffn + ffn + ffn * hidden
    return attention + feed_forward + hidden + hidden + 2 * 2 * hidden


def encoder_flops(config: PretrainedConfig, width: float, depth: float, seq_len: int) -> int:
    """Matmul FLOPs of the encoder for one sequence of ``seq_len`` tokens (§8).

    Per kept layer, with a = heads x head size and 2 FLOPs per multiply-add: Q/K/V projections
    ``2·n·d·3a``, attention scores ``2·n²·a``, context ``2·n²·a``, attention output ``2·n·a·d``
    and FFN ``2·2·n·d·f``. Softmax, LayerNorm, GELU and the embeddings are left out.
    """
    heads, ffn, kept = subnet_shape(config, width, depth)
    hidden, n = config.hidden_size, seq_len
    a = heads * (hidden // config.num_attention_heads)
    per_layer = 2 * n * hidden * 3 * a + 2 * 2 * n * n * a + 2 * n * a * hidden
    per_layer += 2 * 2 * n * hidden * ffn
    return len(kept) * per_layer
