"""What every stage with a frozen teacher shares: its forward, its mode, its provenance.

Mixed into ``DistillModule`` and ``DynaBertModule`` (before ``TaskModule``); the stage's
``__init__`` builds ``self.teacher`` and keeps its spec as ``self.teacher_spec``.

Lightning warns "Found N module(s) in eval mode at the start of training" for any module in eval
mode, which the frozen teacher always is. That warning is silenced for the start of each fit
only, and replaced by the same check on every module *outside* the teacher, so a student left
in eval mode by mistake is still reported.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from lightning_fabric.utilities.warnings import PossibleUserWarning
from pytorch_lightning.utilities import rank_zero_warn

from lmcompress.models.hub import family_of
from lmcompress.models.layers import resolve_layer_map
from lmcompress.models.teacher import teacher_provenance
from lmcompress.specs import LayerMapSpec, parse

EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


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

    def on_fit_start(self) -> None:
        """Silence Lightning's eval-mode warning (the teacher's) until ``on_train_start``."""
        super().on_fit_start()
        self._quiet = warnings.catch_warnings()
        self._quiet.__enter__()
        warnings.filterwarnings("ignore", message=EVAL_MODE_WARNING)

    def on_train_start(self) -> None:
        """Lift the filter; warn about modules in eval mode that are not the teacher's."""
        quiet, self._quiet = getattr(self, "_quiet", None), None
        if quiet is not None:
            quiet.__exit__(None, None, None)
        super().on_train_start()
        stray = [name for name, module in self.named_modules()
                 if not module.training and not name.startswith("teacher")]
        if stray:
            rank_zero_warn(f"{len(stray)} module(s) outside the frozen teacher are in eval mode "
                           f"at the start of training: {stray[:5]}", category=PossibleUserWarning)

    def provenance(self) -> dict[str, Any]:
        """Which teacher this run learned from (resolved reference and weights digest)."""
        return {"teacher": teacher_provenance(self.teacher_spec)}


def positions_in_embeddings(model: Any) -> bool:
    """Whether ``model``'s hidden state 0 carries positions (unknown families: assumed)."""
    adapter = family_of(model.config.model_type)
    return adapter is None or adapter.positions_in_embeddings(model.config)
