"""Random-number-generator states saved in checkpoints, for an exact resume.

A resumed run then draws what the uninterrupted run would have drawn (dropout masks, the next
epoch's shuffle).

The states are restored right before the first resumed training batch, after Lightning has
rebuilt the data iterator (which may draw from the global generator itself). Under DDP the
checkpoint holds every rank's states (``callbacks.exact_resume``).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture() -> dict[str, Any]:
    """The python, numpy and torch (CPU and CUDA) generator states."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    # numpy's key array as a tensor: checkpoints stay loadable with weights_only=True
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict[str, Any]) -> None:
    """Set the generators to ``state`` (as returned by :func:`capture`)."""
    random.setstate(_tuples(state["python"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """Checkpoints turn tuples into lists; the setters want tuples back."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value
