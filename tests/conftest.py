"""Shared fixtures: compose stage configs at tiny scale, offline, with outputs under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from helpers.cli import OFFLINE_ENV, TINY
from lmcompress.data.paths import shared_data_dir
from lmcompress.utils.paths import conf_dir, register_resolvers

register_resolvers()

if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n W: one thread per worker (2 cores, 2 workers)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # and per subprocess it starts
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(stage, *overrides)`` -> a composed config writing to its own dir under tmp_path
    (``run_dir=`` to reuse one, e.g. to resume)."""
    count = iter(range(1000))

    def _make(stage: str, *overrides: str, run_dir: Path | None = None) -> DictConfig:
        run_dir = run_dir or tmp_path / f"run{next(count)}_{stage}"
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            base = TINY if stage == "teacher" else [o for o in TINY if not o.startswith("model=")]
            cfg = compose(stage, overrides=[*base, f"paths.log_dir={tmp_path}", *overrides],
                          return_hydra_config=True)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
            cfg.hydra.runtime.output_dir = str(run_dir)
        HydraConfig().set_config(cfg)
        return cfg

    yield _make
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $LMCOMPRESS_DATA_DIR); skips the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("shared data (../shared/data) not available")
    return path
