"""One containment rule for every user-given name that becomes a path (docs/launch.md).

``publish_as``, a report's ``name``, a recipe's step and run names and an exported sub-model's
name each become a file or folder under a root the run owns (``<artifact_dir>/teachers``, the
report folder, the recipe folder, ``<run>/export``). :func:`inside` accepts a plain name or a
relative path whose resolved form, symlinks followed, lies strictly below that root; anything
else (an absolute path, ``..`` climbing out, a symlink pointing elsewhere, the root itself) is
refused before anything is written or deleted, naming the config key and the root.
"""

from __future__ import annotations

from pathlib import Path


class PathEscapeError(ValueError):
    """A user-given name would put a file outside the folder it belongs in."""


def inside(root: str | Path, name: str | Path, key: str) -> Path:
    """``root / name``, refused unless it resolves to a path strictly below ``root``.

    Args:
        root: the folder the name must stay in (need not exist yet).
        name: the user-given name: a plain name (``glue_sst2_minilm``) or a relative path
            (``dynabert/w0.50``).
        key: the config key or CLI flag the name came from, for the error message.

    Returns:
        ``root / name`` as given (not resolved), so messages show the user's path.

    Raises:
        PathEscapeError: ``name`` is empty, absolute, or resolves outside ``root`` (``..``,
            or a symlink on the way that points elsewhere).
    """
    root, text = Path(root), str(name)
    if not text.strip() or "\0" in text:
        raise PathEscapeError(f"{key}={text!r}: not a usable name (empty or with a NUL byte)")
    if Path(text).is_absolute():
        raise PathEscapeError(f"{key}={text}: an absolute path; give a name (or a relative "
                              f"path) under {root}")
    path = root / text
    base, resolved = root.resolve(), path.resolve()
    if base not in resolved.parents:
        raise PathEscapeError(
            f"{key}={text}: resolves to {resolved}, which is not inside {base} (via '..' or a "
            "symlink); give a plain name")
    return path
