"""Settings that depend on the device a run trains on (docs/launch.md, "On GPUs")."""

from __future__ import annotations

from typing import Any

import torch


def set_matmul_precision(trainer: Any, precision: str = "high") -> bool:
    """On a CUDA device, let float32 matmuls use TF32 tensor cores (``high``); else nothing.

    ``+matmul_precision=highest`` keeps full float32 matmuls. Returns whether it was set.
    """
    if getattr(trainer.strategy.root_device, "type", "cpu") != "cuda":
        return False
    torch.set_float32_matmul_precision(precision)
    return True
