"""BERT and MiniLM (``bert``), the scalar-mix model, DynaBERT's sliced BERT export.

The sliced export has per-layer head counts: ``num_heads`` reads each layer's own.

Layers: ``bert.encoder.layer``; attention ``attention.self.{query,key,value}`` and
``attention.output.dense``; FFN ``intermediate.dense`` -> ``output.dense``. The sequence head
reads the pooler (``tanh(dense(h[:, 0]))``), so the pooler belongs to the head.
"""

from __future__ import annotations

import torch
from torch import nn

from lmcompress.models.families.base import FamilyAdapter, register
from lmcompress.models.mixcnn import MODEL_TYPE as MIX_MODEL_TYPE
from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification

SLICED_BERT = "lmcompress-sliced-bert"
"""DynaBERT's exported BERT with per-layer head counts (``models/dynabert/auto.py``)."""


@register
class BertAdapter(FamilyAdapter):
    """BERT, MiniLM and the scalar-mix model (docs/families.md)."""

    name = "bert"
    model_types = ("bert", MIX_MODEL_TYPE, SLICED_BERT)

    def head_kind(self, model: nn.Module) -> str:
        """The scalar-mix model is a sequence head reading every hidden state."""
        if isinstance(model, ScalarMixCNNForSequenceClassification):
            return "mix"
        return super().head_kind(model)

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Mix: ``classify(states)``; sequence: pooler, dropout, classifier; token: both last."""
        kind = self.head_kind(model)
        if kind == "mix":
            return model.classify(states)
        if kind == "sequence":
            return model.classifier(model.dropout(model.bert.pooler(last)))
        return model.classifier(model.dropout(last))

