"""Importance of each attention head and FFN neuron from task-loss gradients (docs/dynabert.md §2).

Head importance is Michel et al.'s (NeurIPS 2019): the summed |dL/dgate| of a gate, all ones,
multiplied onto each head's context output. transformers v5 has no ``head_mask``, so the gates
are our own, applied by forward pre-hooks on the attention output projection and removed when
done. FFN neuron importance is the first-order Taylor score of the neuron's incoming row (with
bias) and outgoing column, as in DynaBERT (Hou et al., NeurIPS 2020, arXiv:2004.04037):

    I_head[l, h]   = sum_batches |dL/dgate[l, h]|
    I_neuron[l, j] = sum_batches |sum_i W1[j, i] dL/dW1[j, i] + b1[j] dL/db1[j]|
                                 + |sum_k W2[k, j] dL/dW2[k, j]|

    heads, neurons = compute_importance(model, holdout_batches, kind="classification")
    rewire(model, heads, neurons)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager

import torch
from torch import nn
from transformers import PreTrainedModel

from lmcompress.losses.kd import task_term
from lmcompress.losses.registry import TermInputs
from lmcompress.models.dynabert.dynamic import current_subnet
from lmcompress.models.dynabert.slicing import family_adapter
from lmcompress.specs import IMPORTANCE_MODES as MODES
from lmcompress.specs import TASK_KINDS

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def compute_importance(model: PreTrainedModel, batches: Iterable[Mapping[str, torch.Tensor]],
                       kind: str, mode: str = "clean") -> tuple[torch.Tensor, torch.Tensor]:
    """Head importance ``[L, H]`` and FFN neuron importance ``[L, F]`` of ``model``.

    Runs in eval mode (dropout off, as the official code's freshly loaded model is); the model's
    weights, ``.grad``, ``requires_grad`` flags and train/eval modes are as before afterwards.

    Args:
        model: a full-size BERT-family task model (a dynamic one must be at (1.0, 1.0)).
        batches: dicts with ``input_ids``, ``attention_mask``, optional ``token_type_ids`` and
            gold ``labels`` (-100 marks ignored tokens in token classification).
        kind: ``classification`` | ``regression`` | ``token_classification``: the task loss.
        mode: ``clean`` sums per-batch |gradient|; ``official`` reproduces the official code's
            un-zeroed ``.grad``: each batch adds |gradient summed over the batches so far|.

    Raises:
        ValueError: an unknown ``kind`` or ``mode``, no batches, a sliced sub-network, or an
            unsupported architecture.
    """
    if kind not in TASK_KINDS:
        raise ValueError(f"kind={kind!r}: choose from {TASK_KINDS}")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: choose from {MODES}")
    if current_subnet(model) not in (None, (1.0, 1.0)):
        raise ValueError(f"importance is computed on the full model, but it is set to the "
                         f"(width, depth) = {current_subnet(model)} sub-network")
    adapter = family_adapter(model)
    layers = adapter.layers(model)
    parts = [adapter.ffn(layer) for layer in layers]
    weight = parts[0].input.weight
    gates = torch.ones(len(layers), model.config.num_attention_heads, device=weight.device,
                       dtype=weight.dtype, requires_grad=True)
    # (W1, b1 or None, W2); a gated W1 holds value | gate rows, both feeding neuron j
    ffn = [(p.input.weight, p.input.bias, p.output.weight) for p in parts]
    outputs = [adapter.attention(layer).output for layer in layers]
    with ExitStack() as stack:
        stack.enter_context(_head_gates(outputs, gates))
        stack.enter_context(_requires_grad([p for triple in ffn for p in triple
                                            if p is not None]))
        stack.enter_context(_eval_mode(model))
        return _accumulate(model, batches, kind, mode, gates, ffn)


def _accumulate(model: PreTrainedModel, batches: Iterable[Mapping[str, torch.Tensor]],
                kind: str, mode: str, gates: torch.Tensor,
                ffn: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum the per-batch scores (§2.4): |gradient| in clean mode, |running sum| in official."""
    inputs = [gates, *(p for triple in ffn for p in triple if p is not None)]
    # fp32 sums whatever the model's dtype
    head_importance = torch.zeros(gates.shape, device=gates.device)
    neuron_importance = torch.zeros(len(ffn), ffn[0][2].shape[1], device=gates.device)
    running, num_batches = None, 0
    for batch in batches:
        grads = torch.autograd.grad(_task_loss(model, batch, kind), inputs)
        if mode == "official":  # the official code never zeroes .grad between batches
            running = grads if running is None else tuple(map(torch.add, running, grads))
            grads = running
        head_importance += grads[0].abs()
        neuron_importance += _neuron_scores(ffn, grads[1:])
        num_batches += 1
    if num_batches == 0:
        raise ValueError("compute_importance: got no batches")
    return head_importance, neuron_importance


def _neuron_scores(ffn: list[tuple[torch.Tensor, ...]], grads: tuple[torch.Tensor, ...]
                   ) -> torch.Tensor:
    """Per-batch Taylor scores ``[L, F]``: |W1 row . grad + b1 . grad| + |W2 column . grad|."""
    scores, grads = [], iter(grads)
    with torch.no_grad():
        for w1, b1, w2 in ffn:
            g1 = next(grads)
            incoming = (w1 * g1).sum(dim=1)
            if b1 is not None:
                incoming = incoming + b1 * next(grads)
            outgoing = (w2 * next(grads)).sum(dim=0)
            # a gated W1 (value | gate halves): neuron j's incoming rows are j and F + j
            incoming = incoming.view(-1, w2.shape[1]).sum(dim=0)
            scores.append(incoming.abs() + outgoing.abs())
    return torch.stack(scores)


def _task_loss(model: PreTrainedModel, batch: Mapping[str, torch.Tensor], kind: str
               ) -> torch.Tensor:
    """The gold-label loss: the objective's ``task`` term, the one training minimises."""
    device = model.device
    inputs = {k: batch[k].to(device) for k in MODEL_INPUTS if batch.get(k) is not None}
    labelled = {**inputs, "labels": batch["labels"].to(device)}
    return task_term(TermInputs(model(**inputs), None, labelled, kind))


@contextmanager
def _head_gates(outputs: list[nn.Linear], gates: torch.Tensor) -> Iterator[None]:
    """Multiply head h's context output in layer l by ``gates[l, h]`` while inside the block.

    Every supported family's attention lays the heads out contiguously, ``[..., H * head_size]``,
    so the input of the attention output projection unflattens to ``[..., H, head_size]``.
    Gating the context equals gating the attention probabilities (the official head mask):
    context = probs @ V.
    """
    def gate(index: int):
        def hook(module: nn.Module, args: tuple) -> tuple:
            context, *rest = args
            gated = context.unflatten(-1, (gates.shape[1], -1)) * gates[index, :, None]
            return (gated.flatten(-2), *rest)
        return hook

    handles = [output.register_forward_pre_hook(gate(index))
               for index, output in enumerate(outputs)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def _requires_grad(params: list[torch.Tensor]) -> Iterator[None]:
    """Let ``autograd.grad`` differentiate ``params`` even in a frozen model."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Dropout off inside the block; every module's train/eval flag restored after."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training
