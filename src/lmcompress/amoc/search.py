"""One AMoC search for a fine-tuned base model: every candidate against every target domain.

The phases run in this order, so no target label can inform a feature (docs/amoc.md):

1. cache the base model on the source train and dev splits and on each target's unlabelled text;
2. per candidate: remove its layers, fine-tune it briefly on the source (from its first changed
   layer, on the cache), compute its features; keep only its re-trained parameters;
3. optionally re-run a few candidates on the independent (uncached) path, for the cost ratio;
4. only then load each target's labelled test split (and the source's test split), and score
   every candidate on it: one row per (target, candidate), identifiers, features, true scores;
   under several processes (``amoc/shard.py``) each rank does phases 2-4 for its share of the
   candidates and every rank gets all rows back, in the single-process order;
5. optionally (``amoc/finetune.py``, after the selection) fine-tune the chosen candidates fully.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lmcompress.amoc import features as feats
from lmcompress.amoc.ate import ate
from lmcompress.amoc.cache import (
    SplitCache,
    batch_plan,
    build_cache,
    check_supported,
    states_needed,
)
from lmcompress.amoc.candidates import (
    Candidate,
    enumerate_candidates,
    first_changed,
    trainable_parts,
)
from lmcompress.amoc.progress import CandidateStore, Trained, weights_digest
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.shard import Shard, candidate_cost
from lmcompress.amoc.timing import combine, time_share, timing_sample
from lmcompress.amoc.train import (
    STORE_PRECISION,
    predict,
    search_precision,
    set_trainable,
    train_candidate,
    trained_state,
)
from lmcompress.models.surgery import drop_layers, encoder_layers

log = logging.getLogger(__name__)
Loader = Callable[[], tuple[Any, Callable]]
"""``() -> (tokenised dataset, collator)``: a split is only read when the loader is called."""


@dataclass
class SearchData:
    """The splits of one source domain and its targets (read lazily, see ``Loader``)."""

    source: str
    kind: str
    train: Loader
    dev: Loader
    test: Loader | None
    targets: dict[str, tuple[Loader, Loader]]
    """``{T: (unlabelled text for the ATE, labelled test split)}``."""
    special_ids: list[int] = field(default_factory=list)


class Search:
    """Run the phases of the module docstring for one base model and its data.

    ``shard`` (default: one process) says which candidates this process fine-tunes and scores.
    """

    def __init__(self, base: Any, data: SearchData, spec: SearchSpec,
                 store: CandidateStore | None = None, shard: Shard | None = None):
        check_supported(base)
        self.base, self.data, self.spec = base.eval(), data, spec
        self.metric = feats.metric_for(data.kind, spec.metric)
        self.num_layers = len(encoder_layers(base))
        self.candidates = enumerate_candidates(self.num_layers, spec.budgets,
                                               spec.sample_per_budget, spec.seed, spec.patterns)
        self.starts = {c: first_changed(self.num_layers, c, spec.trainable)
                       for c in self.candidates}
        self.keep = states_needed(base, self.starts.values())
        self.shard = shard or Shard()
        self.shard.assign([candidate_cost(self.num_layers, c, self.starts[c])
                           for c in self.candidates])
        self.train: SplitCache | None = None  # the base model's passes (phase 1)
        self.dev: SplitCache | None = None
        self.ate_splits: dict[str, SplitCache] = {}
        self.base_source_score = float("nan")
        self.timing: dict[str, float] = {}
        self.independent: dict[str, Any] = {}
        self.tests: dict[str, SplitCache] = {}  # phase 4's target test splits
        self.store = store  # finished candidates of an interrupted run (amoc/progress.py)
        if store is not None:
            store.context.update(trainable=spec.trainable, train=spec.train, metric=self.metric,
                                 eval_batch_size=spec.eval_batch_size, kind=data.kind,
                                 precision=STORE_PRECISION[spec.precision],
                                 base=weights_digest(base))

    def cache(self, name: str, loader: Loader, train: bool = False) -> SplitCache:
        """The base model's pass over one split (training splits: shuffled, train batch size)."""
        dataset, collator = loader()
        if len(dataset) == 0:
            raise ValueError(f"AMoC split '{name}' has no examples")
        size = self.spec.train.batch_size if train else self.spec.eval_batch_size
        plan = batch_plan(len(dataset), size, self.spec.train.seed if train else None)
        return build_cache(self.base, name, dataset, collator, plan, self.keep, self.data.kind,
                           self.data.special_ids)

    def candidate_model(self, candidate: Candidate) -> tuple[Any, int]:
        """The base model without ``candidate``'s layers, frozen but for its trainable parts."""
        model = drop_layers(self.base, candidate.removed)
        kept = [i for i in range(self.num_layers) if i not in candidate.removed]
        params = set_trainable(model, trainable_parts(self.num_layers, candidate,
                                                      self.spec.trainable), kept)
        return model, params

    def run(self) -> pd.DataFrame:
        """All phases; one row per (target, candidate), in the spec's precision."""
        with search_precision(self.spec.precision, self.base):
            return self._run()

    def _run(self) -> pd.DataFrame:
        tic = time.perf_counter()
        self.train = self.cache("source_train", self.data.train, train=True)
        self.dev = self.cache("source_dev", self.data.dev)
        self.ate_splits = {t: self.cache(f"{t}_unlabeled", ate_loader)
                           for t, (ate_loader, _) in self.data.targets.items()}
        self.base_source_score = feats.score(_base(self.dev), self.dev, self.metric)
        pair = self.pair_features()
        self.timing["cache_s"] = time.perf_counter() - tic
        sample = timing_sample([_Slot(c, self.starts[c]) for c in self.candidates],
                               self.spec.independent_subset)
        shares = self.shard.run(lambda: self.run_share(pair, sample, tic))
        self.timing.update(search_s=max(s["search_s"] for s in shares),
                           score_s=max(s["score_s"] for s in shares))
        if self.shard.world > 1:
            self.timing.update(processes=self.shard.world,
                               rank_search_s=[s["search_s"] for s in shares])
        if self.spec.independent_subset:
            self.independent = combine([s["independent"] for s in shares], self.num_layers,
                                       sample, self.spec.trainable)
            log.info("amoc cost: independent %.1fs vs cached %.1fs on %d candidates (x%.2f; "
                     "the cache's bound: x%.2f training, x%.2f prediction)",
                     self.independent["independent_s"], self.independent["cached_s"],
                     len(sample), self.independent["ratio"], self.independent["bound"]["train"],
                     self.independent["bound"]["eval"])
        if self.store is not None:
            self.store.reused = sum(s["reused"] for s in shares)
        self.timing["run_s"] = time.perf_counter() - tic  # the whole search, wall clock
        rows = sorted((row for s in shares for row in s["rows"]), key=lambda r: r[0])
        return pd.DataFrame([row for _, group in rows for row in group])

    def run_share(self, pair: dict[str, dict[str, float]], sample: list[Any],
                  tic: float) -> dict[str, Any]:
        """Phases 2-4 for the candidates this process owns (all of them on one process)."""
        owned = [i for i in range(len(self.candidates)) if self.shard.owns(i)]
        trained = [self.fit_or_reuse(i, self.candidates[i]) for i in owned]
        search_s = time.perf_counter() - tic
        mine = {item.candidate: item for item in trained}
        timed = time_share(self, [mine[s.candidate] for s in sample if s.candidate in mine])
        self.train = None  # free the largest cache: the test splits are cached next
        tic = time.perf_counter()
        rows = self.score(trained, pair)
        return {"rows": list(zip(owned, rows, strict=True)), "search_s": search_s,
                "score_s": time.perf_counter() - tic, "independent": timed,
                "reused": self.store.reused if self.store is not None else 0}

    def pair_features(self) -> dict[str, dict[str, float]]:
        """Per target: domain distance to the source and the base model's confidence on it."""
        out = {}
        for target, split in self.ate_splits.items():
            conf, entropy = feats.confidence(split)
            distance = feats.proxy_a_distance(feats.pooled(self.dev), feats.pooled(split),
                                              self.spec.seed)
            out[target] = {"domain_distance": distance, "base_confidence": conf,
                           "base_entropy": entropy}
        return out

    def fit_or_reuse(self, i: int, candidate: Candidate) -> Trained:
        """Phase 2 for one candidate, or its stored result if an earlier run finished it."""
        start, store = self.starts[candidate], self.store
        stored = store.load(candidate, start) if store else None
        item = stored or self.fit(candidate)
        if store is not None and stored is None:
            store.save(item)
        log.info("amoc candidate %d/%d removed=%s start=%d %.1fs%s", i + 1, len(self.candidates),
                 candidate.name, start, item.stats["seconds"], " (reused)" if stored else "")
        return item

    def fit(self, candidate: Candidate) -> Trained:
        """Phase 2 for one candidate: fine-tune on the cache, then its label-free features."""
        tic = time.perf_counter()
        model, params = self.candidate_model(candidate)
        start = self.starts[candidate]
        stats = train_candidate(model, start, self.train, self.spec.train)
        dev = predict(model, start, self.dev)
        source_score = feats.score(dev, self.dev, self.metric)
        features = {"ate_source": ate(_base(self.dev), dev, _masks(self.dev)),
                    "source_score": source_score,
                    "source_drop": source_score - self.base_source_score}
        ate_target = {t: ate(_base(s), predict(model, start, s), _masks(s))
                      for t, s in self.ate_splits.items()}
        stats = {**stats, "train_seconds": stats["seconds"], "seconds": time.perf_counter() - tic}
        return Trained(candidate, start, params, stats, features, ate_target,
                       trained_state(model))

    def restore(self, item: Trained) -> Any:
        """A trained candidate rebuilt from the base model and its re-trained parameters."""
        model, _ = self.candidate_model(item.candidate)
        missing = set(item.state) - set(dict(model.named_parameters()))
        if missing:
            raise KeyError(f"trained parameters {sorted(missing)[:3]} not in the candidate")
        model.load_state_dict(item.state, strict=False)
        return model.eval()

    def score(self, trained: list[Trained],
              pair: dict[str, dict[str, float]]) -> list[list[dict[str, Any]]]:
        """Phase 4: read the labelled test splits now, score each candidate: rows per candidate."""
        self.tests = tests = {t: self.cache(f"{t}_test", test)
                              for t, (_, test) in self.data.targets.items()}
        source_test = self.cache("source_test", self.data.test) if self.data.test else None
        base_scores = {t: feats.score(_base(s), s, self.metric) for t, s in tests.items()}
        base_source_test = (feats.score(_base(source_test), source_test, self.metric)
                            if source_test and source_test.labelled else float("nan"))
        rows = []
        for item in trained:
            rows.append([])
            model = self.restore(item)
            source_test_score = (feats.score(predict(model, item.start, source_test),
                                             source_test, self.metric)
                                 if source_test and source_test.labelled else float("nan"))
            for target, split in tests.items():
                value = feats.score(predict(model, item.start, split), split, self.metric)
                rows[-1].append(self.row(item, target, pair[target], {
                    "target_score": value, "target_drop": value - base_scores[target],
                    "base_target_score": base_scores[target],
                    "source_test_score": source_test_score,
                    "base_source_score": self.base_source_score,
                    "base_source_test_score": base_source_test}))
        return rows

    def row(self, item: Trained, target: str, pair: dict[str, float],
            outcomes: dict[str, float]) -> dict[str, Any]:
        """One candidates.csv row: identifiers, features, true scores, then bookkeeping."""
        removed = set(item.candidate.removed)
        return {
            "source": self.data.source, "target": target, "removed": item.candidate.name,
            "rule": self.spec.trainable, "ate_target": item.ate_target[target],
            **item.features, "n_removed": item.candidate.k, **pair,
            **{c: int(i in removed) for i, c in enumerate(feats.indicator_columns(
                self.num_layers))},
            **outcomes, "metric": self.metric, "first_changed": item.start,
            "trainable_params": item.params, "train_loss": item.stats["loss"],
            "train_seconds": item.stats["train_seconds"], "seconds": item.stats["seconds"]}


@dataclass(frozen=True)
class _Slot:
    """A candidate and its first changed layer, before it is trained (for ``timing_sample``)."""

    candidate: Candidate
    start: int


def _base(split: SplitCache) -> list[Any]:
    return [b.base_probs for b in split.batches]


def _masks(split: SplitCache) -> list[Any]:
    return [b.token_mask for b in split.batches]
