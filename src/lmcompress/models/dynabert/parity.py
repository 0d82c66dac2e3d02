"""The parity record of an exported sub-network (docs/dynabert.md §7): ``parity.json``.

The export folder is reloaded the way a user loads it (the Auto API) and run next to the
training-time dynamic model at the same (width, depth) on a fixed batch: max |Δ logits|.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from lmcompress.models.dynabert.dynamic import subnet
from lmcompress.models.dynabert.importance import _eval_mode

BATCH, LENGTH, SEED = 4, 16, 0


def parity_batch(config: Any) -> dict[str, torch.Tensor]:
    """A fixed batch (seed 0, 4 x 16, right padding of different lengths) for ``config``."""
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, config.vocab_size, (BATCH, LENGTH), generator=gen)
    lengths = torch.tensor([LENGTH - 4 * i for i in range(BATCH)])
    mask = (torch.arange(LENGTH)[None] < lengths[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask}


def parity_record(dynamic: torch.nn.Module, folder: Path, width: float, depth: float
                  ) -> dict[str, Any]:
    """Max |Δ logits| between ``folder`` reloaded and ``dynamic`` at (width, depth), eval mode."""
    token = type(dynamic).__name__.endswith("ForTokenClassification")
    auto = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
    reloaded = auto.from_pretrained(folder).eval()
    device = next(dynamic.parameters()).device
    batch = parity_batch(dynamic.config)
    with torch.no_grad(), _eval_mode(dynamic), subnet(dynamic, width, depth):
        reference = dynamic(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
    with torch.no_grad():
        logits = reloaded(**batch).logits.float()
    return {"width": width, "depth": depth, "reference": "training-time dynamic model",
            "class": type(reloaded).__name__, "batch": f"{BATCH}x{LENGTH}, seed {SEED}",
            "max_abs_diff_logits": float((logits - reference).abs().max())}
