"""Where the project's Hydra configs live, and the ``lmc_root`` resolver used by conf/paths."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def conf_dir() -> Path:
    """The ``conf/`` directory: ``$LMCOMPRESS_CONF_DIR`` or the repository's (editable install)."""
    env = os.environ.get("LMCOMPRESS_CONF_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "conf"
    if not (path / "base.yaml").is_file():
        raise FileNotFoundError(
            f"lmcompress configs not found at {path}: install the repository in editable mode "
            "(pip install -e .) or set LMCOMPRESS_CONF_DIR to its conf/ directory"
        )
    return path


def repo_root() -> str:
    """The folder that holds ``conf/`` (outputs/ and ../shared are found relative to it)."""
    return str(conf_dir().parent)


def register_resolvers() -> None:
    """Register ``${lmc_root:}`` (idempotent)."""
    if not OmegaConf.has_resolver("lmc_root"):
        OmegaConf.register_new_resolver("lmc_root", repo_root)
