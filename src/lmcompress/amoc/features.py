"""Label-free features of a (source, target, candidate) triple, and the scores (docs/amoc.md).

Per candidate C (removed layers) for source S and target T, computed without target labels:

* ``ate_target``: ATE_C on unlabelled target text; ``ate_source``: ATE_C on the source dev set;
* ``source_score``: the candidate's source-dev score; ``source_drop``: that minus the base's;
* ``n_removed`` = |C| and ``removed_<i>`` = 1 if layer i is in C;
* ``domain_distance``: proxy-A distance 2(1 - 2 eps), eps the cross-validated error of a
  logistic-regression classifier telling S from T by the base model's mean-pooled last states;
* ``base_confidence`` / ``base_entropy``: the base model's mean max probability and mean
  prediction entropy (nats) on the target text.

The outcome columns (true scores) follow the features in candidates.csv.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lmcompress.amoc.cache import SplitCache
from lmcompress.labels import IGNORE_INDEX
from lmcompress.metrics import accuracy, binary_f1, macro_f1

ID_COLUMNS = ("source", "target", "removed", "rule")
CANDIDATE_FEATURES = ("ate_target", "ate_source", "source_score", "source_drop", "n_removed")
PAIR_FEATURES = ("domain_distance", "base_confidence", "base_entropy")
INDICATOR_PREFIX = "removed_"
OUTCOMES = ("target_score", "target_drop", "base_target_score", "source_test_score",
            "base_source_score")
SCORERS = {"accuracy": accuracy, "token_accuracy": accuracy, "macro_f1": macro_f1,
           "f1": binary_f1}
DEFAULT_METRIC = {"classification": "macro_f1", "token_classification": "token_accuracy"}


def indicator_columns(num_layers: int) -> list[str]:
    """``removed_0 .. removed_{L-1}``."""
    return [f"{INDICATOR_PREFIX}{i}" for i in range(num_layers)]


def feature_columns(table: pd.DataFrame) -> list[str]:
    """Every feature column of a candidates table, in a fixed order."""
    indicators = sorted((c for c in table.columns if c.startswith(INDICATOR_PREFIX)),
                        key=lambda c: int(c[len(INDICATOR_PREFIX):]))
    return [*CANDIDATE_FEATURES, *PAIR_FEATURES, *indicators]


def metric_for(kind: str, metric: str | None) -> str:
    """The scoring metric: the given one, or macro-F1 (classification) / token accuracy."""
    if kind not in DEFAULT_METRIC:
        raise ValueError(f"AMoC compares class distributions: task.kind={kind!r} is not "
                         f"supported (choose from {sorted(DEFAULT_METRIC)})")
    metric = metric or DEFAULT_METRIC[kind]
    if metric not in SCORERS:
        raise ValueError(f"amoc.metric={metric!r}: choose from {sorted(SCORERS)}")
    return metric


def score(probs: Sequence[torch.Tensor], split: SplitCache, metric: str) -> float:
    """``metric`` of the argmax predictions against the split's gold labels."""
    if not split.labelled:
        raise ValueError(f"split '{split.name}' has no labels to score against")
    preds = torch.cat([p.argmax(-1).reshape(-1) for p in probs])
    gold = torch.cat([b.labels.reshape(-1) for b in split.batches])
    keep = gold != IGNORE_INDEX
    return float(SCORERS[metric](preds[keep], gold[keep]))


def confidence(split: SplitCache) -> tuple[float, float]:
    """The base model's mean max probability and mean entropy (nats) on ``split``."""
    maxima, entropies = [], []
    for batch in split.batches:
        p = batch.base_probs.double()
        entropy = -(p * p.clamp(min=1e-12).log()).sum(-1)
        mask = batch.token_mask
        maxima.append(p.max(-1).values[mask] if mask is not None else p.max(-1).values)
        entropies.append(entropy[mask] if mask is not None else entropy)
    return float(torch.cat(maxima).mean()), float(torch.cat(entropies).mean())


def proxy_a_distance(source: np.ndarray, target: np.ndarray, seed: int = 0,
                     folds: int = 5) -> float:
    """2(1 - 2 eps) with eps the CV error of a logistic-regression S-vs-T classifier.

    The larger side is subsampled (seeded) to the smaller one's size, so chance error is 0.5
    and the distance is ~0 for indistinguishable domains, 2 for separable ones.
    """
    n = min(len(source), len(target))
    if n < 2:
        raise ValueError(f"proxy-A distance needs >= 2 examples per domain, got {n}")
    rng = np.random.default_rng(seed)
    source = source[rng.choice(len(source), n, replace=False)]
    target = target[rng.choice(len(target), n, replace=False)]
    features = np.vstack([source, target])
    domain = np.array([0] * n + [1] * n)
    splits = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    error = 1.0 - float(cross_val_score(classifier, features, domain, cv=splits).mean())
    return 2.0 * (1.0 - 2.0 * error)


def pooled(split: SplitCache) -> np.ndarray:
    """The base model's mean-pooled last hidden states of a split, ``[N, H]``."""
    return torch.cat([b.pooled for b in split.batches]).double().numpy()
