"""Gradient norm of each weighted loss term at the start of distillation (one batch).

Explains how the loss weights share out the update: with gradient clipping at 1.0 (conf/base.yaml)
a term whose gradient dominates the total norm also sets the direction. Uses the ckd_sst2_cpu
preset: the published SST-2 teacher and 32 SST-2 training sentences from ../shared/data.

    python benchmarks/ckd_grad_norms.py                          # both students, loss=kd_ckd
    python benchmarks/ckd_grad_norms.py --loss kd_ckd loss.weights.ltr_triple=1
"""

from __future__ import annotations

import argparse

import torch
from hydra import compose, initialize_config_dir

from lmcompress.data.glue import GlueSource
from lmcompress.data.paths import shared_data_dir
from lmcompress.models.hub import load_tokenizer
from lmcompress.utils.instantiate import instantiate_plain
from lmcompress.utils.paths import conf_dir, register_resolvers

STUDENTS = {
    "3L/384 from teacher layers": [],
    "3L/192 random init": ["student=config", "student.config.num_hidden_layers=3",
                           "student.config.hidden_size=192", "student.config.num_attention_heads=3",
                           "student.config.intermediate_size=768"],
}


def grad_norms(overrides: list[str], seed: int, batch_size: int) -> dict[str, float]:
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("distill", overrides=["experiment=ckd_sst2_cpu", *overrides])
    torch.manual_seed(seed)
    module = instantiate_plain(cfg.module)
    data = shared_data_dir()
    if data is None:
        raise SystemExit("needs ../shared/data (SST-2) and the published SST-2 teacher")
    examples = GlueSource("sst2", str(data / "glue"), variant="sentence_level").load("train")
    examples = examples[:batch_size]
    tok = load_tokenizer(cfg.teacher.tokenizer)
    enc = tok([e.text for e in examples], padding=True, truncation=True,
              max_length=cfg.data.max_length, return_tensors="pt")
    batch = {**enc, "labels": torch.tensor([e.label for e in examples])}
    _, terms = module.objective(module.term_inputs(batch))
    params = [p for p in module.model.parameters() if p.requires_grad]
    out = {}
    for name, value in terms.items():
        grads = torch.autograd.grad(module.objective.weights[name] * value, params,
                                    retain_graph=True, allow_unused=True)
        out[name] = torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)).item()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loss", default="kd_ckd")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = p.parse_args()
    register_resolvers()
    rows = {name: grad_norms([f"loss={args.loss}", *extra, *args.overrides], args.seed,
                             args.batch_size) for name, extra in STUDENTS.items()}
    terms = list(next(iter(rows.values())))
    print(f"loss={args.loss} {' '.join(args.overrides)}: ‖∇ weight·term‖ at step 0, "
          f"batch {args.batch_size}, seed {args.seed}\n")
    print("| student | " + " | ".join(terms) + " |")
    print("|---" * (len(terms) + 1) + "|")
    for name, norms in rows.items():
        print(f"| {name} | " + " | ".join(f"{norms[t]:.3g}" for t in terms) + " |")


if __name__ == "__main__":
    main()
