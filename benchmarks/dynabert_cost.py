"""Cost of DynaBERT sub-networks of MiniLM-L6: supernet training steps and exported inference.

(a) Training: the embedded MiniLM-L6 (6 x 384, 12 heads, FFN 1536) with a 2-label head, made
dynamic; one step = forward + backward + AdamW at each (width, depth) on the same batch. Steps
of all sub-networks are interleaved, so machine noise hits them alike; the ratio is the median
over repeats of (sub-network step time / full-model step time).
(b) Inference: every sub-network exported with ``extract_subnetwork``, timed in eval mode under
``torch.no_grad`` at each batch size, interleaved; speed-up = median over repeats of (full /
sub-network latency). The FLOP ratio counts the encoder's matmuls (Q/K/V, scores, context,
attention output, FFN; docs/dynabert.md §8): a sliced model that does no worse than its smaller
matmuls imply has speed-up / FLOP ratio near 1 (>= 0.8 is the bar). ``--runtimes`` times the
same exported models in eager PyTorch, as a frozen TorchScript trace (``torch.jit.trace`` +
``freeze`` + ``optimize_for_inference``) and in ONNX Runtime (``torch.onnx.export``, TorchScript
exporter, one intra-op thread per torch thread; needs ``pip install onnx onnxruntime``). Each
runtime is checked against the eager logits on the timed batch before it is timed.

    python benchmarks/dynabert_cost.py                          # B=32, n=128, both parts
    python benchmarks/dynabert_cost.py --part inference --repeats 20 --batches 1,32
    python benchmarks/dynabert_cost.py --part training --repeats 10 --seq 64 --threads 2
    python benchmarks/dynabert_cost.py --part inference --runtimes eager,torchscript,onnxruntime

With --repeats 2 both parts together took 3 min 50 s on a 2-core machine busy with other jobs;
--part splits the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import statistics
import tempfile
import time
import warnings

import torch
from transformers import AutoModelForSequenceClassification, logging

from lmcompress.models.dynabert import (
    DEPTHS,
    WIDTHS,
    encoder_flops,
    extract_subnetwork,
    param_count,
    set_subnet,
    subnet_shape,
)
from lmcompress.models.hub import resolve_model_path
from lmcompress.utils.latency import call_time, paired_medians

GRID = list(itertools.product(WIDTHS, DEPTHS))  # (1.0, 1.0) first: the baseline


def load_minilm() -> torch.nn.Module:
    logging.set_verbosity_error()  # the fresh classifier's "newly initialized" notice
    path = resolve_model_path("embedded:minilm-l6")
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)


def batch(size: int, seq: int, vocab: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seq)
    lengths = torch.randint(seq // 3, seq + 1, (size,), generator=g)
    lengths[0] = seq
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    ids = torch.randint(1000, vocab, (size, seq), generator=g) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": torch.randint(0, 2, (size,), generator=g)}


def train_step(model, optim, data, width: float, depth: float) -> float:
    start = time.perf_counter()
    set_subnet(model, width, depth)
    model(**data).loss.backward()
    optim.step()
    optim.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def training(model, data, repeats: int) -> None:
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for width, depth in GRID:  # warm-up (allocator, first-call overheads)
        train_step(model, optim, data, width, depth)
    times = {wd: [] for wd in GRID}
    for _ in range(repeats):
        for wd in GRID:
            times[wd].append(train_step(model, optim, data, *wd))
    medians, ratios = paired_medians(times, (1.0, 1.0))
    print("| width | depth | heads | FFN | layers | s/step | step / full |")
    print("|---|---|---|---|---|---|---|")
    for wd in GRID:
        heads, ffn, kept = subnet_shape(model.config, *wd)
        print(f"| {wd[0]} | {wd[1]} | {heads} | {ffn} | {len(kept)} | {medians[wd]:.3f} | "
              f"{ratios[wd]:.3f} |", flush=True)
    set_subnet(model, 1.0, 1.0)


def torchscript(model, data):
    """A frozen TorchScript trace of ``model`` on ``data`` (shapes as traced)."""
    args = (data["input_ids"], data["attention_mask"], data["token_type_ids"])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # HF's shape checks: constants for this trace
        traced = torch.jit.trace(model, args, strict=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
    return lambda: frozen(*args)


def onnxruntime(model, data):
    """An ONNX Runtime session on ``model`` exported with the TorchScript exporter.

    The session holds the model in memory, so the exported file is deleted at once.
    """
    import onnxruntime as ort

    names = ["input_ids", "attention_mask", "token_type_ids"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory(prefix="dynabert_onnx_") as folder, \
            warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        path = os.path.join(folder, "model.onnx")
        torch.onnx.export(model, tuple(data[k] for k in names), path, input_names=names,
                          output_names=["logits"], dynamo=False,
                          dynamic_axes={k: {0: "batch", 1: "length"} for k in names})
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {k: data[k].numpy() for k in names}
    return lambda: torch.from_numpy(session.run(None, feeds)[0])


def runner(runtime: str, model, data):
    """``() -> logits`` of ``model`` on ``data`` in ``runtime``, checked against eager."""
    if runtime == "eager":
        def run():
            return model(**data)[0]
    elif runtime == "torchscript":
        run = torchscript(model, data)
    else:
        run = onnxruntime(model, data)
    with torch.no_grad():
        ref, out = model(**data)[0], run()
        out = out[0] if isinstance(out, tuple) else out
    if not torch.allclose(out, ref, atol=1e-4, rtol=0):
        raise RuntimeError(f"{runtime}: logits differ from eager by {(out - ref).abs().max():.2e}")
    return run


def inference(model, seq: int, batch_sizes: list[int], repeats: int, runtimes: list[str]) -> None:
    """All runtimes' calls interleaved, so the speed-ups across runtimes are paired too."""
    exported = {wd: extract_subnetwork(model, *wd).eval() for wd in GRID}
    for small in exported.values():
        small.config.return_dict = False  # tuples, for the trace and the exporter
    full_flops = encoder_flops(model.config, 1.0, 1.0, seq)
    for size in batch_sizes:
        data = batch(size, seq, model.config.vocab_size)
        data.pop("labels")
        runs = {(rt, wd): runner(rt, small, data)
                for rt in runtimes for wd, small in exported.items()}
        for run in runs.values():  # warm-up
            call_time(run)
            call_time(run)
        times = {key: [] for key in runs}
        for _ in range(repeats):
            for key, run in runs.items():
                times[key].append(call_time(run))
        fastest = min(runtimes, key=lambda rt: statistics.median(times[(rt, (1.0, 1.0))]))
        for rt in runtimes:
            base = times[(rt, (1.0, 1.0))]
            print(f"\n{rt}, batch {size} x {seq} (fastest full model: {fastest}, "
                  f"{statistics.median(times[(fastest, (1.0, 1.0))]) * 1e3:.1f} ms)\n")
            print("| width | depth | params (M) | FLOP ratio | ms | speed-up | "
                  "speed-up / FLOP ratio | against the fastest full model |")
            print("|---|---|---|---|---|---|---|---|")
            for wd in GRID:
                flop_ratio = full_flops / encoder_flops(model.config, *wd, seq)
                mine = times[(rt, wd)]
                speedup = statistics.median(f / t for f, t in zip(base, mine, strict=True))
                best = statistics.median(f / t for f, t in zip(
                    times[(fastest, (1.0, 1.0))], mine, strict=True))
                print(f"| {wd[0]} | {wd[1]} | {param_count(model, *wd) / 1e6:.1f} | "
                      f"{flop_ratio:.2f}x | {statistics.median(mine) * 1e3:.1f} | "
                      f"{speedup:.2f}x | {speedup / flop_ratio:.2f} | "
                      f"{best / flop_ratio:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=["both", "training", "inference"], default="both")
    p.add_argument("--batch", type=int, default=32, help="training batch size")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batches", default="1,32", help="inference batch sizes")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--runtimes", default="eager",
                   help="comma-separated: eager, torchscript, onnxruntime (inference part)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_minilm()
    print(f"MiniLM-L6 (6 x 384, 12 heads, FFN 1536), 2 labels, fp32, {torch.get_num_threads()} "
          f"threads, sequence length {args.seq}, median of {args.repeats} interleaved repeats\n")
    if args.part in ("both", "training"):
        print(f"(a) supernet training step, batch {args.batch}\n")
        training(model, batch(args.batch, args.seq, model.config.vocab_size), args.repeats)
    if args.part in ("both", "inference"):
        print("\n(b) exported sub-networks, inference")
        runtimes = args.runtimes.split(",")
        unknown = set(runtimes) - {"eager", "torchscript", "onnxruntime"}
        if unknown:
            p.error(f"--runtimes: unknown {sorted(unknown)}; "
                    "choose eager, torchscript, onnxruntime")
        if "onnxruntime" in runtimes and not all(map(importlib.util.find_spec,
                                                     ("onnx", "onnxruntime"))):
            p.error('--runtimes onnxruntime needs onnx and onnxruntime: pip install -e ".[onnx]"')
        inference(model, args.seq, [int(b) for b in args.batches.split(",")], args.repeats,
                  runtimes)


if __name__ == "__main__":
    main()
