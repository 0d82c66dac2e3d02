"""Build objects from config nodes with plain-python arguments and errors that name the key."""

from __future__ import annotations

import inspect
from typing import Any

import pytorch_lightning as pl
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf


def instantiate_plain(node: DictConfig | dict[str, Any], **extra: Any) -> Any:
    """``node._target_(**node, **extra)`` with containers converted to dicts/lists.

    Unlike ``hydra.utils.instantiate`` nothing nested is instantiated (a task's ``source`` stays a
    dict inside a module's hyperparameters) and an unknown key fails with the config path.
    A plain dict works too (e.g. a data stream's ``source`` inside the resolved ``data`` node).
    """
    if not isinstance(node, DictConfig):
        node = OmegaConf.create(dict(node))
    kwargs = OmegaConf.to_container(node, resolve=True)
    target = kwargs.pop("_target_", None)
    where = node._get_full_key(None) or "<root>"
    if target is None:
        raise ValueError(f"config node '{where}' has no _target_")
    cls = get_class(target) if isinstance(target, str) else target
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(
                f"{where}: unknown key(s) {unknown} for {target}; accepted: {sorted(params)}"
            )
    kwargs.update(extra)
    return cls(**kwargs)


def build_callbacks(node: DictConfig | None) -> list[pl.Callback]:
    """One callback per entry of the ``callbacks`` group (null entries are skipped)."""
    if not node:
        return []
    return [instantiate_plain(c) for c in node.values() if c is not None]


def build_loggers(node: DictConfig | None, cfg: DictConfig) -> list[Any]:
    """The ``logger`` group's loggers; wandb receives the resolved config."""
    loggers = []
    for entry in (node or {}).values():
        if entry is None:
            continue
        logger = instantiate_plain(entry)
        if hasattr(logger, "log_hyperparams") and "Wandb" in type(logger).__name__:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        loggers.append(logger)
    return loggers
