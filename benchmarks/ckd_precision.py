"""float32 error of ``ckd_terms`` (what training calls) against float64, on realistic states.

Three kinds of states: i.i.d. normal; BERT-like synthetic (a large shared offset and a few
outlier dimensions, as BERT's hidden states have); and real MiniLM-L6 hidden states (teacher:
the 6-layer model, student: its layers 1, 3, 5) on 16 generated sentences with dynamic padding.
The reference is the same function in float64. Relative error of each term's value and of the
gradient with respect to the student states. Runs on whatever ``lmcompress`` is importable, so
the same script measures an older checkout (``PYTHONPATH=<old>/src``).

    python benchmarks/ckd_precision.py
"""

from __future__ import annotations

import argparse

import torch

from lmcompress.losses.ckd import ckd_terms

TERMS = ["wr_pair", "wr_triple", "ltr_pair", "ltr_triple"]


def synthetic(offset: float, b: int = 8, k: int = 4, n: int = 48, d_s: int = 192,
              d_t: int = 384):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(b, k, n, d_s, generator=g, dtype=torch.float64)
    t = torch.randn(b, k, n, d_t, generator=g, dtype=torch.float64)
    if offset:
        for x, d in ((s, d_s), (t, d_t)):
            x += offset  # shared offset
            x[..., torch.randperm(d, generator=g)[:3]] *= 60.0  # outlier dimensions
    lengths = torch.randint(n // 3, n + 1, (b,), generator=g)
    lengths[0] = n
    return s, t, (torch.arange(n)[None] < lengths[:, None]).long()


def minilm_states():
    from transformers import AutoModel

    from lmcompress.data.synthetic import SyntheticSource

    try:
        from lmcompress.models.hub import load_tokenizer, resolve_model_path
    except ImportError:  # checkouts before the models/hub.py rename
        from lmcompress.models.hf import load_tokenizer, resolve_model_path

    path = resolve_model_path("embedded:minilm-l6")
    model = AutoModel.from_pretrained(path).eval()
    texts = [e.text for e in SyntheticSource(seed=3, n_train=16).load("train")]
    enc = load_tokenizer("embedded:minilm-l6")(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states  # 7 states
    teacher = torch.stack([hidden[i] for i in (0, 2, 4, 6)], 1).double()
    student_layers = torch.nn.ModuleList([model.encoder.layer[i] for i in (1, 3, 5)])
    model.encoder.layer = student_layers
    model.config.num_hidden_layers = 3
    with torch.no_grad():
        s_hidden = model(**enc, output_hidden_states=True).hidden_states
    return torch.stack(list(s_hidden), 1).double(), teacher, enc["attention_mask"]


def errors(s, t, mask, **opts) -> dict[str, tuple[float, float]]:
    out = {}
    for name in TERMS:
        values, grads = [], []
        for dtype in (torch.float64, torch.float32):
            x = s.to(dtype).clone().requires_grad_()
            value = ckd_terms(x, t.to(dtype), mask, [name], **opts)[name]
            value.backward()
            values.append(value.double())
            grads.append(x.grad.double())
        out[name] = (((values[1] - values[0]).abs() / values[0].abs()).item(),
                     ((grads[1] - grads[0]).norm() / grads[0].norm()).item())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mask-window", choices=["false", "true", "default"], default="false")
    args = p.parse_args()
    opts = {} if args.mask_window == "default" else {"mask_window": args.mask_window == "true"}
    cases = {"iid normal": synthetic(0.0),
             "BERT-like (offset 8, 3 outlier dims x60)": synthetic(8.0),
             "BERT-like (offset 64, 3 outlier dims x60)": synthetic(64.0),
             "MiniLM-L6 hidden states": minilm_states()}
    print(f"ckd_terms float32 vs float64, window 21, options {opts or 'defaults'}: relative "
          "error of the value / of the student gradient\n")
    print("| states | " + " | ".join(TERMS) + " |")
    print("|---" * (len(TERMS) + 1) + "|")
    for label, (s, t, mask) in cases.items():
        errs = errors(s, t, mask, **opts)
        print(f"| {label} | " + " | ".join(f"{v:.1e} / {g:.1e}" for v, g in errs.values())
              + " |", flush=True)


if __name__ == "__main__":
    main()
