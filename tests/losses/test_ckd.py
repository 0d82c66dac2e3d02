"""CKD terms (``ckd_terms``, the one code path) against float64 references (docs/ckd.md).

Two references: explicit loops of the official formulation below, and the plain per-term
functions of ``ckd_reference.py`` for every option the loops do not cover.
"""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
import torch.nn.functional as F
from ckd_reference import CKD_LOSSES

from lmcompress.losses.ckd import ckd_terms, window_index
from lmcompress.models.layers import match_layers


def term(name):
    """One CKD term through ``ckd_terms``, as training computes it."""
    def fn(s, t, mask, **opts):
        return ckd_terms(s, t, mask, [name], **opts)[name]

    fn.__name__ = name
    return fn


wr_pair_loss, wr_triple_loss = term("wr_pair"), term("wr_triple")
ltr_pair_loss, ltr_triple_loss = term("ltr_pair"), term("ltr_triple")

# --- naive references: explicit loops / materialised difference vectors, float64 ---------------


def naive_wr_pair(s, t, mask):
    total, B, K, n = 0.0, *s.shape[:3]
    for b, k in itertools.product(range(B), range(K)):
        valid = [i for i in range(n) if mask[b, i]]
        for i in valid:
            others = [j for j in valid if j != i]
            if not others:
                continue
            cs = torch.stack([F.cosine_similarity(s[b, k, i], s[b, k, j], dim=0) for j in others])
            ct = torch.stack([F.cosine_similarity(t[b, k, i], t[b, k, j], dim=0) for j in others])
            p, logq = ct.softmax(0), cs.log_softmax(0)
            total = total + (p * (p.log() - logq)).sum()
    return total / (K * (mask.sum(1).double() ** 2).sum())


def _unit(x):
    return F.normalize(x, dim=-1, eps=1e-12)


def naive_wr_triple_window(s, t, mask, window):
    B, K, n = s.shape[:3]
    half, total = window // 2, 0.0
    for b, k, i in itertools.product(range(B), range(K), range(n)):
        if not mask[b, i]:
            continue
        pos = [min(max(i + w, 0), n - 1) for w in range(-half, half + 1)]
        us = _unit(s[b, k, i][None] - s[b, k, pos])  # [W, d] difference vectors
        ut = _unit(t[b, k, i][None] - t[b, k, pos])
        total = total + ((us @ us.T - ut @ ut.T) ** 2).sum()
    return total / (K * mask.sum() * window**2)


def naive_wr_triple_masked(s, t, mask, window, row=False):
    """Masked window: members are real tokens inside the sentence other than the vertex."""
    B, K, n = s.shape[:3]
    half, total, count, rows = window // 2, 0.0, 0, 0
    for b, k, i in itertools.product(range(B), range(K), range(n)):
        if not mask[b, i]:
            continue
        pos = [i + w for w in range(-half, half + 1)
               if 0 <= i + w < n and mask[b, i + w] and i + w != i]
        if not pos:
            continue
        us = _unit(s[b, k, i][None] - s[b, k, pos])
        ut = _unit(t[b, k, i][None] - t[b, k, pos])
        err = ((us @ us.T - ut @ ut.T) ** 2).sum()
        total, count, rows = total + (err / len(pos) ** 2 if row else err), count + len(pos) ** 2, \
            rows + 1
    return total / rows if row else total / count


def naive_wr_triple_all(s, t, mask):
    B, K, n = s.shape[:3]
    total = 0.0
    for b, k in itertools.product(range(B), range(K)):
        idx = [i for i in range(n) if mask[b, i]]
        hs, ht = s[b, k, idx], t[b, k, idx]
        us = _unit(hs[:, None] - hs[None])  # [v, j, d]: vertex v
        ut = _unit(ht[:, None] - ht[None])
        total = total + ((us @ us.transpose(1, 2) - ut @ ut.transpose(1, 2)) ** 2).sum()
    return total / (K * (mask.sum(1).double() ** 3).sum())


