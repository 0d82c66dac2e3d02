"""Candidate sets, fixed patterns, trainable rules and the first changed layer."""

from __future__ import annotations

import math

import pytest

from lmcompress.amoc.candidates import (
    Candidate,
    Trainable,
    cache_bound,
    enumerate_candidates,
    first_changed,
    fixed_pattern,
    trainable_parts,
)


def test_all_subsets_per_budget():
    cands = enumerate_candidates(6, [1, 2, 3])
    assert len(cands) == sum(math.comb(6, k) for k in (1, 2, 3)) == 41
    assert cands[0] == Candidate((0,)) and cands[-1] == Candidate((3, 4, 5))
    assert Candidate.parse("1+3") == Candidate((1, 3)) and Candidate((1, 3)).name == "1+3"


def test_seeded_sample_keeps_the_patterns():
    first = enumerate_candidates(12, [2, 3], per_budget=5, seed=7)
    assert first == enumerate_candidates(12, [2, 3], per_budget=5, seed=7)
    assert first != enumerate_candidates(12, [2, 3], per_budget=5, seed=8)
    for k in (2, 3):
        size = [c for c in first if c.k == k]
        assert 5 <= len(size) <= 8  # 5 sampled + up to 3 patterns
        for pattern in ("top", "bottom", "alternate"):
            assert fixed_pattern(pattern, 12, k) in size


def test_fixed_patterns():
    assert fixed_pattern("top", 6, 2) == Candidate((4, 5))
    assert fixed_pattern("bottom", 6, 2) == Candidate((0, 1))
    assert fixed_pattern("alternate", 6, 3) == Candidate((1, 3, 5))
    assert fixed_pattern("alternate", 6, 4) is None
    with pytest.raises(ValueError, match="unknown layer-dropping pattern"):
        fixed_pattern("middle", 6, 2)


@pytest.mark.parametrize("budgets", [[], [0], [6]])
def test_budget_refusals(budgets):
    with pytest.raises(ValueError, match="amoc.budgets"):
        enumerate_candidates(6, budgets)


def test_official_rule_trains_the_layer_below_each_removed_run():
    assert trainable_parts(6, Candidate((2, 3, 5)), "official") == Trainable(False, (1, 4))
    assert trainable_parts(6, Candidate((0, 1, 4)), "official") == Trainable(True, (3,))
    assert trainable_parts(6, Candidate((2,)), "all") == Trainable(True, (0, 1, 3, 4, 5))
    assert first_changed(6, Candidate((2, 3, 5)), "official") == 1
    assert first_changed(6, Candidate((0, 4)), "official") == -1
    assert first_changed(6, Candidate((5,)), "all") == -1
    with pytest.raises(ValueError, match="amoc.trainable='some'"):
        trainable_parts(6, Candidate((1,)), "some")


def test_timing_sample_follows_the_starts_of_the_whole_search():
    from types import SimpleNamespace

    from lmcompress.amoc.candidates import enumerate_candidates
    from lmcompress.amoc.search import timing_sample

    # MiniLM-L6, budgets 1 and 2: 21 candidates; the first changed layer is min(removed) - 1.
    trained = [SimpleNamespace(candidate=c, start=min(c.removed) - 1)
               for c in enumerate_candidates(6, [1, 2])]
    assert len(trained) == 21
    assert [t.start for t in timing_sample(trained, 3)] == [-1, 0, 2]
    assert sorted(t.start for t in timing_sample(trained, 7)) == [-1, -1, 0, 0, 1, 2, 3]
    assert len(timing_sample(trained, 50)) == 21  # every candidate: the exact ratio


def test_cache_bound_counts_layer_passes_by_hand():
    # removing layer 5 of 6 re-trains layer 4: forward 5 kept layers uncached, 1 cached; the
    # backward pass reaches layer 4 only (a re-trained layer: 2) on both paths
    assert cache_bound(6, [Candidate((5,))], "official") == {"train": 7 / 3, "eval": 5.0}
    # removing layer 0 re-trains the embeddings: nothing below them to cache
    assert cache_bound(6, [Candidate((0,))], "official") == {"train": 1.0, "eval": 1.0}
    # removing 2 and 4: layers 1 and 3 re-trained, start at 1; kept 0, 1, 3, 5
    # uncached 4 + backward (2 + 2 + 1), cached 3 + the same backward
    assert cache_bound(6, [Candidate((2, 4))], "official") == {"train": 9 / 8, "eval": 4 / 3}
    # the whole-search bound pools the passes (not a mean of ratios), and "all" caches nothing
    both = cache_bound(6, [Candidate((5,)), Candidate((0,))], "official")
    assert both == {"train": (7 + 10) / (3 + 10), "eval": (5 + 5) / (1 + 5)}
    assert cache_bound(6, enumerate_candidates(6, [1, 2]), "all") == {"train": 1.0, "eval": 1.0}
