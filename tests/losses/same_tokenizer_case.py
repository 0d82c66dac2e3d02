"""The same-tokenizer CKD training loss on seeded float32 states, as exact hex digits.

Commit 7f91590 is the code before CKD across tokenizers existed. ``test_ckd_words.py`` runs this
file once with that commit's ``src`` (``git archive``) and once with the current one, on the same
machine, and requires the same bits: float32 kernels round differently from one CPU to another,
so bits are only comparable on one machine. ``tests/fixtures/ckd_same_tokenizer_7f91590.json``
holds :func:`summary` of 7f91590 (terms and gradient norms as floats), which any machine must
match to float32 rounding (docs/ckd.md §12). ``python same_tokenizer_case.py [--summary]``
prints either as JSON.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import torch

from lmcompress.losses import Objective, TermInputs
from lmcompress.specs import LayerMapSpec

LOSS = {"weights": {"task": 0.1, "kd": 0.9, "wr_pair": 1.0, "wr_triple": 10.0, "ltr_pair": 1.0,
                    "ltr_triple": 10.0}, "temperature": 3.0}
OPTIONS = {"masked_w21": {"window": 21, "mask_window": True},
           "official_w5": {"window": 5, "mask_window": False},
           "all_triples": {"window": None}}


def values() -> dict[str, dict[str, str]]:
    """``{case: {term or grad digest: float.hex() or sha256}}`` of seeded batches."""
    return {case: {name: (float(v).hex() if name in terms else
                          hashlib.sha256(v.numpy().tobytes()).hexdigest())
                   for name, v in {**terms, **grads}.items()}
            for case, (terms, grads) in _computed().items()}


def summary() -> dict[str, dict[str, float]]:
    """``{case: {term or grad_state<i>_norm: float}}``: comparable across machines to rounding."""
    return {case: {**{name: float(v) for name, v in terms.items()},
                   **{f"{name}_norm": float(g.norm()) for name, g in grads.items()}}
            for case, (terms, grads) in _computed().items()}


def _computed() -> dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """``{case: (terms and total, gradients of the student states)}`` of seeded batches."""
    out = {}
    for case, ckd in OPTIONS.items():
        g = torch.Generator().manual_seed(7)
        s_states = [torch.randn(3, 13, 24, generator=g) + 0.5 for _ in range(3)]
        t_states = [torch.randn(3, 13, 32, generator=g) * 2 for _ in range(5)]
        s_states = [h.requires_grad_(True) for h in s_states]
        s_logits = torch.randn(3, 2, generator=g).requires_grad_(True)
        t_logits = torch.randn(3, 2, generator=g)
        mask = (torch.arange(13)[None] < torch.tensor([13, 7, 3])[:, None]).long()
        batch = {"input_ids": torch.zeros(3, 13, dtype=torch.long), "attention_mask": mask,
                 "labels": torch.tensor([0, 1, 1])}
        inputs = TermInputs(SimpleNamespace(logits=s_logits, hidden_states=tuple(s_states)),
                            SimpleNamespace(logits=t_logits, hidden_states=tuple(t_states)),
                            batch, "classification",
                            LayerMapSpec(teacher=[0, 2, 4], student=[0, 1, 2]))
        total, parts = Objective.from_config({**LOSS, "ckd": ckd})(inputs)
        total.backward()
        terms = {name: v.detach() for name, v in parts.items()}
        terms["total"] = total.detach()
        out[case] = (terms, {f"grad_state{i}": h.grad for i, h in enumerate(s_states)})
    return out


if __name__ == "__main__":
    import json
    import sys

    json.dump(summary() if "--summary" in sys.argv else values(), sys.stdout, indent=1,
              sort_keys=True)
