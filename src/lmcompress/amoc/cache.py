"""Reuse what does not change: the base model's states below a candidate's first changed layer.

Every candidate keeps and freezes the layers below its first changed layer ``c``
(``candidates.first_changed``), so on the same batch they compute exactly the base model's
hidden states. The base model is therefore run once per split, storing (CPU, fp32, per batch
with its attention mask) the hidden state entering each needed layer; a candidate then runs
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
from transformers import BertForSequenceClassification, BertForTokenClassification

from lmcompress.amoc.candidates import EMBEDDINGS
from lmcompress.labels import IGNORE_INDEX
from lmcompress.models.mixcnn import ScalarMixCNNForSequenceClassification
from lmcompress.models.surgery import encoder_layers

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SUPPORTED = (ScalarMixCNNForSequenceClassification, BertForSequenceClassification,
             BertForTokenClassification)


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
    """Refuse a model whose head :func:`forward_from` cannot run."""
    if not isinstance(model, SUPPORTED):
        raise TypeError(f"AMoC runs {[c.__name__ for c in SUPPORTED]}, not "
                        f"{type(model).__name__}")


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
        out = model(**inputs, output_hidden_states=True)
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        pooled = (out.hidden_states[-1] * mask).sum(1) / mask.sum(1).clamp(min=1)
        batches.append(CachedBatch(
            inputs=inputs, labels=labels, base_probs=out.logits.float().softmax(-1),
            pooled=pooled, token_mask=token_mask,
            states={b: out.hidden_states[b].float() for b in sorted(keep)}))
    return SplitCache(name, kind, batches)


def layer_attention_mask(model: Any, hidden: torch.Tensor,
                         attention_mask: torch.Tensor) -> torch.Tensor | None:
    """The mask the encoder layers expect, as the model's own forward builds it."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers 4: the classic additive extended mask
        return model.base_model.get_extended_attention_mask(attention_mask, hidden.shape[:2])
    return create_bidirectional_mask(config=model.config, inputs_embeds=hidden,
                                     attention_mask=attention_mask)


def forward_from(model: Any, start: int, batch: CachedBatch) -> torch.Tensor:
    """A candidate's logits, running only its layers ``start..`` on the cached states.

    ``start`` is the candidate's first changed layer; every layer below it is kept, so the
    candidate's layer positions ``< start`` are the base model's layers and ``h_start`` is
    the cached state entering layer ``start``. ``start = -1`` runs the whole model.
    """
    if start == EMBEDDINGS:
        return model(**batch.inputs).logits
    mix = isinstance(model, ScalarMixCNNForSequenceClassification)
    hidden = batch.states[start]
    mask = layer_attention_mask(model, hidden, batch.inputs["attention_mask"])
    states = [batch.states[b] for b in range(start + 1)] if mix else []
    for layer in encoder_layers(model)[start:]:
        out = layer(hidden, mask)
        hidden = out[0] if isinstance(out, tuple) else out  # transformers 4 returns a tuple
        states.append(hidden)
    return head_logits(model, hidden, states)


def head_logits(model: Any, last: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
    """The head of ``model`` on its last hidden state (mix head: on all its states)."""
    if isinstance(model, ScalarMixCNNForSequenceClassification):
        return model.classify(states)
    if isinstance(model, BertForSequenceClassification):
        return model.classifier(model.dropout(model.bert.pooler(last)))
    if isinstance(model, BertForTokenClassification):
        return model.classifier(model.dropout(last))
    check_supported(model)
    raise AssertionError("unreachable")
