"""BERT with fewer attention heads than its hidden size implies, loadable through the Auto API.

transformers v5's BERT has no pruned heads: every layer's attention is ``hidden_size`` wide. An
extracted DynaBERT sub-network that keeps fewer heads (docs/dynabert.md §7) therefore needs a
config that records its head count per layer and its head size, and model classes that build
those narrower layers. ``import lmcompress`` imports this module, which registers them:

    import lmcompress  # noqa: F401
    model = AutoModelForSequenceClassification.from_pretrained(export_dir)  # a SlicedBert...

The checkpoints are ordinary ``save_pretrained`` directories (``model_type`` =
``lmcompress-sliced-bert``, same weight names as BERT); no ``trust_remote_code`` is involved.
Sub-networks that keep every head are exported as plain BERT instead and need none of this.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)


@strict
class SlicedBertConfig(BertConfig):
    """A BertConfig whose layers may each keep fewer attention heads.

    ``num_attention_heads`` stays the unsliced count, so that ``hidden_size /
    num_attention_heads`` is still the head size BERT's constructor derives (9 of 12 heads would
    not divide 768); the sliced shape is in the two fields below.
    """

    model_type = "lmcompress-sliced-bert"

    num_heads_per_layer: list[int] | None = None
    """Attention heads of each layer (None: ``num_attention_heads`` in every layer)."""
    attention_head_size: int | None = None
    """Width of one head (None: ``hidden_size // num_attention_heads``)."""

    def validate_sliced_heads(self) -> None:
        """One head count >= 1 per layer, and a positive head size."""
        heads = self.num_heads_per_layer
        if heads is not None and (len(heads) != self.num_hidden_layers or min(heads) < 1):
            raise ValueError(f"num_heads_per_layer={heads}: needs num_hidden_layers="
                             f"{self.num_hidden_layers} entries, each >= 1")
        if self.attention_head_size is not None and self.attention_head_size < 1:
            raise ValueError(f"attention_head_size={self.attention_head_size}: must be >= 1")

    def layer_heads(self) -> list[int]:
        """Attention heads of every layer."""
        return list(self.num_heads_per_layer or [self.num_attention_heads] * self.num_hidden_layers)

    def head_size(self) -> int:
        """Width of one attention head."""
        return self.attention_head_size or self.hidden_size // self.num_attention_heads


class _SlicedAttention:
    """Mixin: after BERT has built its layers, narrow each layer's attention to its heads.

    ``post_init`` is the last step of every HF model's ``__init__`` (weight init, tied weights),
    so narrowing just before it gives freshly built, properly initialised layers, and
    ``from_pretrained`` then loads the checkpoint into them.
    """

    config_class = SlicedBertConfig

    def post_init(self) -> None:
        base = getattr(self, self.base_model_prefix, self)
        head_size = self.config.head_size()
        for layer, heads in zip(base.encoder.layer, self.config.layer_heads(), strict=True):
            _narrow_attention(layer.attention, heads, head_size)
        super().post_init()


def _narrow_attention(attention: nn.Module, heads: int, head_size: int) -> None:
    """Rebuild Q, K, V (hidden -> heads x head_size) and the output projection (back)."""
    self_attention = attention.self
    hidden, width = self_attention.query.in_features, heads * head_size
    self_attention.num_attention_heads = heads
    self_attention.attention_head_size = head_size
    self_attention.all_head_size = width
    self_attention.scaling = head_size**-0.5
    self_attention.query = nn.Linear(hidden, width)
    self_attention.key = nn.Linear(hidden, width)
    self_attention.value = nn.Linear(hidden, width)
    attention.output.dense = nn.Linear(width, hidden)


class SlicedBertModel(_SlicedAttention, BertModel):
    """BertModel with per-layer head counts (:class:`SlicedBertConfig`)."""


class SlicedBertForSequenceClassification(_SlicedAttention, BertForSequenceClassification):
    """BertForSequenceClassification with per-layer head counts."""


class SlicedBertForTokenClassification(_SlicedAttention, BertForTokenClassification):
    """BertForTokenClassification with per-layer head counts."""


SLICED_CLASSES: dict[type, type] = {
    BertModel: SlicedBertModel,
    BertForSequenceClassification: SlicedBertForSequenceClassification,
    BertForTokenClassification: SlicedBertForTokenClassification,
}
"""The head-sliced twin of each BERT class an export supports."""

# exist_ok: re-importing (importlib.reload, notebooks) must not fail
AutoConfig.register(SlicedBertConfig.model_type, SlicedBertConfig, exist_ok=True)
for _auto, _model in ((AutoModel, SlicedBertModel),
                      (AutoModelForSequenceClassification, SlicedBertForSequenceClassification),
                      (AutoModelForTokenClassification, SlicedBertForTokenClassification)):
    _auto.register(SlicedBertConfig, _model, exist_ok=True)
