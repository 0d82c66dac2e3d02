"""Activation (gradient) checkpointing of a Hugging Face encoder (docs/launch.md "Memory").

With checkpointing, a layer's activations are not kept for the backward pass: the layer's forward
runs again during the backward one. Peak memory drops by roughly the activations of all layers
but one, for about one extra forward pass of time. Hugging Face models only checkpoint in train
mode with gradients on, so a frozen teacher under ``no_grad`` is unaffected.
"""

from __future__ import annotations

from typing import Any


def set_checkpointing(model: Any, enabled: bool, key: str) -> Any:
    """Switch activation checkpointing on ``model`` (non-reentrant: frozen inputs are fine).

    Raises:
        ValueError: the model's class cannot checkpoint (the message names ``key``).
    """
    if not enabled:
        return model
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"{key}.gradient_checkpointing=true: {type(model).__name__} does not "
                         "support activation checkpointing; set it to false")
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
        model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def is_checkpointing(model: Any) -> bool:
    """Whether ``model`` recomputes its activations in the backward pass."""
    flag = getattr(type(model), "is_activation_checkpointing", None)
    return bool(model.is_activation_checkpointing if flag is not None
                else getattr(model, "is_gradient_checkpointing", False))
