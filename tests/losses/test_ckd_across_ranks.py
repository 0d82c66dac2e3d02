"""CKD's normalisers under DDP (docs/ckd.md §13): two gloo processes with shards of different
lengths, each inside ``counts_across_ranks``, average (as DDP does) to the loss and the gradient
of the pooled batch computed by one process; without the context they do not. float64."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist

from lmcompress.losses import counts_across_ranks
from lmcompress.losses.ckd import CKD_TERMS, ckd_terms

LENGTHS = (11, 3, 8, 5)  # rank 0: examples 0-1 (14 tokens), rank 1: 2-3 (13 tokens)
OPTIONS = {
    "official_w5_global": {"window": 5, "mask_window": False, "normalize": "global"},
    "masked_w21_global": {"window": 21, "mask_window": True, "normalize": "global"},
    "all_triples_global": {"window": None, "normalize": "global"},
    "masked_w5_row": {"window": 5, "mask_window": True, "normalize": "row"},
    "all_triples_row": {"window": None, "normalize": "row"},
}


def _inputs():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 3, 11, 6, generator=g, dtype=torch.float64) + 0.5
    t = torch.randn(4, 3, 11, 10, generator=g, dtype=torch.float64) * 2 - 1
    mask = (torch.arange(11)[None] < torch.tensor(LENGTHS)[:, None]).long()
    return s, t, mask


def _loss_and_grad(s, t, mask, options, term):
    s = s.clone().requires_grad_(True)
    loss = ckd_terms(s, t, mask, [term], **options)[term]
    loss.backward()
    return loss.detach(), s.grad


def _rank(rank: int, port: int, out: str, across: bool) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    s, t, mask = _inputs()
    shard = slice(2 * rank, 2 * rank + 2)
    results = {}
    for case, options in OPTIONS.items():
        for term in CKD_TERMS:
            with counts_across_ranks(across):
                loss, grad = _loss_and_grad(s[shard], t[shard], mask[shard], options, term)
            dist.all_reduce(loss)  # DDP: the mean of the processes' losses and gradients
            grads = [torch.zeros_like(grad) for _ in range(2)]
            dist.all_gather(grads, grad)
            results[f"{case}/{term}"] = (loss / 2, torch.cat(grads) / 2)
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_processes(tmp_path, across: bool) -> dict:
    out = str(tmp_path / f"ranks_{across}.pt")
    torch.multiprocessing.spawn(_rank, args=(_free_port(), out, across), nprocs=2)
    return torch.load(out)


@pytest.fixture(scope="module")
def pooled():
    s, t, mask = _inputs()
    return {f"{case}/{term}": _loss_and_grad(s, t, mask, options, term)
            for case, options in OPTIONS.items() for term in CKD_TERMS}


@pytest.mark.slow
def test_two_shards_average_to_the_pooled_batch(tmp_path, pooled):
    ranks = _two_processes(tmp_path, across=True)
    assert ranks.keys() == pooled.keys()
    for key, (loss, grad) in pooled.items():
        torch.testing.assert_close(ranks[key][0], loss, rtol=1e-12, atol=0, msg=key)
        torch.testing.assert_close(ranks[key][1], grad, rtol=1e-10, atol=1e-15, msg=key)


@pytest.mark.slow
def test_per_shard_counts_do_not(tmp_path, pooled):
    """The control: without the context the shards' own counts give another loss (every
    case here: the two shards hold 14 and 13 tokens, and their rows differ)."""
    ranks = _two_processes(tmp_path, across=False)
    for key, (loss, _) in pooled.items():
        assert abs(float(ranks[key][0]) - float(loss)) > 1e-6 * abs(float(loss)), key


def test_share_outside_the_context_is_the_clamp():
    from lmcompress.losses.ckd.ranks import share

    for count in (torch.tensor(0), torch.tensor(7), torch.tensor(0.0), torch.tensor(2.5)):
        with counts_across_ranks(True):  # no process group: nothing to share
            assert torch.equal(share(count), count.clamp_min(1))
        assert torch.equal(share(count), count.clamp_min(1))
