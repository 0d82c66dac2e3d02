"""CPU (or current-device) inference latency of a model: what a report plots against accuracy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable
from typing import Any

import torch


def measure_latency(model: torch.nn.Module, length: int = 128,
                    batch_sizes: tuple[int, ...] | list[int] = (1, 32), repeats: int = 5
                    ) -> dict[str, float]:
    """``{"latency_ms_b<B>": median ms}`` of a no-grad eval forward on ``[B, length]`` inputs.

    Inputs are random token ids with a full attention mask; one warm-up call per batch size.
    The threads are whatever torch is set to (``torch.get_num_threads()``).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    vocab = getattr(getattr(model, "config", None), "vocab_size", 1000)
    out: dict[str, float] = {}
    generator = torch.Generator().manual_seed(0)
    try:
        for batch in batch_sizes:
            ids = torch.randint(1000 if vocab > 2000 else 0, vocab, (batch, length),
                                generator=generator).to(device)
            inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            times = []
            with torch.no_grad():
                for i in range(repeats + 1):
                    start = time.perf_counter()
                    model(**inputs)
                    if i:  # the first call warms up
                        times.append(time.perf_counter() - start)
            out[f"latency_ms_b{batch}"] = 1000 * statistics.median(times)
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def call_time(run: Callable[[], Any]) -> float:
    """Seconds one call of ``run()`` takes (no grad)."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved_times(runs: dict[Hashable, Callable[[], Any]], repeats: int, warmup: int = 2
                      ) -> dict[Hashable, list[float]]:
    """Seconds per call of each runner, the runners interleaved within every repeat.

    Interleaving makes machine noise (other jobs on a shared CPU) hit all runners alike, so
    ratios taken repeat by repeat (:func:`paired_medians`) are what to compare.
    """
    for run in runs.values():
        for _ in range(warmup):
            call_time(run)
    times: dict[Hashable, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            times[key].append(call_time(run))
    return times


def paired_medians(times: dict, base: Hashable) -> tuple[dict, dict]:
    """Median time of each key, and median over repeats of (time / base time) per key."""
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: statistics.median(a / b for a, b in zip(v, times[base], strict=True))
              for k, v in times.items()}
    return medians, ratios


def speedups(times: dict, base: Hashable) -> dict:
    """Median over repeats of (base time / time) per key: the paired speed-up over ``base``."""
    return {k: statistics.median(b / a for a, b in zip(v, times[base], strict=True))
            for k, v in times.items()}


def spread(values: list[float]) -> tuple[float, float]:
    """The (25th, 75th) percentile of ``values`` (the interquartile range's ends)."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def timing_batch(size: int, seq: int, vocab: int) -> dict[str, torch.Tensor]:
    """A seeded ``[size, seq]`` batch with varied lengths (the first row full), no labels."""
    g = torch.Generator().manual_seed(seq)
    lengths = torch.randint(seq // 3, seq + 1, (size,), generator=g)
    lengths[0] = seq
    mask = (torch.arange(seq)[None] < lengths[:, None]).long()
    ids = torch.randint(min(1000, vocab - 1), vocab, (size, seq), generator=g) * mask
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