def naive_ltr_pair(s, t, mask):
    B, K, n = s.shape[:3]
    total = 0.0
    for b, i in itertools.product(range(B), range(n)):
        if not mask[b, i]:
            continue
        for layer in range(K):
            others = [m for m in range(K) if m != layer]
            cs = torch.stack([F.cosine_similarity(s[b, layer, i], s[b, m, i], dim=0)
                              for m in others])
            ct = torch.stack([F.cosine_similarity(t[b, layer, i], t[b, m, i], dim=0)
                              for m in others])
            p = ct.softmax(0)
            total = total + (p * (p.log() - cs.log_softmax(0))).sum()
    return total / (K * K * mask.sum())


def naive_ltr_triple(s, t, mask):
    B, K, n = s.shape[:3]
    total = 0.0
    for b, i in itertools.product(range(B), range(n)):
        if not mask[b, i]:
            continue
        vs, vt = s[b, :, i], t[b, :, i]  # [K, d]
        us, ut = _unit(vs[None] - vs[:, None]), _unit(vt[None] - vt[:, None])  # [l, m, d]
        total = total + ((us @ us.transpose(1, 2) - ut @ ut.transpose(1, 2)) ** 2).sum()
    return total / (K**3 * mask.sum())


# --- fixtures -----------------------------------------------------------------------------------


def _inputs(B=3, K=3, n=9, d_s=6, d_t=10, seed=0, lengths=(9, 5, 1)):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, K, n, d_s, generator=g, dtype=torch.float64) + 0.5
    t = torch.randn(B, K, n, d_t, generator=g, dtype=torch.float64) * 2 - 1
    mask = torch.zeros(B, n, dtype=torch.long)
    for b, length in enumerate(lengths):
        mask[b, :length] = 1
    return s, t, mask


OFFICIAL = {"mask_window": False}
CASES = [
    (wr_pair_loss, naive_wr_pair, {}),
    (wr_triple_loss, lambda s, t, m: naive_wr_triple_window(s, t, m, 5), {"window": 5, **OFFICIAL}),
    (wr_triple_loss, lambda s, t, m: naive_wr_triple_window(s, t, m, 21),
     {"window": 21, **OFFICIAL}),
    (wr_triple_loss, lambda s, t, m: naive_wr_triple_masked(s, t, m, 5), {"window": 5}),
    (wr_triple_loss, lambda s, t, m: naive_wr_triple_masked(s, t, m, 21), {"window": 21}),
    (wr_triple_loss, naive_wr_triple_all, {"window": None, "chunk_size": 4}),
    (ltr_pair_loss, naive_ltr_pair, {}),
    (ltr_triple_loss, naive_ltr_triple, {}),
]
IDS = ["wr_pair", "wr_triple_w5_official", "wr_triple_w21_official", "wr_triple_w5_masked",
       "wr_triple_w21_masked", "wr_triple_all", "ltr_pair", "ltr_triple"]


@pytest.mark.parametrize(("fn", "naive", "opts"), CASES, ids=IDS)
def test_equals_naive_float64(fn, naive, opts):
    s, t, mask = _inputs()
    ours = fn(s, t, mask, **opts)
    torch.testing.assert_close(ours, naive(s, t, mask).to(ours), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("fn", "naive", "opts"), CASES, ids=IDS)
def test_float32_within_1e5_of_float64_naive(fn, naive, opts):
    s, t, mask = _inputs(seed=1)
    ours = fn(s.float(), t.float(), mask, **opts).double()
    torch.testing.assert_close(ours, naive(s, t, mask), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("fn", "naive", "opts"), CASES, ids=IDS)
def test_gradient_matches_naive(fn, naive, opts):
    s, t, mask = _inputs(seed=2, lengths=(9, 2, 1))
    s1, s2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    fn(s1, t, mask, **opts).backward()
    naive(s2, t, mask).backward()
    assert torch.isfinite(s1.grad).all()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("fn", "naive", "opts"), CASES, ids=IDS)
def test_zero_when_student_equals_teacher(fn, naive, opts):
    s, _, mask = _inputs()
    assert fn(s, s, mask, **opts).abs().item() < 1e-12


