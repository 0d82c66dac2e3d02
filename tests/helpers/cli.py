"""Run the CLI the way a user does, offline, in a subprocess (shared by the slow tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = ["model=tiny", "task=tiny", "logger=csv", "hardware=cpu", "data.batch_size=16",
        "trainer.max_epochs=1", "export=true", "log_every_n_steps=1",
        "preflight.allow_weak_teacher=true"]  # random tiny teachers sit at the baseline
OFFLINE_ENV = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "WANDB_SILENT": "true",
               "TOKENIZERS_PARALLELISM": "false"}


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: int = 600):
    """Run ``python -m lmcompress.run`` in a subprocess (offline); returns CompletedProcess."""
    full_env = {**os.environ, **OFFLINE_ENV, "CI": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "lmcompress.run", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
