"""Locate the real datasets folder (``../shared/data`` beside the repository by default)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_data_dir() -> Path | None:
    """``$LMCOMPRESS_DATA_DIR`` or ``<repo>/../shared/data`` if it exists, else None."""
    env = os.environ.get("LMCOMPRESS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return path.resolve() if path.is_dir() else None
