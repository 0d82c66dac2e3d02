"""Writing files: atomic (a reader or a killed run never sees half a file) and with the umask.

:func:`atomic_write` is the one way results are written: a temporary file beside the target,
fsync, ``os.replace``. ``tempfile.mkstemp`` creates that file at mode 0600; it is set to
``0o666 & ~umask`` first, as ``open()`` would, so that results, checkpoints and published
weights are readable by whoever the user's umask lets read them (a group on a shared cluster).
JSON (:func:`write_json_atomic`), CSV (:func:`write_csv_atomic`) and checkpoints
(``utils.checkpoints.AtomicCheckpointIO``) all go through it; :func:`copy_tree` copies a folder
with the same modes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask (read from /proc on Linux; elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it to ``path``.

    Args:
        path: the target (its folder is created).
        mode: ``"w"`` (text) or ``"wb"``.
        **kwargs: passed to ``os.fdopen`` (``newline``, ``encoding``).

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=2, sort_keys=True, default=float)
        f.write("\n")
    return Path(path)


def write_csv_atomic(path: str | Path, table: Any) -> Path:
    """Write a pandas ``table`` as CSV (no index) to ``path`` atomically."""
    with atomic_write(path, newline="") as f:
        table.to_csv(f, index=False)
    return Path(path)


def apply_umask(folder: str | Path) -> Path:
    """Give every file under ``folder`` the mode the umask allows (``0o666 & ~umask``).

    For files written by libraries that create them privately: ``save_pretrained``'s
    safetensors writer leaves ``model.safetensors`` at 0600 whatever the umask.
    """
    mode = 0o666 & ~current_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)
    return Path(folder)


def copy_tree(src: str | Path, dst: str | Path) -> Path:
    """Copy a folder's files and sub-folders; modes come from the umask, not from ``src``.

    ``shutil.copytree`` copies each file's and folder's mode, so an export written at 0600 (or
    a 0700 temporary folder) would be published unreadable to the group.
    """
    src, dst = Path(src), Path(dst)
    for folder, _dirs, files in os.walk(src):
        target = dst / Path(folder).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(Path(folder) / name, target / name)
    return dst