@pytest.mark.parametrize(("fn", "naive", "opts"), CASES, ids=IDS)
def test_single_valid_token_rows_give_finite_gradients(fn, naive, opts):
    s, t, mask = _inputs(lengths=(1, 2, 1))
    s = s.float().requires_grad_()
    loss = fn(s, t.float(), mask, **opts)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_masked_window_is_invariant_to_extra_padding():
    s, t, mask = _inputs(n=9, lengths=(9, 5, 3))
    pad = 7
    s2 = torch.cat([s, torch.randn(*s.shape[:2], pad, s.shape[-1], dtype=s.dtype)], dim=2)
    t2 = torch.cat([t, torch.randn(*t.shape[:2], pad, t.shape[-1], dtype=t.dtype)], dim=2)
    mask2 = torch.cat([mask, torch.zeros(mask.shape[0], pad, dtype=mask.dtype)], dim=1)
    masked = [wr_triple_loss(a, b, m, window=5, mask_window=True)
              for a, b, m in ((s, t, mask), (s2, t2, mask2))]
    torch.testing.assert_close(masked[0], masked[1])
    shared = [ckd_terms(a, b, m, ["wr_triple"], window=5)["wr_triple"]
              for a, b, m in ((s, t, mask), (s2, t2, mask2))]
    torch.testing.assert_close(shared[0], shared[1])
    torch.testing.assert_close(shared[0], masked[0])
    official = [wr_triple_loss(a, b, m, window=5, mask_window=False)
                for a, b, m in ((s, t, mask), (s2, t2, mask2))]
    assert not torch.allclose(official[0], official[1])  # the official window sees the padding
    for fn in (wr_pair_loss, ltr_pair_loss, ltr_triple_loss):  # already padding-invariant
        torch.testing.assert_close(fn(s, t, mask), fn(s2, t2, mask2))


@pytest.mark.parametrize("opts", [
    {"distance": "l2", "dist_norm": True, "pair_loss": "smoothl1"},
    {"distance": "sqeuclidean", "pair_loss": "l2"},
    {"normalize": "row"},
])
@pytest.mark.parametrize("fn", [wr_pair_loss, ltr_pair_loss])
def test_pair_options_are_finite_and_zero_at_identity(fn, opts):
    s, t, mask = _inputs(lengths=(9, 5, 1))
    s = s.float().requires_grad_()
    loss = fn(s, t.float(), mask, **opts)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and torch.isfinite(s.grad).all()
    assert fn(s.detach(), s.detach(), mask, **opts).abs() < 1e-6


def test_rkd_variant_equals_naive_distance_over_mean():
    s, t, mask = _inputs(B=1, lengths=(6,))
    def rel(h):
        d = torch.cdist(h[0, :, :6], h[0, :, :6])  # [K, 6, 6] Euclidean
        return d / (d.sum((-1, -2), keepdim=True) / (6 * 5))
    expected = F.smooth_l1_loss(rel(s), rel(t), reduction="sum") / (s.shape[1] * 36)
    ours = wr_pair_loss(s, t, mask, distance="l2", dist_norm=True, pair_loss="smoothl1")
    torch.testing.assert_close(ours, expected)


def test_row_normalisation_is_mean_of_row_means():
    s, t, mask = _inputs(lengths=(9, 5, 2))
    ours = wr_triple_loss(s, t, mask, window=3, normalize="row", mask_window=False)
    # without window masking every valid centre has W² = 9 entries: the two normalisations agree
    torch.testing.assert_close(ours, wr_triple_loss(s, t, mask, window=3, mask_window=False))
    masked = wr_triple_loss(s, t, mask, window=3, mask_window=True, normalize="row")
    torch.testing.assert_close(masked, naive_wr_triple_masked(s, t, mask, 3, row=True))
    torch.testing.assert_close(wr_triple_loss(s, t, mask, window=3),
                               naive_wr_triple_masked(s, t, mask, 3))


def test_window_membership_excludes_vertex_padding_and_clamped_duplicates():
    from lmcompress.losses.ckd.window import window_members

    valid = torch.tensor([[True, True, True, False]])  # 3 real tokens, 1 padding
    idx, inside = window_index(4, 3, torch.device("cpu"))
    members = window_members(valid, idx, inside)[0].tolist()
    # vertex 0: left clamps onto itself (out), itself (out), token 1 (in)
    assert members == [[False, False, True], [True, False, True], [True, False, False],
                       [False, False, False]]


