"""CKD losses: our Gram-matrix implementation vs a straightforward one of the official formulation.

The reference below materialises the difference vectors exactly as the official code does
(gathered window neighbours [B, K, n, W, d], token-pair differences [B, K, n, n, d] for all
triples, layer-pair differences [B, n, K, K, d]). Each (term, implementation) runs forward +
backward (w.r.t. the student states) in a fresh subprocess, so peak RSS (ru_maxrss) is its own.

    python benchmarks/ckd_losses.py                      # B=32 n=128 K=7 d_s=384 d_t=768, fp32
    python benchmarks/ckd_losses.py --batch 4 --repeats 2
    python benchmarks/ckd_losses.py --terms wr_triple_all --impls ours   # ours only at B=32
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lmcompress.losses import ckd

# --- reference: the official formulation, materialised -----------------------------------------


def ref_wr_pair(s, t, mask):
    m = mask.bool()[:, None, :]
    n = m.shape[-1]
    valid = m.unsqueeze(-1) & m.unsqueeze(-2) & ~torch.eye(n, dtype=torch.bool)
    with torch.no_grad():
        tn = F.normalize(t, dim=-1)
        p = (tn @ tn.transpose(-1, -2)).masked_fill(~valid, float("-inf")).softmax(-1)
    sn = F.normalize(s, dim=-1)
    logq = (sn @ sn.transpose(-1, -2)).masked_fill(~valid, float("-inf")).log_softmax(-1)
    kl = torch.where(valid & (p > 0), p * (p.log() - logq), 0.0)  # masked: no 0·(-inf) NaN
    return kl.sum() / (s.shape[1] * (mask.sum(1).float() ** 2).sum())


def _window_angles(h, idx):
    nb = h[:, :, idx]  # [B, K, n, W, d]: gathered neighbours
    u = F.normalize(h.unsqueeze(-2) - nb, p=2, dim=-1)  # difference vectors
    return u @ u.transpose(-1, -2)  # [B, K, n, W, W]


def ref_wr_triple(s, t, mask, window=21):
    n = s.shape[2]
    half = window // 2
    idx = (torch.arange(n)[:, None] + torch.arange(-half, half + 1)).clamp(0, n - 1)
    with torch.no_grad():
        a_t = _window_angles(t, idx)
    a_s = _window_angles(s, idx)
    keep = mask.bool()[:, None, :, None, None]
    return ((a_s - a_t) ** 2 * keep).sum() / (s.shape[1] * mask.sum() * window**2)


def ref_wr_triple_all(s, t, mask):
    def angles(h):
        u = F.normalize(h.unsqueeze(-2) - h.unsqueeze(-3), p=2, dim=-1)  # [B, K, n, n, d]
        return u @ u.transpose(-1, -2)  # [B, K, n, n, n]
    with torch.no_grad():
        a_t = angles(t)
    a_s = angles(s)
    m = mask.bool()[:, None]
    keep = m[..., :, None, None] & m[..., None, :, None] & m[..., None, None, :]
    return ((a_s - a_t) ** 2 * keep).sum() / (s.shape[1] * (mask.sum(1).float() ** 3).sum())


def ref_ltr_pair(s, t, mask):
    k = s.shape[1]
    eye = torch.eye(k, dtype=torch.bool)
    with torch.no_grad():
        tn = F.normalize(t.transpose(1, 2), dim=-1)
        p = (tn @ tn.transpose(-1, -2)).masked_fill(eye, float("-inf")).softmax(-1)
    sn = F.normalize(s.transpose(1, 2), dim=-1)
    logq = (sn @ sn.transpose(-1, -2)).masked_fill(eye, float("-inf")).log_softmax(-1)
    kl = torch.where(~eye & (p > 0), p * (p.log() - logq), 0.0) * mask[:, :, None, None]
    return kl.sum() / (k * k * mask.sum())


def ref_ltr_triple(s, t, mask):
    def angles(h):
        v = h.transpose(1, 2)  # [B, n, K, d]
        u = F.normalize(v.unsqueeze(-2) - v.unsqueeze(-3), p=2, dim=-1)  # [B, n, K, K, d]
        return u @ u.transpose(-1, -2)
    with torch.no_grad():
        a_t = angles(t)
    a_s = angles(s)
    return ((a_s - a_t) ** 2 * mask[:, :, None, None, None]).sum() / (s.shape[1] ** 3 * mask.sum())


def ours(name: str, **opts):
    """One term through ``ckd_terms`` (the only implementation), as training calls it."""
    return lambda s, t, m: ckd.ckd_terms(s, t, m, [name], **opts)[name]


TERMS = {
    "wr_pair": (ref_wr_pair, ours("wr_pair")),
    "wr_triple_w21": (ref_wr_triple, ours("wr_triple", window=21)),
    "wr_triple_all": (ref_wr_triple_all, ours("wr_triple", window=None)),
    "ltr_pair": (ref_ltr_pair, ours("ltr_pair")),
    "ltr_triple": (ref_ltr_triple, ours("ltr_triple")),
}
TERMS["all_four_w21"] = (
    lambda s, t, m: sum(TERMS[k][0](s, t, m) for k in
                        ("wr_pair", "wr_triple_w21", "ltr_pair", "ltr_triple")),
    lambda s, t, m: sum(TERMS[k][1](s, t, m) for k in
                        ("wr_pair", "wr_triple_w21", "ltr_pair", "ltr_triple")),
)

# the same four terms in one ckd_terms call: one token Gram and one layer Gram per model, shared
TERMS["all_four_w21_shared"] = (
    TERMS["all_four_w21"][0],
    lambda s, t, m: sum(ckd.ckd_terms(s, t, m, ["wr_pair", "wr_triple", "ltr_pair",
                                                "ltr_triple"], window=21).values()),
)


def inputs(args):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(args.batch, args.layers, args.seq, args.d_student, generator=g)
    t = torch.randn(args.batch, args.layers, args.seq, args.d_teacher, generator=g)
    lengths = torch.randint(args.seq // 4, args.seq + 1, (args.batch,), generator=g)
    lengths[0] = args.seq
    mask = (torch.arange(args.seq)[None] < lengths[:, None]).long()
    return s, t, mask


def child(args) -> None:
    """Time forward+backward of one implementation; write loss, grad and stats to args.out."""
    s, t, mask = inputs(args)
    fn = TERMS[args.term][0 if args.impl == "reference" else 1]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    x = loss = None
    for _ in range(args.repeats):
        x = loss = None  # release the previous repeat's states and gradient before measuring
        x = s.clone().requires_grad_()
        start = time.perf_counter()
        loss = fn(x, t, mask)
        loss.backward()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.save({"loss": loss.detach(), "grad": x.grad}, args.out)
    print(json.dumps({"time_s": statistics.median(times), "peak_mb": (peak - base) / 1024}))


def run(args, term: str, impl: str, out: Path) -> dict | None:
    cmd = [sys.executable, __file__, "--child", "--term", term, "--impl", impl, "--out", str(out)]
    for key in ("batch", "seq", "layers", "d_student", "d_teacher", "repeats"):
        cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1][:80]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, default in (("batch", 32), ("seq", 128), ("layers", 7), ("d-student", 384),
                         ("d-teacher", 768), ("repeats", 3)):
        p.add_argument(f"--{key}", type=int, default=default)
    # all triples are not in the default list: the reference needs ~33 GB at B=32 (see --impls)
    p.add_argument("--terms", default=",".join(t for t in TERMS if t != "wr_triple_all"))
    p.add_argument("--impls", default="reference,ours",
                   help="'ours' alone: time our implementation only (e.g. all triples at B=32, "
                        "where the reference needs more memory than the machine has)")
    p.add_argument("--child", action="store_true")
    p.add_argument("--term")
    p.add_argument("--impl")
    p.add_argument("--out")
    args = p.parse_args()
    if args.child:
        return child(args)
    torch.set_num_threads(torch.get_num_threads())
    print(f"B={args.batch} n={args.seq} K={args.layers} d_s={args.d_student} "
          f"d_t={args.d_teacher} fp32, forward+backward, median of {args.repeats}, "
          f"{torch.get_num_threads()} threads\n")
    print("| term | reference s | ours s | speed-up | reference peak MB | ours peak MB | "
          "memory ratio | rel. diff loss | rel. diff grad |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for term in args.terms.split(","):
            res = {impl: run(args, term, impl, Path(tmp) / f"{impl}.pt")
                   for impl in args.impls.split(",")}
            ref, ours = res.get("reference", {"error": "not run"}), res["ours"]
            if "error" in ref or "error" in ours:
                print(f"| {term} | {ref.get('error', ref.get('time_s'))} | "
                      f"{ours.get('error', round(ours.get('time_s', 0), 3))} | | | "
                      f"{ours.get('peak_mb', '')} | | | |")
                continue
            a, b = torch.load(Path(tmp) / "reference.pt"), torch.load(Path(tmp) / "ours.pt")
            dl = ((a["loss"] - b["loss"]).abs() / a["loss"].abs()).item()
            dg = ((a["grad"] - b["grad"]).norm() / a["grad"].norm()).item()
            print(f"| {term} | {ref['time_s']:.3f} | {ours['time_s']:.3f} | "
                  f"{ref['time_s'] / ours['time_s']:.1f}× | {ref['peak_mb']:.0f} | "
                  f"{ours['peak_mb']:.0f} | {ref['peak_mb'] / max(ours['peak_mb'], 1):.1f}× | "
                  f"{dl:.1e} | {dg:.1e} |", flush=True)


if __name__ == "__main__":
    main()
