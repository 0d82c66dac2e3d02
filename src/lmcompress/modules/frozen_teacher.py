"""What every stage with a frozen teacher shares: its forward, its mode, its provenance.

Mixed into ``DistillModule`` and ``DynaBertModule`` (before ``TaskModule``); the stage's
``__init__`` builds ``self.teacher`` and keeps its spec as ``self.teacher_spec``.
"""

from __future__ import annotations

from typing import Any

import torch

from lmcompress.models.hub import family_of
from lmcompress.models.layers import resolve_layer_map
from lmcompress.models.teacher import teacher_provenance
from lmcompress.specs import LayerMapSpec, parse


class FrozenTeacher:
    """``self.teacher``: eval mode throughout, no gradients, never saved in checkpoints."""

    frozen_prefixes = ("teacher.",)

    def teacher_outputs(self, batch: dict[str, torch.Tensor]) -> Any:
        """The frozen teacher's outputs (no grad; hidden states if a term reads them)."""
        with torch.no_grad():
            return self.teacher(**self.model_inputs(batch),
                                output_hidden_states=self.objective.needs_hidden)

    def matched_layers(self, layer_map: dict[str, list[int]] | None,
                       allow_uninformative_ltr: bool) -> LayerMapSpec:
        """The hidden states the relation terms compare (``module.layer_map`` or ``emb+skip``)."""
        return resolve_layer_map(
            self.teacher.config.num_hidden_layers, self.model.config.num_hidden_layers,
            parse(LayerMapSpec, layer_map, "module.layer_map") if layer_map else None,
            uses_ltr=any(t.startswith("ltr") for t in self.objective.uses),
            allow_uninformative_ltr=allow_uninformative_ltr,
            teacher_h0=positions_in_embeddings(self.teacher),
            student_h0=positions_in_embeddings(self.model))

    def train(self, mode: bool = True):
        """Switch the student's mode; the teacher stays in eval mode (dropout off) throughout."""
        super().train(mode)
        self.teacher.eval()
        return self

    def provenance(self) -> dict[str, Any]:
        """Which teacher this run learned from (resolved reference and weights digest)."""
        return {"teacher": teacher_provenance(self.teacher_spec)}


def positions_in_embeddings(model: Any) -> bool:
    """Whether ``model``'s hidden state 0 carries positions (unknown families: assumed)."""
    adapter = family_of(model.config.model_type)
    return adapter is None or adapter.positions_in_embeddings(model.config)