def test_masked_window_is_batch_invariant():
    """A sentence's numerator and denominator do not depend on the rest of its batch."""
    s, t, mask = _inputs(B=2, n=9, lengths=(9, 4))
    opts = {"window": 5}
    singles = []
    for b in range(2):
        n_b = int(mask[b].sum())
        x, y, m = s[b:b + 1, :, :n_b], t[b:b + 1, :, :n_b], mask[b:b + 1, :n_b]
        members = sum(min(i + 2, n_b - 1) - max(i - 2, 0) for i in range(n_b))  # per layer
        count = s.shape[1] * sum((min(i + 2, n_b - 1) - max(i - 2, 0)) ** 2 for i in range(n_b))
        assert members > 0
        singles.append((wr_triple_loss(x, y, m, **opts) * count, count))
    expected = sum(v for v, _ in singles) / sum(c for _, c in singles)
    torch.testing.assert_close(wr_triple_loss(s, t, mask, **opts), expected)
    torch.testing.assert_close(ckd_terms(s, t, mask, ["wr_triple"], **opts)["wr_triple"],
                               expected)


def test_match_layers_emb_skip():
    def match_layers_pairs(t, s):
        m = match_layers(t, s)
        return m.teacher, m.student

    assert match_layers_pairs(12, 6) == ([0, 2, 4, 6, 8, 10, 12], [0, 1, 2, 3, 4, 5, 6])
    assert match_layers_pairs(12, 4) == ([0, 3, 6, 9, 12], [0, 1, 2, 3, 4])
    assert match_layers_pairs(12, 3) == ([0, 4, 8, 12], [0, 1, 2, 3])
    assert match_layers_pairs(12, 8) == ([0, 3, 6, 9, 12], [0, 2, 4, 6, 8])
    assert match_layers_pairs(6, 3) == ([0, 2, 4, 6], [0, 1, 2, 3])
    assert match_layers_pairs(6, 2) == ([0, 3, 6], [0, 1, 2])
    assert match_layers_pairs(12, 5) == ([0, 12], [0, 5])  # co-prime: K = 2


def test_bad_arguments():
    s, t, mask = _inputs()
    with pytest.raises(ValueError, match="window"):
        wr_triple_loss(s, t, mask, window=4)
    with pytest.raises(ValueError, match="pair_loss"):
        wr_pair_loss(s, t, mask, pair_loss="kl")
    with pytest.raises(ValueError, match="differ in batch"):
        wr_pair_loss(s, t[:, :2], mask)
    with pytest.raises(ValueError, match="attention_mask"):
        ltr_pair_loss(s, t, mask[:, :4])


@pytest.mark.parametrize("opts", [
    {}, {"window": 5}, {"mask_window": False}, {"centre": False},
    {"window": 5, "mask_window": False}, {"window": None}, {"window": None, "normalize": "row"},
    {"normalize": "row"}, {"normalize": "row", "mask_window": False},
    {"triple_loss": "l1"}, {"triple_loss": "smoothl1", "mask_window": False},
    {"triple_loss": "smoothl1", "window": None, "chunk_size": 4},
    {"distance": "l2", "dist_norm": True, "pair_loss": "smoothl1"},
    {"distance": "sqeuclidean", "pair_loss": "l1", "normalize": "row"},
    {"distance": "cos", "pair_loss": "l2", "centre": False}])
def test_ckd_terms_equal_the_plain_references_with_gradients(opts):
    s, t, mask = _inputs(seed=3, lengths=(9, 4, 1))
    names = ["wr_pair", "wr_triple", "ltr_pair", "ltr_triple"]
    s1 = s.clone().requires_grad_()
    together = ckd_terms(s1, t, mask, names, **opts)
    sum(together.values()).backward()
    s2 = s.clone().requires_grad_()
    total = 0
    for name in names:
        fn = CKD_LOSSES[name]  # (the references always centre: same value in float64)
        accepted = {k: v for k, v in opts.items() if k in inspect.signature(fn).parameters}
        value = fn(s2, t, mask, **accepted)
        torch.testing.assert_close(together[name], value, rtol=1e-10, atol=1e-12)
        total = total + value
    total.backward()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="unknown CKD term"):
        ckd_terms(s, t, mask, ["wr_quad"])


