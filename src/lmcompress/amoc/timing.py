"""Phase 3 of a search: a sample of candidates re-run without the cache, to time both paths.

The sample is drawn from the whole candidate list (evenly spaced in first-changed-layer order),
so that its ratio stands for the whole search (docs/amoc.md §9-10). Under several processes each
rank times the sampled candidates it owns and :func:`combine` adds the shares up.
"""

from __future__ import annotations

import time
from typing import Any

from lmcompress.amoc.candidates import cache_bound
from lmcompress.amoc.train import predict, train_candidate


def timing_sample(trained: list[Any], n: int) -> list[Any]:
    """``n`` candidates evenly spaced in first-changed-layer order, to time without the cache.

    The saving depends on where a candidate starts, so the sample follows the candidates'
    distribution of starts. ``n >= len(trained)`` times every candidate (the exact ratio).
    Items need ``.candidate`` and ``.start``.
    """
    ordered = sorted(trained, key=lambda item: (item.start, item.candidate.k))
    if n >= len(ordered):
        return ordered
    return [ordered[(2 * i + 1) * len(ordered) // (2 * n)] for i in range(n)]


def time_share(search: Any, trained: list[Any]) -> dict[str, float]:
    """Time the cached and the independent path of each candidate in ``trained``.

    Each cached fit is timed again right before its independent run: both sides of the ratio
    share one window of a (possibly shared, noisy) machine. Returns seconds per path, the
    count and the largest difference of the independent path's predictions from the stored
    candidate's.
    """
    cached, independent, diff = 0.0, 0.0, 0.0
    for item in trained:
        tic = time.perf_counter()
        model, _ = search.candidate_model(item.candidate)
        train_candidate(model, item.start, search.train, search.spec.train)
        predict(model, item.start, search.dev)
        for split in search.ate_splits.values():
            predict(model, item.start, split)
        cached += time.perf_counter() - tic
        tic = time.perf_counter()
        model, _ = search.candidate_model(item.candidate)
        train_candidate(model, item.start, search.train, search.spec.train, cached=False)
        dev = predict(model, item.start, search.dev, cached=False)
        for split in search.ate_splits.values():
            predict(model, item.start, split, cached=False)
        independent += time.perf_counter() - tic
        again = predict(search.restore(item), item.start, search.dev)
        diff = max(diff, max(float((a - b).abs().max()) for a, b in zip(dev, again,
                                                                         strict=True)))
    return {"candidates": len(trained), "cached_s": cached, "independent_s": independent,
            "max_abs_prob_diff": diff}


def combine(shares: list[dict[str, float]], num_layers: int, sample: list[Any],
            trainable: str) -> dict[str, Any]:
    """The ranks' timings as one: summed seconds and counts, the largest difference, the bound.

    Seconds are summed over ranks: the ratio compares the work of both paths, not wall time.
    """
    cached = sum(s["cached_s"] for s in shares)
    independent = sum(s["independent_s"] for s in shares)
    bound = cache_bound(num_layers, [t.candidate for t in sample], trainable)
    return {"candidates": sum(s["candidates"] for s in shares), "cached_s": cached,
            "independent_s": independent,
            "ratio": independent / cached if cached else float("nan"),
            "max_abs_prob_diff": max(s["max_abs_prob_diff"] for s in shares), "bound": bound}
