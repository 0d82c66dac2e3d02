"""Which checkout a command runs in: its ``conf/``, ``outputs/`` and ``../shared/data``.

Configs, outputs and data come from the checkout that holds the current directory (found by
walking up to a folder with ``pyproject.toml`` naming lmcompress and ``conf/base.yaml``), not
from wherever the package happens to be installed from; ``$LMCOMPRESS_CONF_DIR`` overrides.
When the imported code lives in another checkout than the one the command runs in, the run is
refused: it would silently mix one clone's code with another's configs.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

PACKAGE_CHECKOUT = Path(__file__).resolve().parents[3]


def _is_checkout(path: Path) -> bool:
    project = path / "pyproject.toml"
    return (path / "conf" / "base.yaml").is_file() and project.is_file() and (
        'name = "lmcompress"' in project.read_text(encoding="utf-8"))


def find_checkout(start: Path | None = None) -> Path | None:
    """The lmcompress checkout holding ``start`` (default: the current directory), or None."""
    here = (start or Path.cwd()).resolve()
    return next((p for p in (here, *here.parents) if _is_checkout(p)), None)


@cache
def conf_dir() -> Path:
    """``conf/``: ``$LMCOMPRESS_CONF_DIR``, the current checkout's, or the package's."""
    env = os.environ.get("LMCOMPRESS_CONF_DIR")
    if env:
        path = Path(env).resolve()
    else:
        path = (find_checkout() or PACKAGE_CHECKOUT) / "conf"
    if not (path / "base.yaml").is_file():
        raise FileNotFoundError(
            f"lmcompress configs not found at {path}: run from a checkout of the repository "
            "(pip install -e . there) or set LMCOMPRESS_CONF_DIR to its conf/ directory"
        )
    return path


def check_code_matches_checkout() -> None:
    """Refuse to run one checkout's configs with code installed from another checkout."""
    here = find_checkout()
    if here is None or os.environ.get("LMCOMPRESS_CONF_DIR") or here == PACKAGE_CHECKOUT:
        return
    raise RuntimeError(
        f"this command runs in the checkout {here}, but the lmcompress code it imports is "
        f"installed from {PACKAGE_CHECKOUT}: run `pip install -e .` in {here} (or run from "
        f"{PACKAGE_CHECKOUT}), so that code, configs and outputs come from one checkout")


def repo_root() -> str:
    """The folder that holds ``conf/`` (outputs/ and ../shared are found relative to it)."""
    return str(conf_dir().parent)


def output_root() -> Path:
    """Where runs write: ``$LMCOMPRESS_OUTPUT_DIR``, else ``outputs/`` of the checkout.

    The same rule as ``paths.log_dir`` in ``conf/paths/default.yaml``, for commands that are
    not Hydra runs (the recipe).
    """
    return Path(os.environ.get("LMCOMPRESS_OUTPUT_DIR") or Path(repo_root()) / "outputs")


def register_resolvers() -> None:
    """Register ``${lmc_root:}`` and ``${lmc_slurm_tasks:}`` (idempotent)."""
    if not OmegaConf.has_resolver("lmc_root"):
        OmegaConf.register_new_resolver("lmc_root", repo_root)
    if not OmegaConf.has_resolver("lmc_slurm_tasks"):
        OmegaConf.register_new_resolver("lmc_slurm_tasks", slurm_tasks)


def slurm_tasks(devices: Any) -> int:
    """SLURM tasks (and GPUs) per node for ``trainer.devices``; ``-1``/``auto`` are refused.

    ``hardware=ddp`` asks for every GPU of the node (``devices: -1``), which Lightning resolves
    on the node itself; a SLURM request needs the number before the job exists.
    """
    try:
        count = int(devices)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        raise ValueError(
            f"trainer.devices={devices!r} cannot size a SLURM job (+launcher=slurm asks for "
            "trainer.devices tasks and GPUs per node): set trainer.devices to the GPUs per node, "
            "e.g. hardware=ddp trainer.devices=4, or use hardware=ddp_multinode (docs/launch.md)")
    return count
