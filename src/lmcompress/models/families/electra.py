"""ELECTRA discriminators (``electra``): BERT's layer modules, RoBERTa's kind of head.

When ``embedding_size != hidden_size`` the base model projects the embeddings
(``embeddings_project``) before layer 0; that projection belongs with the embeddings.
The sequence head (``ElectraClassificationHead``) reads ``h[:, 0]`` (dense, GELU, out_proj).
"""

from __future__ import annotations

import torch
from torch import nn

from lmcompress.models.families.base import FamilyAdapter, register


@register
class ElectraAdapter(FamilyAdapter):
    """ELECTRA (docs/families.md)."""

    name = "electra"
    model_types = ("electra",)

    def input_modules(self, model: nn.Module) -> list[nn.Module]:
        """The embeddings and, when present, their projection to the hidden size."""
        base = self.base(model)
        project = getattr(base, "embeddings_project", None)
        return [base.embeddings] + ([project] if project is not None else [])

    def head_logits(self, model: nn.Module, last: torch.Tensor, states: list[torch.Tensor],
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """Sequence: the classification head on ``last``; token: dropout -> classifier."""
        if self.head_kind(model) == "sequence":
            return model.classifier(last)
        return model.classifier(model.dropout(last))
