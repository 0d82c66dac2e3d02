"""Peak memory of one distillation step with and without activation checkpointing.

Each setting runs in a fresh process under ``/usr/bin/time -v`` (its "Maximum resident set size"
is the figure): random BERT teacher and student of the given size, the frozen teacher's forward
under no_grad (eval mode), the student's forward (train mode, dropout on), KD + hidden-state MSE,
backward, one AdamW step. The student is built with ``gradient_checkpointing`` off or on
(``models/memory.py``), all else equal.

    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 python benchmarks/checkpoint_memory.py \
        [--layers 6 --hidden 384 --batch 32 --length 128]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path


def step(opts: argparse.Namespace, checkpointing: bool) -> float:
    """One distillation step; returns its seconds."""
    import torch

    from lmcompress.losses.kd import soft_cross_entropy
    from lmcompress.models.hub import build_model
    from lmcompress.specs import ModelSpec, TaskSpec

    task = TaskSpec(name="bench", kind="classification", num_labels=2, metrics=["accuracy"],
                    main_metric="accuracy")
    config = {"model_type": "bert", "vocab_size": 30522, "hidden_size": opts.hidden,
              "num_hidden_layers": opts.layers, "num_attention_heads": opts.hidden // 64,
              "intermediate_size": 4 * opts.hidden, "max_position_embeddings": 512}
    torch.manual_seed(0)
    teacher = build_model(ModelSpec(pretrained=False, config=dict(config)), task).eval()
    student = build_model(ModelSpec(pretrained=False, config=dict(config),
                                    gradient_checkpointing=checkpointing), task).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    ids = torch.randint(1000, 30000, (opts.batch, opts.length))
    mask = torch.ones_like(ids)
    tic = time.perf_counter()
    with torch.no_grad():
        t_out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    s_out = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    loss = soft_cross_entropy(s_out.logits, t_out.logits) + sum(
        torch.nn.functional.mse_loss(s, t) for s, t in zip(s_out.hidden_states,
                                                           t_out.hidden_states, strict=True))
    loss.backward()
    optimizer.step()
    return time.perf_counter() - tic


def measure(opts: argparse.Namespace, checkpointing: bool) -> dict:
    """Run one step in a child under /usr/bin/time -v; its peak RSS (MiB) and seconds."""
    args = [sys.argv[0], "--child", "--layers", str(opts.layers), "--hidden", str(opts.hidden),
            "--batch", str(opts.batch), "--length", str(opts.length)]
    if checkpointing:
        args.append("--checkpointing")
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, *args], capture_output=True,
                          text=True, check=True)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1])
    return {"checkpointing": checkpointing, "peak_rss_mib": rss_kb / 1024,
            "step_s": float(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    """Both settings, the saving, and a JSON record under benchmarks/results/."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/checkpoint_memory.json")
    opts = parser.parse_args()
    if opts.child:
        print(step(opts, opts.checkpointing))
        return
    rows = [measure(opts, False), measure(opts, True)]
    saving = rows[0]["peak_rss_mib"] - rows[1]["peak_rss_mib"]
    result = {"sizes": {k: getattr(opts, k) for k in ("layers", "hidden", "batch", "length")},
              "rows": rows, "saving_mib": saving,
              "saving_fraction": saving / rows[0]["peak_rss_mib"]}
    print(json.dumps(result, indent=1))
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