def test_fused_window_term_refuses_a_second_backward():
    s, t, mask = _inputs()
    x = s.clone().requires_grad_()
    loss = ckd_terms(x, t, mask, ["wr_triple"], window=5)["wr_triple"]
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


ALL_TERMS = ["wr_pair", "wr_triple", "ltr_pair", "ltr_triple"]


@pytest.mark.parametrize(("fn", "naive", "opts"), CASES, ids=IDS)
def test_bf16_autocast_does_not_reach_the_relations(fn, naive, opts):
    """Mixed precision (hardware=bf16_mixed / ddp): the loss runs in fp32, outside autocast."""
    s, t, mask = _inputs(seed=4)
    s, t = s.float() + 3.0, t.float() + 3.0  # a shared offset: where half-precision Grams fail
    x1, x2 = s.clone().requires_grad_(), s.clone().requires_grad_()
    exact = fn(x1, t, mask, **opts)
    exact.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = fn(x2, t, mask, **opts)
    mixed.backward()
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, rtol=1e-6, atol=0)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-6, atol=0)


def test_bf16_states_are_upcast_before_the_relations():
    s, t, mask = _inputs(seed=5)
    exact = ckd_terms(s.bfloat16().float(), t.bfloat16().float(), mask, ALL_TERMS)
    from_bf16 = ckd_terms(s.bfloat16(), t.bfloat16(), mask, ALL_TERMS)
    for name in ALL_TERMS:
        assert from_bf16[name].dtype == torch.float32
        torch.testing.assert_close(from_bf16[name], exact[name], rtol=1e-6, atol=0)


def test_values_equal_those_of_the_code_before_the_restructure():
    """tests/fixtures/ckd_values_02b4377.json: ckd_terms of commit 02b4377 on seeded float64
    inputs (official window) and its masked WR triple; the current code must agree."""
    import json
    from pathlib import Path

    stored = json.loads((Path(__file__).parents[1] / "fixtures" / "ckd_values_02b4377.json")
                        .read_text())
    for seed, offset in ((0, 0.0), (1, 3.0)):
        g = torch.Generator().manual_seed(seed)  # as the script that wrote the fixture
        s = torch.randn(3, 4, 11, 8, generator=g, dtype=torch.float64) + offset
        t = torch.randn(3, 4, 11, 12, generator=g, dtype=torch.float64) * 2 - 1 + offset
        mask = (torch.arange(11)[None] < torch.tensor([11, 6, 2])[:, None]).long()
        for window in (5, 21):
            key = f"seed{seed}_offset{offset}_w{window}"
            now = ckd_terms(s, t, mask, ALL_TERMS, window=window, mask_window=False)
            for name, value in stored[f"{key}_official"].items():
                assert now[name].item() == pytest.approx(value, rel=1e-10), (key, name)
            masked = ckd_terms(s, t, mask, ["wr_triple"], window=window)["wr_triple"]
            assert masked.item() == pytest.approx(stored[f"{key}_masked_wr_triple"], rel=1e-10)


def test_centring_keeps_float32_angles_under_a_large_offset():
    s, t, mask = _inputs(seed=6)
    s, t = s + 64.0, t + 64.0
    exact = ckd_terms(s, t, mask, ["wr_triple", "ltr_triple"], window=5)
    for centre, tolerance in ((True, 1e-5), (False, None)):
        got = ckd_terms(s.float(), t.float(), mask, ["wr_triple", "ltr_triple"], window=5,
                        centre=centre)
        errors = [abs(got[k].item() - exact[k].item()) / exact[k].item() for k in got]
        if tolerance is not None:
            assert max(errors) < tolerance, errors
        else:  # without centring the same float32 computation is far off
            assert max(errors) > 1e-4, errors
