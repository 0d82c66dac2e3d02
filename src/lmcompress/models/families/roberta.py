"""RoBERTa and XLM-R (``roberta``, ``xlm-roberta``): BERT's layer modules, another head.

No pooler: the sequence head (``RobertaClassificationHead``) reads ``h[:, 0]`` itself
(dropout, dense, tanh, dropout, ``out_proj``), so the whole head is outside the base model.
Positions are absolute, offset by ``padding_idx + 1`` (inside the embeddings).
"""

from __future__ import annotations

import torch
from torch import nn

from lmcompress.models.families.base import FamilyAdapter, register


@register
class RobertaAdapter(FamilyAdapter):
    """RoBERTa and XLM-R (docs/families.md)."""

    name = "roberta"
    model_types = ("roberta", "xlm-roberta")

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Sequence: the classification head on ``last``; token: dropout -> classifier."""
        if self.head_kind(model) == "sequence":
            return model.classifier(last)
        return model.classifier(model.dropout(last))
