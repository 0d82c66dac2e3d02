"""Cost of a CKD training step relative to a plain-KD step of the same student (issue #3).

Builds the real DistillModule from the Hydra configs (teacher: the embedded MiniLM-L6, 6 x 384;
student: its layers 1,3,5) and times full optimizer steps - frozen-teacher forward, student
forward, the loss terms, backward and AdamW - for each objective on the same batches. Steps of
the objectives are interleaved, so machine noise hits them alike; the ratio is the median over
repeats of (objective step time / kd step time).

    python benchmarks/ckd_step_cost.py                       # B=32, n=64 and 128, 10 repeats
    python benchmarks/ckd_step_cost.py --seq 128 --repeats 20 --objectives kd,kd_ckd,ckd
    python benchmarks/ckd_step_cost.py ++loss.ckd.centre=false      # without the centring
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lmcompress.utils.instantiate import instantiate_plain
from lmcompress.utils.paths import register_resolvers

CONF = Path(__file__).resolve().parents[1] / "conf"


def build(objective: str, num_layers: int, extra: list[str] = ()):
    register_resolvers()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("distill", overrides=[
            f"loss={objective}", "teacher.name_or_path=embedded:minilm-l6",
            "teacher.tokenizer=embedded:minilm-l6", f"student.num_layers={num_layers}", *extra,
        ])
    torch.manual_seed(0)
    module = instantiate_plain(cfg.module)
    module.log = lambda *a, **k: None  # no Trainer attached
    optim = torch.optim.AdamW([p for p in module.model.parameters() if p.requires_grad], lr=1e-5)
    return module, optim


def batch(size: int, seq: int, vocab: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seq)
    lengths = torch.randint(seq // 3, seq + 1, (size,), generator=g)
    lengths[0] = seq
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    ids = torch.randint(1000, vocab, (size, seq), generator=g) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": torch.randint(0, 2, (size,), generator=g)}


def step(module, optim, data) -> float:
    start = time.perf_counter()
    loss = module.training_step(data, 0)
    loss.backward()
    optim.step()
    optim.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", default="64,128")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--objectives", default="kd,kd_ckd")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every objective, e.g. "
                   "++loss.ckd.centre=false")
    args = p.parse_args()
    objectives = args.objectives.split(",")
    assert objectives[0] == "kd", "the first objective is the baseline: kd"
    runs = {o: build(o, args.layers, args.overrides) for o in objectives}
    print(f"student {args.layers} layers from MiniLM-L6 (6 x 384), batch {args.batch}, fp32, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} interleaved steps\n")
    print("| n | " + " | ".join(f"{o} s/step" for o in objectives) + " | "
          + " | ".join(f"{o} / kd" for o in objectives[1:]) + " |")
    print("|---" * (2 * len(objectives)) + "|")
    for seq in (int(s) for s in args.seq.split(",")):
        data = batch(args.batch, seq, runs["kd"][0].teacher.config.vocab_size)
        for o in objectives:  # warm-up (allocator, first-call overheads)
            step(*runs[o], data)
        times = {o: [] for o in objectives}
        for _ in range(args.repeats):
            for o in objectives:
                times[o].append(step(*runs[o], data))
        ratios = {o: statistics.median(a / b for a, b in zip(times[o], times["kd"], strict=True))
                  for o in objectives[1:]}
        print(f"| {seq} | " + " | ".join(f"{statistics.median(times[o]):.3f}" for o in objectives)
              + " | " + " | ".join(f"{ratios[o]:.3f}×" for o in objectives[1:]) + " |",
              flush=True)


if __name__ == "__main__":
    main()
