"""CPU (or current-device) inference latency of a model: what a report plots against accuracy."""

from __future__ import annotations

import statistics
import time
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
