"""CKD across tokenizers, end to end on the generated task (docs/ckd.md §12).

``python benchmarks/ckd_across_tokenizers.py <scratch folder> [--epochs 3] [--seed 1]`` runs,
through the CLI with ``LMCOMPRESS_OUTPUT_DIR=<scratch>/outputs``:

1. ``python -m lmcompress.data.train_tokenizer``: a byte-level BPE on the task's sentences;
2. the teacher stage: a random tiny RoBERTa (2 layers, hidden 32) reading that BPE;
3. the distill stage into the tiny BERT student (2 layers, hidden 24) reading the MiniLM
   WordPiece tokenizer, once per variant: KD + CKD with mean and with first-token pooling,
   and KD alone (no relations) as the reference;
4. the same-tokenizer control: a tiny BERT teacher (2 layers, hidden 32) with the MiniLM
   tokenizer, distilled into the same student by KD + CKD and by KD alone;

then prints a Markdown table: the first and last logged training loss of every term, dev and
test accuracy, and the majority-class rates. A pipeline check at toy scale, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

VARIANTS = {"kd_ckd, mean": ["loss=kd_ckd", "loss.ckd.word_pooling=mean"],
            "kd_ckd, first": ["loss=kd_ckd", "loss.ckd.word_pooling=first"],
            "kd only": ["loss=kd"]}
TEACHER = ["model=tiny", "model.tokenizer=outputs/tokenizers/generated_bpe",
           "model.config.model_type=roberta", "model.config.vocab_size=2000",
           "module.optim.lr=1e-3", "publish_as=generated_roberta_bpe", "publish_overwrite=true"]
STUDENT = ["teacher=path", "teacher.name_or_path=${paths.artifact_dir}/teachers/"
           "generated_roberta_bpe", "student=tiny", "student.tokenizer=embedded:minilm-l6",
           "module.optim.lr=1e-3"]
SAME_TEACHER = ["model=tiny", "module.optim.lr=1e-3", "publish_as=generated_bert_tiny",
                "publish_overwrite=true"]
SAME_STUDENT = ["teacher=path", "teacher.name_or_path=${paths.artifact_dir}/teachers/"
                "generated_bert_tiny", "student=tiny", "module.optim.lr=1e-3"]


def run(args: list[str], cwd: Path) -> dict:
    """One CLI call; returns its metrics.json."""
    env = {**os.environ, "LMCOMPRESS_OUTPUT_DIR": str(cwd / "outputs"), "HF_HUB_OFFLINE": "1",
           "WANDB_MODE": "offline"}
    print("$", " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    runs = sorted((cwd / "outputs" / "runs").glob("*/*/metrics.json"), key=os.path.getmtime)
    return json.loads(runs[-1].read_text()) if args[1] == "lmcompress.run" else {}


def losses(run_dir: Path) -> dict[str, tuple[float, float]]:
    """First and last logged value of ``train/loss`` and each ``train/loss_<term>``."""
    table = pd.read_csv(run_dir / "csv" / "metrics.csv").dropna(subset=["train/loss"])
    return {c[len("train/"):]: (table[c].iloc[0], table[c].iloc[-1]) for c in table.columns
            if c.startswith("train/loss")}


def main() -> None:
    """Run the chain and print the table."""
    from lmcompress.data.synthetic import SyntheticSource

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scratch", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    a = parser.parse_args()
    a.scratch.mkdir(parents=True, exist_ok=True)
    common = [f"trainer.max_epochs={a.epochs}", "logger=csv", f"seed={a.seed}"]
    run(["-m", "lmcompress.data.train_tokenizer", "outputs/tokenizers/generated_bpe"], a.scratch)
    rows = [("teacher (RoBERTa, BPE)", run(["-m", "lmcompress.run", "-cn", "teacher", *TEACHER,
                                            *common], a.scratch))]
    for name, extra in VARIANTS.items():
        rows.append((f"student (BERT, WordPiece): {name}",
                     run(["-m", "lmcompress.run", "-cn", "distill", *STUDENT, *extra, *common],
                         a.scratch)))
    rows.append(("control teacher (BERT, WordPiece)",
                 run(["-m", "lmcompress.run", "-cn", "teacher", *SAME_TEACHER, *common],
                     a.scratch)))
    for name in ("kd_ckd, mean", "kd only"):
        rows.append((f"control student, same tokenizer: {name.split(',')[0]}",
                     run(["-m", "lmcompress.run", "-cn", "distill", *SAME_STUDENT,
                          VARIANTS[name][0], *common], a.scratch)))
    source = SyntheticSource(seed=0)
    majority = {s: max(Counter(e.label for e in source.load(s)).values()) / len(source.load(s))
                for s in ("validation", "test")}
    print(f"\nmajority class: dev {majority['validation']:.4f}, test {majority['test']:.4f}\n")
    print("| run | dev acc | test acc | steps | train loss first -> last (per term) |")
    print("|---|---|---|---|---|")
    for name, m in rows:
        terms = losses(Path(m["export_dir"]).parent)
        text = ", ".join(f"{'total' if k == 'loss' else k[5:]} {v[0]:.4g} -> {v[1]:.4g}"
                         for k, v in sorted(terms.items()))
        print(f"| {name} | {m['val']['val/accuracy']:.4f} | {m['test']['test/accuracy']:.4f} "
              f"| {m['global_step']} | {text} |")


if __name__ == "__main__":
    main()
