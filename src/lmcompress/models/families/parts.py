"""What an adapter hands out about one layer: its attention, FFN and relative-position parts.

Re-exported by ``models/families/base.py`` (docs/families.md). ``nn.Linear`` weights are
``[out_features, in_features]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class AttentionParts:
    """The projections of one layer's self-attention.

    Exactly one of (``query``, ``key``, ``value``) or ``qkv`` is set.
    """

    query: nn.Linear | None
    """Separate query projection ``[heads * head_size, hidden]`` (None when fused)."""
    key: nn.Linear | None
    """Separate key projection (None when fused)."""
    value: nn.Linear | None
    """Separate value projection (None when fused)."""
    qkv: nn.Linear | None
    """Fused projection ``[3 * heads * head_size, hidden]``, output rows ordered
    ``(q | k | v)``, each block head-major (ModernBERT's ``Wqkv``); None when separate."""
    output: nn.Linear
    """Output projection ``[hidden, heads * head_size]`` (heads are its input columns)."""
    module: nn.Module
    """The module holding the head-count attributes (see :meth:`FamilyAdapter.set_num_heads`)."""
    position: tuple[nn.Linear, ...] = ()
    """Per-layer projections of relative positions whose output rows are heads, sliced like
    ``query``/``key`` (DeBERTa-v2 with ``share_att_key: false``: ``pos_key_proj``,
    ``pos_query_proj``); empty for every other family."""

    @property
    def fused(self) -> bool:
        """Whether q, k and v come from one fused linear."""
        return self.qkv is not None


@dataclass(frozen=True)
class FfnParts:
    """The feed-forward block of one layer."""

    input: nn.Linear
    """``[intermediate, hidden]``; gated: ``[2 * intermediate, hidden]`` (value | gate rows)."""
    output: nn.Linear
    """``[hidden, intermediate]`` (neurons are its input columns)."""
    gated: bool = False
    """Whether ``input`` holds two halves (GLU: ``act(value) * gate``, ModernBERT)."""

    @property
    def neurons(self) -> int:
        """The number of intermediate neurons (the width a slicer removes)."""
        return self.output.in_features


@dataclass(frozen=True)
class RelativePosition:
    """A relative-position parameter shared by all layers that slicing must respect."""

    name: str
    """Its ``named_parameters`` name in the task model."""
    param: nn.Parameter
    """The tensor itself."""
    per_head_dim: int | None
    """The dimension indexed by attention head (MPNet's bias ``[buckets, heads]``: 1), or None
    when it is hidden-wide (DeBERTa's ``rel_embeddings``: not touched by head slicing)."""
