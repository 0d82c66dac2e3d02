"""Optional last step: the chosen candidates fully fine-tuned on the source (docs/amoc.md §8).

The search trains each candidate briefly and only in a few places (the trainable rule), which is
enough to rank candidates. The model one would deploy is the chosen candidate fine-tuned as a
whole. With ``callbacks.amoc.finetune`` set, every distinct candidate chosen by the listed
methods (AMoC's choice by default; add ``oracle``, ``top``, ... to compare like with like) is
rebuilt from the base model's weights, trained with the embeddings, every remaining layer and
the head trainable on the labelled source training split, and scored on the target test splits
of the groups that chose it. Target labels are read only for that score, as in the search.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lmcompress.amoc import features as feats
from lmcompress.amoc.cache import batch_plan, build_cache
from lmcompress.amoc.candidates import EMBEDDINGS, PATTERNS, Candidate, trainable_parts
from lmcompress.amoc.train import (
    TrainSpec,
    predict,
    search_precision,
    set_trainable,
    train_candidate,
)
from lmcompress.models.surgery import drop_layers
from lmcompress.specs import SpecError

log = logging.getLogger(__name__)
CHOOSERS = ("amoc", "ate_min", *PATTERNS, "oracle")
"""Methods of ``amoc/select.py`` that choose one candidate (``random`` is a mean)."""


@dataclass
class FinetuneSpec(TrainSpec):
    """``TrainSpec`` keys for the full fine-tune, plus which methods' choices get one."""

    methods: list[str] = field(default_factory=lambda: ["amoc"])
    """Selection methods whose chosen candidates are fine-tuned (``CHOOSERS``)."""

    def check(self, key: str) -> None:
        super().check(key)
        unknown = sorted(set(self.methods) - set(CHOOSERS))
        if unknown or not self.methods:
            raise SpecError(f"{key}.methods={self.methods}: choose one or more of "
                            f"{list(CHOOSERS)} (random is a mean, not a candidate)")


def chosen(entries: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[Candidate]:
    """The distinct candidates that ``methods`` chose over all (target, budget) groups."""
    names = {e[m]["removed"] for e in entries for m in methods if e.get(m)}
    return sorted((Candidate.parse(n) for n in names), key=lambda c: (c.k, c.removed))


def finetune_chosen(search: Any, entries: list[dict[str, Any]], spec: FinetuneSpec) -> dict:
    """Fine-tune each chosen candidate, then add ``finetuned_score`` to every choice in place.

    ``search`` is a finished ``amoc.search.Search`` (its base model, data, metric and the
    target test splits it scored). Returns ``{candidate name: {steps, loss, seconds}}``.
    """
    candidates = chosen(entries, spec.methods)
    if not candidates:
        return {}
    dataset, collator = search.data.train()
    train = build_cache(None, "source_train_finetune", dataset, collator,  # no base pass
                        batch_plan(len(dataset), spec.batch_size, spec.seed), set(),
                        search.data.kind, search.data.special_ids)
    scores, stats = {}, {}
    for candidate in candidates:
        model = full_trainable(search.base, candidate, search.num_layers)
        with search_precision(search.spec.precision, search.base):  # the search's precision
            stats[candidate.name] = train_candidate(model, EMBEDDINGS, train, spec, cached=False)
            scores[candidate.name] = {
                t: feats.score(predict(model, EMBEDDINGS, split, cached=False), split,
                               search.metric)
                for t, split in search.tests.items()}
        log.info("amoc finetune: removed=%s %.1fs, target %s", candidate.name,
                 stats[candidate.name]["seconds"],
                 {t: round(s, 4) for t, s in scores[candidate.name].items()})
    for entry in entries:
        for method in spec.methods:
            if entry.get(method):
                entry[method]["finetuned_score"] = scores[entry[method]["removed"]][
                    entry["target"]]
    return stats


def full_trainable(base: Any, candidate: Candidate, num_layers: int) -> Any:
    """The base model without ``candidate``'s layers, with every remaining part trainable."""
    model = drop_layers(base, candidate.removed)
    kept = [i for i in range(num_layers) if i not in candidate.removed]
    set_trainable(model, trainable_parts(num_layers, candidate, "all"), kept)
    return model
