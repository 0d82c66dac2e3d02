"""Which layer sets to remove, and which parameters each candidate re-trains (docs/amoc.md).

A candidate is a set of 0-based encoder layers to remove; its budget ``k`` is the set's size.
Fixed patterns are the baselines of Sajjad et al., "On the Effect of Dropping Layers of
Pre-trained Transformer Models" ("Poor Man's BERT"): top-k, bottom-k and alternate layers.

Trainable rule after removal (the rest stays frozen at the base model's weights):

* ``official`` (the released code): for every maximal run of removed layers ``a..b``, the layer
  below it (``a - 1``), or the embeddings when ``a = 0``; plus the head.
* ``all``: the embeddings, every remaining layer and the head.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

PATTERNS = ("top", "bottom", "alternate")
RULES = ("official", "all")
EMBEDDINGS = -1  # "first changed layer" of a candidate that re-trains the embeddings


@dataclass(frozen=True, order=True)
class Candidate:
    """A set of removed layers (sorted, 0-based)."""

    removed: tuple[int, ...]

    @property
    def k(self) -> int:
        """The budget: how many layers are removed."""
        return len(self.removed)

    @property
    def name(self) -> str:
        """``"1+3"`` for layers 1 and 3 (the ``removed`` column of candidates.csv)."""
        return "+".join(str(i) for i in self.removed)

    @classmethod
    def parse(cls, name: str) -> Candidate:
        """The inverse of :attr:`name`."""
        return cls(tuple(sorted(int(i) for i in str(name).split("+"))))


@dataclass(frozen=True)
class Trainable:
    """What a candidate re-trains besides its head (layer indices of the base model)."""

    embeddings: bool
    layers: tuple[int, ...]


def check_budgets(budgets: Sequence[int], num_layers: int) -> list[int]:
    """Sorted budgets, refusing an empty list or a size outside 1..L-1."""
    if not budgets:
        raise ValueError("callbacks.amoc.budgets is empty: give the numbers of layers to "
                         "remove, e.g. [1, 2]")
    bad = [k for k in budgets if not 1 <= int(k) < num_layers]
    if bad:
        raise ValueError(f"callbacks.amoc.budgets: cannot remove {bad[0]} of {num_layers} "
                         f"layers (each budget must be in 1..{num_layers - 1})")
    return sorted({int(k) for k in budgets})


def check_search(num_layers: int, budgets: Sequence[int], patterns: Sequence[str],
                 rule: str, per_budget: int | None = None,
                 features: Sequence[str] | None = None,
                 fixed_features: Sequence[str] = ()) -> None:
    """Refuse a search the model cannot run, before any training (``AMoCCallback.on_fit_start``).

    Checks every option that names a size or a layer against the model's ``num_layers``: the
    budgets (1..L-1), the fixed patterns, the trainable rule, the sample size, and the offered
    regression features (``fixed_features`` or a layer indicator ``removed_<i>``, 0 <= i < L).
    """
    if num_layers < 2:
        raise ValueError(f"AMoC removes layers: the model has {num_layers} encoder layer(s), "
                         "needs at least 2")
    check_budgets(budgets, num_layers)
    unknown = [p for p in patterns if p not in PATTERNS]
    if unknown:
        raise ValueError(f"callbacks.amoc.patterns: unknown layer-dropping pattern "
                         f"{unknown[0]!r}; choose from {PATTERNS}")
    if rule not in RULES:
        raise ValueError(f"callbacks.amoc.trainable={rule!r}: choose from {RULES}")
    if per_budget is not None and per_budget < 1:
        raise ValueError(f"callbacks.amoc.sample_per_budget={per_budget}: must be >= 1 (or "
                         "null for every subset)")
    layers = {f"removed_{i}" for i in range(num_layers)}
    for name in features or ():
        if name not in layers and name not in fixed_features:
            where = (f"layer {name[len('removed_'):]} does not exist: the model has layers "
                     f"0..{num_layers - 1}" if name.startswith("removed_")
                     else f"choose from {[*fixed_features, 'removed_<layer>']}")
            raise ValueError(f"callbacks.amoc.regression.features: {name!r}: {where}")


def fixed_pattern(pattern: str, num_layers: int, k: int) -> Candidate | None:
    """The layers a fixed-pattern baseline removes; None when the pattern cannot remove ``k``.

    ``alternate`` removes every other layer from the top (L-1, L-3, ...), so ``k <= ceil(L/2)``.
    """
    if pattern == "top":
        return Candidate(tuple(range(num_layers - k, num_layers)))
    if pattern == "bottom":
        return Candidate(tuple(range(k)))
    if pattern == "alternate":
        layers = tuple(range(num_layers - 1, -1, -2))[:k]
        return Candidate(tuple(sorted(layers))) if len(layers) == k else None
    raise ValueError(f"unknown layer-dropping pattern {pattern!r}; choose from {PATTERNS}")


def enumerate_candidates(num_layers: int, budgets: Sequence[int],
                         per_budget: int | None = None, seed: int = 0,
                         patterns: Sequence[str] = PATTERNS) -> list[Candidate]:
    """Every layer subset of each budget, or a seeded sample of ``per_budget`` per budget.

    A sample always contains the fixed patterns, so the baselines can be scored.
    """
    out: set[Candidate] = set()
    for k in check_budgets(budgets, num_layers):
        subsets = [Candidate(c) for c in itertools.combinations(range(num_layers), k)]
        if per_budget is not None and per_budget < len(subsets):
            if per_budget < 1:
                raise ValueError(f"amoc.sample_per_budget={per_budget}: must be >= 1")
            subsets = random.Random(seed * 1000 + k).sample(subsets, per_budget)
            subsets += [c for p in patterns if (c := fixed_pattern(p, num_layers, k))]
        out.update(subsets)
    return sorted(out, key=lambda c: (c.k, c.removed))


def _runs(layers: tuple[int, ...]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers: (1, 2, 4) -> [(1, 2), (4, 4)]."""
    runs: list[tuple[int, int]] = []
    for i in layers:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def trainable_parts(num_layers: int, candidate: Candidate, rule: str) -> Trainable:
    """What ``candidate`` re-trains under ``rule`` (see the module docstring)."""
    if rule not in RULES:
        raise ValueError(f"amoc.trainable={rule!r}: choose from {RULES}")
    kept = tuple(i for i in range(num_layers) if i not in candidate.removed)
    if rule == "all":
        return Trainable(embeddings=True, layers=kept)
    below = [start - 1 for start, _ in _runs(candidate.removed)]
    return Trainable(embeddings=EMBEDDINGS in below,
                     layers=tuple(i for i in below if i != EMBEDDINGS))


