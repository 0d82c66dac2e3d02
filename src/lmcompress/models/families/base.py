"""The encoder-family adapter contract and its registry (docs/families.md).

An adapter is the only place that knows how one encoder family (BERT, RoBERTa, DeBERTa-v2,
...) lays out its modules. Every stage that touches a model's inside goes through
:func:`adapter_for`: layer surgery and students (``models/surgery.py``, ``models/student.py``),
AMoC's cached prefix, head logits and trainable sets (``amoc/``), and DynaBERT's importance,
rewiring, slicing and export. A family without an adapter is refused by name, listing the
supported ones, before any training starts.

Adding a family is one file in this package defining a :class:`FamilyAdapter` subclass,
registered with :func:`register`, plus its tiny config in ``tests/helpers/families.py``.

Conventions used by every method:

* ``model`` is a task model (``...ForSequenceClassification`` / ``...ForTokenClassification``
  or the scalar-mix model); ``layer`` is one element of :meth:`FamilyAdapter.layers`.
* Layer positions are 0-based; hidden state ``b`` is the one *entering* layer ``b``
  (0 = the embedding output), as in HF's ``output_hidden_states``.
* ``nn.Linear`` weights are ``[out_features, in_features]``: a head's rows in a projection are
  ``head * head_size .. (head + 1) * head_size`` of the *output* dimension of q/k/v and of the
  *input* dimension of the attention output projection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from lmcompress.models.families.parts import AttentionParts, FfnParts, RelativePosition

__all__ = ["AttentionParts", "FamilyAdapter", "FfnParts", "RelativePosition",
           "UnsupportedFamilyError", "adapter_for", "register", "supported_model_types"]


class UnsupportedFamilyError(TypeError):
    """A model or config of an encoder family that has no adapter (the message lists them)."""


class FamilyAdapter:
    """How one encoder family lays out its modules. Subclasses override what differs.

    The defaults describe BERT (``base.encoder.layer``, ``attention.self.{query,key,value}``,
    ``attention.output.dense``, ``intermediate.dense``, ``output.dense``).
    """

    name: ClassVar[str] = "bert"
    """Family name used in messages and docs."""
    model_types: ClassVar[tuple[str, ...]] = ()
    """``config.model_type`` values this adapter handles."""
    optional_config_keys: ClassVar[tuple[str, ...]] = ()
    """Config keys the family's modeling code reads with a default although its config class
    does not define them (DeBERTa-v3's ``position_buckets``...): a random-init ``config`` may
    set them (``models/hub.build_config`` refuses every other unknown key)."""

    def complete_config(self, config: Any, overrides: dict[str, Any]) -> None:
        """Re-derive what a config computes at construction after ``overrides`` were set.

        ``models/hub.build_config`` sets random-init keys on a default config one by one;
        a family whose config derives per-layer lists from them (ModernBERT's
        ``layer_types``) rebuilds them here. The default: nothing to derive.
        """

    # ---------------------------------------------------------------- structure
    def base(self, model: nn.Module) -> nn.Module:
        """The base (headless) model inside ``model``, e.g. ``model.bert``."""
        return getattr(model, model.base_model_prefix, model)

    def encoder(self, model: nn.Module) -> nn.Module:
        """The module that owns the layer list (``base.encoder``; DistilBERT ``transformer``)."""
        return self.base(model).encoder

    def layers(self, model: nn.Module) -> nn.ModuleList:
        """The ``ModuleList`` of Transformer layers, bottom first."""
        return self.encoder(model).layer

    def set_layers(self, model: nn.Module, layers: nn.ModuleList) -> None:
        """Install ``layers`` as the layer list and make the config and bookkeeping agree.

        Sets ``config.num_hidden_layers`` and each layer's position attributes (``layer_idx``);
        families with per-layer config lists (ModernBERT's ``layer_types``) update them too.
        ``layers`` must be modules taken from a model of this family, in their new order.
        """
        self.encoder(model).layer = layers
        self.after_set_layers(model, layers)

    def after_set_layers(self, model: nn.Module, layers: nn.ModuleList) -> None:
        """Config and per-layer bookkeeping after :meth:`set_layers` (the default: BERT's)."""
        model.config.num_hidden_layers = len(layers)
        for position, layer in enumerate(layers):  # KV-cache ids
            attn = self.attention(layer).module
            if hasattr(attn, "layer_idx"):
                attn.layer_idx = position

    def embeddings(self, model: nn.Module) -> nn.Module:
        """The embeddings module (its output is hidden state 0)."""
        return self.base(model).embeddings

    def input_modules(self, model: nn.Module) -> list[nn.Module]:
        """Everything that computes hidden state 0 (embeddings, ELECTRA's projection too)."""
        return [self.embeddings(model)]

    def attention(self, layer: nn.Module) -> AttentionParts:
        """The self-attention projections of ``layer``."""
        s = layer.attention.self
        return AttentionParts(s.query, s.key, s.value, None, layer.attention.output.dense, s)

    def ffn(self, layer: nn.Module) -> FfnParts:
        """The feed-forward input and output matrices of ``layer``."""
        return FfnParts(layer.intermediate.dense, layer.output.dense)

    def num_heads(self, layer: nn.Module) -> int:
        """The attention heads ``layer`` currently computes (after any slicing)."""
        return int(self.attention(layer).module.num_attention_heads)

    def head_size(self, config: Any) -> int:
        """The size of one attention head (``hidden / heads`` unless the config says otherwise)."""
        explicit = getattr(config, "attention_head_size", None)
        if explicit:
            return int(explicit)
        return config.hidden_size // config.num_attention_heads

    def set_num_heads(self, layer: nn.Module, heads: int) -> None:
        """Record that ``layer`` now computes ``heads`` heads (after its projections are sliced).

        Updates the attention module's head-count attributes so its reshapes agree with the
        sliced projections (the head size never changes).
        """
        module = self.attention(layer).module
        module.num_attention_heads = heads
        module.all_head_size = heads * module.attention_head_size

    def positions_in_embeddings(self, config: Any) -> bool:
        """Whether hidden state 0 carries absolute positions (BERT's position embeddings).

        Without them (ModernBERT's rotary, DeBERTa-v3's ``position_biased_input: false``) two
        equal tokens of a sentence have *identical* embedding outputs, so CKD's angle terms on
        hidden state 0 divide by a zero difference; the distill stage then leaves that state
        out of the layer matching (docs/families.md, docs/ckd.md).
        """
        return True

    def relative_positions(self, model: nn.Module) -> list[RelativePosition]:
        """Relative-position parameters shared by the layers (none for absolute positions)."""
        return []

    # ---------------------------------------------------------------- forward pieces
    def layer_mask(self, model: nn.Module, hidden: torch.Tensor,
                   attention_mask: torch.Tensor) -> Any:
        """What each layer takes as its mask, built as the model's own forward builds it."""
        from transformers.masking_utils import create_bidirectional_mask
        return create_bidirectional_mask(config=model.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def run_layers(self, model: nn.Module, hidden: torch.Tensor, attention_mask: torch.Tensor,
                   start: int = 0) -> Iterator[torch.Tensor]:
        """Run layers ``start..`` on ``hidden``, yielding each layer's output in turn.

        ``hidden`` is the state entering layer ``start``; the outputs are exactly what the
        model's own encoder loop computes (masks and position terms built the same way).
        """
        mask = self.layer_mask(model, hidden, attention_mask)
        for layer in self.layers(model)[start:]:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
            yield hidden

    def final_hidden(self, model: nn.Module, last: torch.Tensor) -> torch.Tensor:
        """The base model's output from the last layer's output (ModernBERT: its final norm)."""
        return last

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """The task head's logits from the base model's output ``last``.

        ``last`` is the output of :meth:`final_hidden`; ``states`` are all hidden states
        (the scalar-mix head reads them), ``attention_mask`` the ``[B, T]`` input mask (mean
        pooling reads it).
        """
        raise NotImplementedError

    def head_kind(self, model: nn.Module) -> str:
        """``"sequence"`` or ``"token"``: which task head ``model`` carries.

        Raises:
            UnsupportedFamilyError: a head other than sequence or token classification.
        """
        name = type(model).__name__
        if name.endswith("ForSequenceClassification"):
            return "sequence"
        if name.endswith("ForTokenClassification"):
            return "token"
        raise UnsupportedFamilyError(
            f"{name}: only ...ForSequenceClassification and ...ForTokenClassification heads "
            f"are supported for family {self.name}")

    # ---------------------------------------------------------------- parameter sets
    def head_parameters(self, model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
        """The classification head's ``(name, parameter)`` pairs.

        Everything outside the base model, plus what inside it only the head reads
        (:attr:`head_inside_base`: BERT's pooler, ModernBERT's final norm).
        """
        prefix = model.base_model_prefix + "."
        inside = tuple(prefix + p + "." for p in self.head_inside_base)
        for name, param in model.named_parameters():
            if not name.startswith(prefix) or name.startswith(inside):
                yield name, param

    head_inside_base: ClassVar[tuple[str, ...]] = ("pooler",)
    """Base-model submodules (relative names) that belong to the head's trainable set."""

    def layer_parameters(self, model: nn.Module, position: int) -> nn.Module:
        """The module whose parameters are layer ``position``'s (for freezing and training).

        Shared relative-position parameters are *not* part of any layer: training them would
        change every layer, including frozen ones below a cached prefix.
        """
        return self.layers(model)[position]


_REGISTRY: dict[str, FamilyAdapter] = {}


def register(adapter: type[FamilyAdapter]) -> type[FamilyAdapter]:
    """Class decorator: make ``adapter`` the one for each of its ``model_types``."""
    instance = adapter()
    for model_type in adapter.model_types:
        _REGISTRY[model_type] = instance
    return adapter


def supported_model_types() -> list[str]:
    """Every ``config.model_type`` with an adapter, sorted."""
    _load_families()
    return sorted(_REGISTRY)


def adapter_for(model_or_config: Any, key: str | None = None) -> FamilyAdapter:
    """The adapter of a model, a config, or a ``model_type`` string.

    Raises:
        UnsupportedFamilyError: no adapter for that family; the message names the class (or
            model_type), the config ``key`` when given, and every supported model_type.
    """
    _load_families()
    if isinstance(model_or_config, str):
        model_type, what = model_or_config, f"model_type '{model_or_config}'"
    else:
        config = getattr(model_or_config, "config", model_or_config)
        model_type = getattr(config, "model_type", None)
        what = f"{type(model_or_config).__name__} (model_type '{model_type}')"
    adapter = _REGISTRY.get(model_type)
    if adapter is None:
        where = f"{key}: " if key else ""
        raise UnsupportedFamilyError(
            f"{where}{what} is not a supported encoder family; supported model types: "
            f"{', '.join(sorted(_REGISTRY))} (docs/families.md: adding a family)")
    return adapter


def _load_families() -> None:
    """Import the family modules (each registers itself) on first use."""
    if not _REGISTRY:
        import lmcompress.models.families as package  # noqa: F401  (imports every family)
