"""Locate the real datasets folder (``../shared/data`` beside the checkout by default)."""

from __future__ import annotations

import os
from pathlib import Path

from lmcompress.utils.paths import repo_root


def shared_data_dir() -> Path | None:
    """``$LMCOMPRESS_DATA_DIR`` or ``<checkout>/../shared/data`` if it exists, else None."""
    env = os.environ.get("LMCOMPRESS_DATA_DIR")
    path = Path(env) if env else Path(repo_root()).parent / "shared" / "data"
    return path.resolve() if path.is_dir() else None
