"""The one AdamW weight-decay rule, for every stage and AMoC's candidate fine-tune (docs/optim.md).

No decay on any parameter with fewer than two dimensions (biases, LayerNorm weights and biases,
scalar-mix weights); decay on every matrix, embedding table and convolution kernel. The rule asks
the tensor, not its name, so it holds for every model family whatever its norm layers are called.
Pure torch: ``modules/`` and ``amoc/`` both import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def decays(param: torch.Tensor) -> bool:
    """Whether AdamW's decoupled weight decay applies to ``param``: matrices and up only."""
    return param.ndim >= 2


def adamw_groups(params: Iterable[torch.nn.Parameter], weight_decay: float
                 ) -> list[dict[str, Any]]:
    """Two AdamW groups of the trainable ``params``: decayed (``weight_decay``) and not (0)."""
    decay, plain = [], []
    for param in params:
        if param.requires_grad:
            (decay if decays(param) else plain).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]