def first_changed(num_layers: int, candidate: Candidate, rule: str) -> int:
    """The lowest layer whose output can differ from the base model's (-1: the embeddings).

    Layers below it are kept and frozen, so they compute exactly the base model's hidden
    states: a candidate runs from this layer upward on cached states (``amoc/cache.py``).
    """
    parts = trainable_parts(num_layers, candidate, rule)
    if parts.embeddings:
        return EMBEDDINGS
    return min(min(candidate.removed), *parts.layers)


def cache_bound(num_layers: int, candidates: Sequence[Candidate], rule: str) -> dict[str, float]:
    """The most the prefix cache can save on ``candidates``: independent / cached layer passes.

    A cost model in encoder-layer passes per example (docs/amoc.md §10): a forward pass costs 1
    per layer; a backward pass reaches only the layers from the first changed one up, at 1 per
    frozen layer (input gradient) and 2 per re-trained one (input and weight gradients). The
    cache removes the forward passes of the kept layers below the first changed layer and
    nothing else. ``train`` is the bound for the fine-tune, ``eval`` for the prediction passes;
    a search's ratio lies between them (embeddings and head are left out: they cost the same on
    both paths).
    """
    cost = {"train": [0, 0], "eval": [0, 0]}
    for candidate in candidates:
        kept = [i for i in range(num_layers) if i not in candidate.removed]
        start = max(first_changed(num_layers, candidate, rule), 0)
        above = [i for i in kept if i >= start]
        trained = set(trainable_parts(num_layers, candidate, rule).layers)
        backward = sum(2 if i in trained else 1 for i in above)
        for side, prefix_cost in ((0, len(kept)), (1, len(above))):
            cost["train"][side] += prefix_cost + backward
            cost["eval"][side] += prefix_cost
    return {name: independent / cached for name, (independent, cached) in cost.items()}
