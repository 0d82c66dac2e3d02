"""The brief fine-tune of one candidate on the labelled source training set (docs/amoc.md).

A plain torch loop with the official code's settings by default: AdamW (lr 1e-4, eps 1e-8,
weight decay 0.01, none below 2 dimensions: docs/optim.md), no warm-up, linear decay to 0,
gradient clipping at norm 2.0, one epoch of batches of 32, seeded. Only the parameters chosen
by the trainable rule get gradients. ``cached=True`` runs from the candidate's first changed
layer on the base model's cached states (``amoc/cache.py``); ``cached=False`` is the
independent path that runs the whole model from the inputs: same batches, same random draws,
same result.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import get_linear_schedule_with_warmup

from lmcompress.amoc.cache import SplitCache, forward_from, model_device
from lmcompress.amoc.candidates import EMBEDDINGS, Trainable
from lmcompress.losses.kd import hard_ce
from lmcompress.models.families import adapter_for
from lmcompress.optim import adamw_groups
from lmcompress.specs import SpecError


@dataclass
class TrainSpec:
    """How each candidate is fine-tuned after removal (defaults: the official code's)."""

    lr: float = 1e-4
    """Peak AdamW learning rate."""
    eps: float = 1e-8
    """AdamW epsilon."""
    weight_decay: float = 0.01
    """Decoupled weight decay (never below 2 dimensions: biases, LayerNorm, mix weights)."""
    warmup_ratio: float = 0.0
    """Fraction of the steps spent warming up linearly, then linear decay to 0."""
    epochs: int = 1
    """Passes over the source training set."""
    batch_size: int = 32
    """Training batch size."""
    clip_norm: float = 2.0
    """Gradient clipping (max global norm of the trainable parameters)."""
    seed: int = 42
    """Seeds the batch order and the dropout draws (same for every candidate)."""
    dropout: bool = True
    """Dropout in the layers from the first changed one up (frozen layers below: never)."""

    def check(self, key: str) -> None:
        """Refuse settings that train nothing or diverge at once."""
        if not self.lr > 0 or self.epochs < 1 or self.batch_size < 1:
            raise SpecError(f"{key}: lr={self.lr}, epochs={self.epochs} and "
                            f"batch_size={self.batch_size} must be > 0")
        if not 0 <= self.warmup_ratio < 1 or self.clip_norm <= 0:
            raise SpecError(f"{key}: warmup_ratio={self.warmup_ratio} must be in [0, 1) and "
                            f"clip_norm={self.clip_norm} > 0")


PRECISIONS = ("32", "bf16")
# What the candidate store's key records as the precision (amoc/progress.py). bf16 candidates
# stored before the weight-cast cache was turned off trained on stale weights (see
# search_precision); naming the fix in bf16's entry keeps them from being reused.
STORE_PRECISION = {"32": "32", "bf16": "bf16, fresh weight casts"}


@contextlib.contextmanager
def search_precision(precision: str, model: Any) -> Iterator[None]:
    """bf16 autocast on ``model``'s device for ``precision='bf16'``; fp32 (no autocast) for 32.

    One context around a whole search, so that the base model's cached passes, which the
    ATE compares every candidate with, run in the same precision as the candidates. Its
    weight-cast cache is off: autocast keeps the bf16 copy of each fp32 weight until the
    outermost autocast context exits, so within one context around many optimizer steps
    every forward would run on the weights as they were before the first step (the
    candidates' fine-tune would not learn) and a new candidate could be served a freed one's
    cast (docs/amoc.md §10).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: must be one of {PRECISIONS}")
    if precision == "32":
        with torch.autocast(model_device(model).type, enabled=False):
            yield
        return
    with torch.autocast(model_device(model).type, dtype=torch.bfloat16, cache_enabled=False):
        yield


def set_trainable(model: Any, parts: Trainable, kept: Sequence[int]) -> int:
    """Freeze everything but the head and ``parts`` (base-model layer indices, ``kept`` order).

    The family adapter says what the head is (every parameter outside the base model, plus
    the pooler or final norm the head reads) and what computes the embeddings
    (docs/families.md); shared relative-position tables stay frozen (they feed the frozen
    layers too). Returns the number of trainable parameters.
    """
    adapter = adapter_for(model)
    model.requires_grad_(False)
    if parts.embeddings:
        for module in adapter.input_modules(model):
            module.requires_grad_(True)
    position = {layer: pos for pos, layer in enumerate(kept)}
    for layer in parts.layers:
        adapter.layer_parameters(model, position[layer]).requires_grad_(True)
    for _, param in adapter.head_parameters(model):
        param.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def set_modes(model: Any, start: int, dropout: bool) -> None:
    """Train mode from layer ``start`` up (if ``dropout``); the frozen layers below: eval."""
    model.train(dropout)
    if start == EMBEDDINGS:
        return
    adapter = adapter_for(model)
    for module in adapter.input_modules(model):
        module.eval()
    for layer in adapter.layers(model)[:start]:
        layer.eval()


def _optimizer(model: Any, spec: TrainSpec, steps: int) -> tuple[Any, Any]:
    optimizer = torch.optim.AdamW(adamw_groups(model.parameters(), spec.weight_decay),
                                  lr=spec.lr, eps=spec.eps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup_ratio * steps), steps)
    return optimizer, scheduler


def logits_of(model: Any, start: int, batch: Any, cached: bool) -> torch.Tensor:
    """The candidate's logits on a cached batch (on its device), from the cache or the inputs."""
    return forward_from(model, start, batch) if cached else model(**batch.inputs).logits


def train_candidate(model: Any, start: int, train: SplitCache, spec: TrainSpec,
                    cached: bool = True) -> dict[str, float]:
    """Fine-tune the trainable parameters of ``model`` (a candidate) in place.

    Batches come from ``train`` in its cached order (shuffled per epoch after the first);
    the global RNG is restored afterwards. Returns steps, mean loss and seconds.
    """
    if not train.labelled:
        raise ValueError(f"split '{train.name}' has no labels: candidates train on labels")
    steps = spec.epochs * len(train.batches)
    optimizer, scheduler = _optimizer(model, spec, steps)
    params = [p for p in model.parameters() if p.requires_grad]
    tic, losses = time.perf_counter(), []
    device = model_device(model)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(spec.seed)
        set_modes(model, start, spec.dropout)
        for epoch in range(spec.epochs):
            order = list(range(len(train.batches)))
            if epoch:
                random.Random(spec.seed + epoch).shuffle(order)
            for i in order:
                batch = train.batches[i].to(device)
                logits = logits_of(model, start, batch, cached)
                loss = hard_ce(logits, batch.labels)  # the objective's task loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, spec.clip_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())
    model.eval()
    return {"steps": steps, "loss": sum(losses) / max(len(losses), 1),
            "seconds": time.perf_counter() - tic}


@torch.no_grad()
def predict(model: Any, start: int, split: SplitCache, cached: bool = True) -> list[torch.Tensor]:
    """Class probabilities of ``model`` (eval mode) on every batch of ``split``."""
    model.eval()
    device = model_device(model)
    return [logits_of(model, start, b.to(device), cached).float().softmax(-1).cpu()
            for b in split.batches]


def trained_state(model: Any) -> dict[str, torch.Tensor]:
    """A copy of the trainable parameters (all a candidate changed w.r.t. the base model)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()
            if p.requires_grad}  # host memory: a search keeps every candidate's
