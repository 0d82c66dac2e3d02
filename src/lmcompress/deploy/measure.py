"""Latency, parity and size of an export's runtime variants, all timed interleaved.

Timing uses :mod:`lmcompress.utils.latency` (the same interleaved, paired measuring as
``benchmarks/dynabert_cost.py``): within each repeat every variant of every model is called once
on the same seeded batch, so other jobs on a shared CPU slow them alike, and speed-ups are medians
over repeats of the paired ratio (docs/deploy.md).
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from lmcompress.deploy.variants import ONNX_VARIANTS, Variant, input_names, ort_runner
from lmcompress.utils.latency import interleaved_times, speedups, spread, timing_batch


def parity(variant: Variant, reference: torch.Tensor, inputs: dict[str, torch.Tensor]) -> float:
    """Max |logits(variant) - logits(fp32 eager)| on ``inputs``."""
    with torch.no_grad():
        return float((variant.run(inputs) - reference).abs().max())


def rebind(model: torch.nn.Module, variants: dict[str, Variant], threads: int) -> None:
    """ONNX Runtime sessions fix their thread count at creation: recreate them for ``threads``."""
    for name, v in variants.items():
        if name in ONNX_VARIANTS:
            v.run = ort_runner(v.path, input_names(model), threads)


def timings(models: dict[str, tuple[torch.nn.Module, dict[str, Variant]]], batch: int, seq: int,
            repeats: int, threads: int) -> dict[tuple[str, str], list[float]]:
    """Seconds per call of every (model, variant), interleaved, at ``threads`` threads."""
    torch.set_num_threads(threads)
    runs = {}
    for label, (model, variants) in models.items():
        rebind(model, variants, threads)
        data = timing_batch(batch, seq, model.config.vocab_size)
        for name, v in variants.items():
            runs[(label, name)] = (lambda v=v, data=data: v.run(data))
    return interleaved_times(runs, repeats)


def summarize(times: dict[tuple[str, str], list[float]], base: tuple[str, str]
              ) -> dict[tuple[str, str], dict[str, Any]]:
    """Median ms, its interquartile spread, speed-up over ``base`` and over the model's fp32."""
    over_base = speedups(times, base)
    out = {}
    for key, values in times.items():
        same = (key[0], "fp32_eager")
        lo, hi = spread(values)
        out[key] = {
            "ms": 1e3 * statistics.median(values), "ms_q25": 1e3 * lo, "ms_q75": 1e3 * hi,
            "speedup_vs_baseline": over_base[key],
            "speedup_vs_fp32_eager": speedups({key: values, same: times[same]}, same)[key]
            if same in times else None,
        }
    return out
