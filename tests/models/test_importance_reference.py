"""Head and FFN-neuron importance against directional derivatives on a 1-layer tiny BERT.

The reference never reads a weight's gradient: each neuron's incoming row (with its bias) and
outgoing column, and each head's columns of the attention output projection, are scaled by
``1 + a`` and the score is ``|dL/da|`` at ``a = 0`` (torch.func.functional_call), summed over
batches (``clean``) or taken of the running sum (``official``); docs/dynabert.md §2.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from transformers import BertConfig, BertForSequenceClassification

from lmcompress.models.dynabert import compute_importance

HEADS, HEAD_SIZE, NEURONS = 2, 4, 6
PREFIX = "bert.encoder.layer.0."


def _model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=HEADS * HEAD_SIZE, num_hidden_layers=1,
                        num_attention_heads=HEADS, intermediate_size=NEURONS, num_labels=3)
    model = BertForSequenceClassification(config).double().eval()
    with torch.no_grad():  # larger weights than the 0.02 init, so every score is well above 0
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(20.0)
    return model


def _batches():
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(2):
        ids = torch.randint(5, 40, (3, 5), generator=g)
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
        out.append({"input_ids": ids, "attention_mask": mask,
                    "labels": torch.randint(0, 3, (3,), generator=g)})
    return out


def _directional(model, batch):
    """(|dL/d head scale| [H], dL/d incoming scale [F], dL/d outgoing scale [F]) at scale 1."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    heads = torch.zeros(HEADS, dtype=torch.float64, requires_grad=True)
    incoming = torch.zeros(NEURONS, dtype=torch.float64, requires_grad=True)
    outgoing = torch.zeros(NEURONS, dtype=torch.float64, requires_grad=True)
    p = dict(params)
    p[PREFIX + "attention.output.dense.weight"] = (
        params[PREFIX + "attention.output.dense.weight"]
        * (1 + heads).repeat_interleave(HEAD_SIZE)[None, :])
    p[PREFIX + "intermediate.dense.weight"] = (params[PREFIX + "intermediate.dense.weight"]
                                               * (1 + incoming)[:, None])
    p[PREFIX + "intermediate.dense.bias"] = (params[PREFIX + "intermediate.dense.bias"]
                                             * (1 + incoming))
    p[PREFIX + "output.dense.weight"] = (params[PREFIX + "output.dense.weight"]
                                         * (1 + outgoing)[None, :])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    logits = functional_call(model, p, args=(), kwargs=inputs).logits
    loss = F.cross_entropy(logits, batch["labels"])
    return torch.autograd.grad(loss, (heads, incoming, outgoing))


@pytest.mark.parametrize("mode", ["clean", "official"])
def test_importance_equals_directional_derivatives(mode):
    model, batches = _model(), _batches()
    per_batch = [_directional(model, b) for b in batches]
    if mode == "official":  # |running sum of the gradient| added per batch
        running = [tuple(sum(pb[i] for pb in per_batch[:k + 1]) for i in range(3))
                   for k in range(len(per_batch))]
        per_batch = running
    heads = sum(h.abs() for h, _, _ in per_batch)
    neurons = sum(i.abs() + o.abs() for _, i, o in per_batch)
    # both FFN matrices matter here: dropping either side changes every score a lot
    incoming = sum(i.abs() for _, i, _ in per_batch)
    assert (incoming > 0.1 * neurons).all() and (neurons - incoming > 0.1 * neurons).all()

    got_heads, got_neurons = compute_importance(model, batches, "classification", mode)
    assert got_heads.shape == (1, HEADS) and got_neurons.shape == (1, NEURONS)
    torch.testing.assert_close(got_heads[0].double(), heads, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(got_neurons[0].double(), neurons, rtol=1e-5, atol=1e-9)
