"""Training throughput (examples/s) and peak device memory per stage, BERT-base-sized by default.

Random-weight models (no download): ``teacher`` = a fine-tuning step of the L-layer model;
``distill`` = the frozen teacher's forward (no_grad, eval) + a student of L/2 layers (its
teacher's width) trained with KD; ``amoc`` = inference of the model without its top layer (the
search's forward passes). Each stage: ``--warmup`` steps, then ``--steps`` timed ones.
``--precision bf16|fp16|fp32`` autocast (fp16 with a GradScaler); ``--checkpointing`` switches
activation checkpointing on for the trained model. Peak memory is
``torch.cuda.max_memory_allocated`` on CUDA and the process's peak RSS on a CPU.

    python benchmarks/gpu_throughput.py --batch 32 --length 128 --precision bf16        # a GPU
    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 python benchmarks/gpu_throughput.py --device cpu \
        --layers 2 --hidden 128 --batch 4 --length 32 --steps 2 --warmup 1 --precision bf16
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from lmcompress.models.hub import build_model
from lmcompress.models.memory import set_checkpointing
from lmcompress.specs import ModelSpec, TaskSpec

TASK = TaskSpec(name="bench", kind="classification", num_labels=2, metrics=["accuracy"],
                main_metric="accuracy")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def model(layers: int, hidden: int, device: str) -> torch.nn.Module:
    """A random BERT of the given depth and width (heads of 64 dimensions)."""
    config = {"model_type": "bert", "vocab_size": 30522, "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": max(hidden // 64, 1),
              "intermediate_size": 4 * hidden, "max_position_embeddings": 512}
    return build_model(ModelSpec(pretrained=False, config=config), TASK).to(device)


def peak_mib(device: str) -> float:
    """Peak device memory (CUDA) or peak process RSS (CPU), MiB."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stage(stage: str, opts: argparse.Namespace) -> dict:
    """Time ``opts.steps`` steps of one stage after ``opts.warmup``."""
    device, dtype = opts.device, DTYPES[opts.precision]
    torch.manual_seed(0)
    ids = torch.randint(1000, 30000, (opts.batch, opts.length), device=device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    labels = torch.randint(0, 2, (opts.batch,), device=device)
    teacher = model(opts.layers, opts.hidden, device)
    trained = None
    if stage == "teacher":
        trained = set_checkpointing(teacher.train(), opts.checkpointing, "model")
    elif stage == "distill":
        teacher.eval().requires_grad_(False)
        trained = set_checkpointing(model(max(opts.layers // 2, 1), opts.hidden, device).train(),
                                    opts.checkpointing, "student")
    else:
        teacher.bert.encoder.layer = teacher.bert.encoder.layer[:-1]
        teacher.eval()
    optimizer = torch.optim.AdamW(trained.parameters(), lr=1e-5) if trained else None
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=opts.precision == "fp16")

    def step() -> None:
        with torch.autocast(device.split(":")[0], dtype=dtype or torch.float32,
                            enabled=dtype is not None):
            if stage == "amoc":
                with torch.no_grad():
                    teacher(**batch)
                return
            if stage == "distill":
                with torch.no_grad():
                    target = teacher(**batch).logits.float().softmax(-1)
                logits = trained(**batch).logits.float()
                loss = -(target * logits.log_softmax(-1)).sum(-1).mean()
            else:
                loss = trained(**batch, labels=labels).loss
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(opts.warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    for _ in range(opts.steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - tic
    return {"stage": stage, "examples_per_s": opts.steps * opts.batch / seconds,
            "peak_mib": peak_mib(device)}


def main() -> None:
    """Every requested stage, one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--stages", default="teacher,distill,amoc")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--checkpointing", action="store_true")
    opts = parser.parse_args()
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch.cuda.is_available() is False; use --device cpu")
    for stage in opts.stages.split(","):
        print(json.dumps({**run_stage(stage, opts), "device": opts.device,
                          "precision": opts.precision, "batch": opts.batch,
                          "length": opts.length, "layers": opts.layers,
                          "hidden": opts.hidden, "checkpointing": opts.checkpointing}),
              flush=True)


if __name__ == "__main__":
    main()
