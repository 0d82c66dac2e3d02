"""CPU latency of AMoC candidates against the full model: MiniLM-L6 with k layers removed.

Every candidate with the same number of removed layers has the same shape (all BERT layers are
alike), so one model per budget k stands for all of them; removal is physical
(``models.surgery.drop_layers``). Both heads: the paper's scalar-mix CNN and the standard pooler
head. Median of repeats of a no-grad forward, batch 1 and 32, same run for every k.

    python benchmarks/amoc_latency.py                       # length 96 (the CPU sweep) and 128
"""

from __future__ import annotations

import argparse

import torch
import transformers

from lmcompress.models.hub import build_model
from lmcompress.models.surgery import drop_layers
from lmcompress.specs import ModelSpec, TaskSpec
from lmcompress.utils.latency import measure_latency

TASK = TaskSpec(name="amazon", kind="classification", num_labels=2, metrics=["accuracy"],
                main_metric="accuracy", label_names=["negative", "positive"])


def base_model(head: str, length: int) -> torch.nn.Module:
    config = {"input_length": length} if head == "scalar_mix_cnn" else {}
    spec = ModelSpec(name_or_path="embedded:minilm-l6", head=head, config=config)
    return build_model(spec, TASK).eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="96,128")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--budgets", default="0,1,2,3")
    args = p.parse_args()
    transformers.logging.set_verbosity_error()  # no weight-loading report for the new heads
    print(f"MiniLM-L6, CPU, {torch.get_num_threads()} threads, median of {args.repeats}; removed "
          "layers = the top ones (any set of the same size costs the same)\n")
    print("| head | length | layers removed | params (M) | batch 1 ms | speed-up | batch 32 ms "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for head in ("scalar_mix_cnn", "pooler"):
        for length in (int(x) for x in args.lengths.split(",")):
            base = base_model(head, length)
            full = None
            for k in (int(x) for x in args.budgets.split(",")):
                model = drop_layers(base, list(range(6 - k, 6))) if k else base
                ms = measure_latency(model, length, (1, 32), args.repeats)
                full = full or ms
                params = sum(p.numel() for p in model.parameters()) / 1e6
                print(f"| {head} | {length} | {k} | {params:.1f} | {ms['latency_ms_b1']:.1f} | "
                      f"{full['latency_ms_b1'] / ms['latency_ms_b1']:.2f}× | "
                      f"{ms['latency_ms_b32']:.0f} | "
                      f"{full['latency_ms_b32'] / ms['latency_ms_b32']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
