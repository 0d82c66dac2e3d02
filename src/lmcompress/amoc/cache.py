"""Reuse what does not change: the base model's states below a candidate's first changed layer.

Every candidate keeps and freezes the layers below its first changed layer ``c``
(``candidates.first_changed``), so on the same batch they compute exactly the base model's
hidden states. The base model is therefore run once per split (on the model's device), storing
(in host memory, fp32, per batch with its attention mask) the hidden state entering each needed
layer; a candidate then moves each batch to its device (:meth:`CachedBatch.to`) and runs
only layers ``c..`` and its head (:func:`forward_from`). The mix head also needs the lower
states themselves (``h_0..h_c``), which the cache holds too (docs/amoc.md §10). Candidates
that re-train the embeddings (``c = -1``) run from the inputs.

Frozen layers below ``c`` must then run without dropout: training treats them as fixed
functions (``train.set_modes``), which the official code does not do (a deviation we document).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from lmcompress.amoc.candidates import EMBEDDINGS
from lmcompress.labels import IGNORE_INDEX
from lmcompress.models.families import UnsupportedFamilyError, adapter_for
from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class CachedBatch:
    """One batch of a split with what the base model computed on it."""

    inputs: dict[str, torch.Tensor]
    """The model inputs (input_ids, attention_mask, token_type_ids)."""
    labels: torch.Tensor | None
    """Gold labels, only for a labelled split."""
    base_probs: torch.Tensor
    """The base model's class probabilities, ``[B, C]`` (tagging: ``[B, T, C]``)."""
    pooled: torch.Tensor
    """The base model's last hidden state averaged over real tokens, ``[B, H]``."""
    token_mask: torch.Tensor | None = None
    """Tagging: tokens that count (labelled first sub-tokens, else real non-special tokens)."""
    states: dict[int, torch.Tensor] = field(default_factory=dict)
    """``b -> [B, T, H]`` hidden state entering layer ``b`` (0 = the embedding output)."""

    def to(self, device: torch.device) -> CachedBatch:
        """The batch with its inputs, labels, mask and states on ``device`` (self if there)."""
        if self.inputs["input_ids"].device == device:
            return self

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return CachedBatch({k: move(v) for k, v in self.inputs.items()}, move(self.labels),
                           self.base_probs, self.pooled, move(self.token_mask),
                           {b: move(h) for b, h in self.states.items()})


def model_device(model: Any) -> torch.device:
    """The device of ``model``'s parameters (where its batches must go)."""
    return next(model.parameters()).device


@dataclass
class SplitCache:
    """A whole split, batch by batch, in a fixed order (``plan``)."""

    name: str
    kind: str
    batches: list[CachedBatch]

    @property
    def labelled(self) -> bool:
        """Whether the split carries gold labels."""
        return bool(self.batches) and self.batches[0].labels is not None

    def __len__(self) -> int:
        return sum(len(b.base_probs) for b in self.batches)


def batch_plan(n: int, batch_size: int, seed: int | None = None) -> list[list[int]]:
    """Example indices per batch: in order, or shuffled once with ``seed`` (training)."""
    order = list(range(n))
    if seed is not None:
        random.Random(seed).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def check_supported(model: Any) -> None:
    """Refuse a model whose head :func:`forward_from` cannot run (family or head, by name).

    Every family with an adapter (docs/families.md) and a sequence- or token-classification
    head runs, and BERT's scalar-mix model.
    """
    try:
        adapter_for(model).head_kind(model)
    except UnsupportedFamilyError as err:
        raise UnsupportedFamilyError(f"AMoC runs encoder families with an adapter: {err}") from err


def states_needed(model: Any, starts: Iterable[int]) -> set[int]:
    """Boundaries to cache for candidates starting at ``starts`` (the mix reads all lower ones)."""
    starts = [s for s in starts if s != EMBEDDINGS]
    if not starts:
        return set()
    if isinstance(model, ScalarMixCNNForSequenceClassification):
        return set(range(max(starts) + 1))
    return set(starts)


@torch.no_grad()
def build_cache(model: Any | None, name: str, dataset: Any, collator: Callable,
                plan: list[list[int]], keep: set[int], kind: str,
                special_ids: Iterable[int] = ()) -> SplitCache:
    """Run the base model (eval mode) once over ``dataset`` batch by batch as ``plan`` says.

    ``model=None`` collates the batches only (inputs, labels, token masks; ``base_probs`` and
    ``pooled`` empty, no states): for training from the inputs, which reads nothing else.
    """
    if model is not None:
        model.eval()
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
    batches = []
    for indices in plan:
        raw = collator([dataset[i] for i in indices])
        inputs = {k: raw[k] for k in MODEL_INPUTS if k in raw}
        labels = raw.get("labels")
        token_mask = None
        if kind == "token_classification":
            token_mask = (labels != IGNORE_INDEX if labels is not None else
                          inputs["attention_mask"].bool()
                          & ~torch.isin(inputs["input_ids"], special))
        if model is None:
            batches.append(CachedBatch(inputs=inputs, labels=labels, base_probs=torch.empty(0),
                                       pooled=torch.empty(0), token_mask=token_mask))
            continue
        device = model_device(model)
        out = model(**{k: v.to(device) for k, v in inputs.items()}, output_hidden_states=True)
        mask = inputs["attention_mask"].to(device).unsqueeze(-1).float()
        pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1)
        batches.append(CachedBatch(  # host memory: a GPU holds one batch at a time
            inputs=inputs, labels=labels, base_probs=out.logits.float().softmax(-1).cpu(),
            pooled=pooled.float().cpu(), token_mask=token_mask,
            states={b: out.hidden_states[b].float().cpu() for b in sorted(keep)}))
    return SplitCache(name, kind, batches)


def forward_from(model: Any, start: int, batch: CachedBatch) -> torch.Tensor:
    """A candidate's logits, running only its layers ``start..`` on the cached states.

    ``start`` is the candidate's first changed layer; every layer below it is kept, so the
    candidate's layer positions ``< start`` are the base model's layers and ``h_start`` is
    the cached state entering layer ``start``. ``start = -1`` runs the whole model. The
    family adapter runs the layers as the model's own loop does (masks, relative positions)
    and computes the head (docs/families.md).
    """
    if start == EMBEDDINGS:
        return model(**batch.inputs).logits
    adapter = adapter_for(model)
    mix = isinstance(model, ScalarMixCNNForSequenceClassification)
    mask = batch.inputs["attention_mask"]
    states = [batch.states[b] for b in range(start + 1)] if mix else []
    last = batch.states[start]
    for last in adapter.run_layers(model, batch.states[start], mask, start):  # noqa: B007
        if mix:
            states.append(last)
    return head_logits(model, adapter.final_hidden(model, last), states, mask)


def head_logits(model: Any, last: torch.Tensor, states: list[torch.Tensor],
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The head of ``model`` on the base model's output (mix head: on all its states)."""
    if attention_mask is None:
        attention_mask = torch.ones(last.shape[:2], dtype=torch.long, device=last.device)
    return adapter_for(model).head_logits(model, last, states, attention_mask)
