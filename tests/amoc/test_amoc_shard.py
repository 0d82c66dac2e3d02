"""The AMoC search shared between processes gives the single-process table (docs/amoc.md §9)."""

from __future__ import annotations

import os
import socket

import pandas as pd
import pytest
import torch
from amoc_fixtures import collate, examples, tiny_model

from lmcompress.amoc.candidates import enumerate_candidates, first_changed
from lmcompress.amoc.search import Search, SearchData
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.shard import Shard, candidate_cost, split_by_cost
from lmcompress.specs import parse

TIMES = ("train_seconds", "seconds")  # wall-clock columns: the only ones allowed to differ


def _data(fail_on: str = "") -> SearchData:
    def loader(name: str, n: int, seed: int, labels: bool):
        def load():
            if name == fail_on:
                raise ValueError(f"cannot read {name}")
            return examples(n, seed, labels=labels), collate
        return load

    return SearchData(
        source="src", kind="classification", train=loader("train", 16, 0, True),
        dev=loader("dev", 8, 1, True), test=loader("source_test", 8, 2, True),
        targets={t: (loader(f"{t}_unlabeled", 8, 3 + i, False),
                     loader(f"{t}_test", 8, 5 + i, True)) for i, t in enumerate(("x", "y"))},
        special_ids=[0, 2, 3])


def _spec() -> SearchSpec:
    return parse(SearchSpec, {"budgets": [1, 2], "eval_batch_size": 8, "independent_subset": 3,
                              "train": {"batch_size": 8}}, "callbacks.amoc")


def test_split_by_cost_is_disjoint_complete_and_balanced():
    num_layers = 6
    candidates = enumerate_candidates(num_layers, [1, 2])
    costs = [candidate_cost(num_layers, c, first_changed(num_layers, c, "official"))
             for c in candidates]
    owner = split_by_cost(costs, 2)
    assert sorted(set(owner)) == [0, 1] and len(owner) == len(candidates)
    loads = [sum(c for c, o in zip(costs, owner, strict=True) if o == r) for r in (0, 1)]
    assert abs(loads[0] - loads[1]) <= max(costs)  # greedy: within one candidate's cost
    assert split_by_cost(costs, 2) == owner  # the same split on every rank
    assert split_by_cost(costs, 1) == [0] * len(costs)
    # removing layer 0 re-trains the embeddings: every kept layer plus the embeddings
    assert candidate_cost(6, candidates[0], -1) == 6.0
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        Shard(2, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: str, fail_on: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        search = Search(tiny_model("mix"), _data(fail_on if rank == 1 else ""), _spec(),
                        shard=Shard.from_torch())
        try:
            table = search.run()
        except Exception as err:  # every rank must raise, naming rank 1's failure
            with open(f"{out}.error{rank}", "w") as f:
                f.write(str(err))
            return
        owned = [i for i in range(len(search.candidates)) if search.shard.owns(i)]
        pd.to_pickle({"table": table, "owned": owned, "independent": search.independent,
                      "timing": search.timing}, f"{out}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def _spawn(tmp_path, fail_on: str = "") -> str:
    out = str(tmp_path / "shard")
    torch.multiprocessing.spawn(_rank, args=(2, _free_port(), out, fail_on), nprocs=2)
    return out


@pytest.mark.slow
def test_two_processes_give_the_single_process_table(tmp_path):
    out = _spawn(tmp_path)
    ranks = [pd.read_pickle(f"{out}.{r}") for r in (0, 1)]
    assert not set(ranks[0]["owned"]) & set(ranks[1]["owned"])  # disjoint shares ...
    assert sorted(ranks[0]["owned"] + ranks[1]["owned"]) == list(range(10))  # ... of all 10
    single = Search(tiny_model("mix"), _data(), _spec())
    expected = single.run()
    for rank in ranks:  # every rank gets the whole table, in the single-process order
        table = rank["table"]
        assert list(table.columns) == list(expected.columns) and len(table) == 20
        for column in expected.columns:
            if column in TIMES:
                continue
            if pd.api.types.is_numeric_dtype(expected[column]):
                diff = (table[column] - expected[column]).abs().max()
                assert diff <= 1e-6, (column, diff)
            else:
                assert table[column].tolist() == expected[column].tolist(), column
        assert rank["independent"]["candidates"] == 3  # each rank timed its part of the sample
        assert rank["independent"]["bound"] == single.independent["bound"]
        assert rank["timing"]["processes"] == 2


@pytest.mark.slow
def test_a_failing_rank_fails_every_rank_without_a_hang(tmp_path):
    out = _spawn(tmp_path, fail_on="x_test")  # rank 1 fails in phase 4, after its share trained
    assert open(f"{out}.error1").read() == "cannot read x_test"
    assert "rank 1: ValueError: cannot read x_test" in open(f"{out}.error0").read()
