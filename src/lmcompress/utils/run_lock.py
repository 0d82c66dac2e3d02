"""One process per run folder: ``<run folder>/run.lock`` (docs/launch.md).

Two processes training into one folder (the same ``hydra.run.dir`` typed twice, a resume started
while the first run still lives) would overwrite each other's ``last.ckpt`` and ``metrics.json``.
:func:`run_folder_lock` creates ``run.lock`` (pid, host, start time) with ``O_EXCL`` when a stage
starts and removes it when the stage ends, on failure too. A second process finding a live
lock refuses, naming that pid, host and start time. A lock left by a killed process (its pid is
gone on this host) is stale: it is replaced, with a warning. A lock from another host cannot be
checked from here and is honoured; the message says to delete it once that run is gone.

Only the launching process (rank 0) takes the lock: the other DDP ranks Lightning starts re-run
the same command in the same folder, and SLURM tasks of one job share it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("lmcompress")
LOCK_NAME = "run.lock"
_RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


class RunFolderBusy(RuntimeError):
    """Another live process holds the run folder."""


def is_secondary_rank() -> bool:
    """True in a process that a distributed launch started besides rank 0."""
    return any(os.environ.get(v, "0") not in ("", "0") for v in _RANK_VARS)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextmanager
def run_folder_lock(folder: str | Path) -> Iterator[Path | None]:
    """Hold ``<folder>/run.lock`` for the duration of the ``with`` block (rank 0 only)."""
    if is_secondary_rank():
        yield None
        return
    lock = acquire(Path(folder))
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def acquire(folder: Path) -> Path:
    """Create ``folder/run.lock``; replace a stale one; refuse a live one."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for _ in range(2):  # the second try follows the removal of a stale lock
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            holder = _read(lock)
            if not _stale(holder, mine["host"]):
                raise RunFolderBusy(_busy_message(folder, lock, holder)) from None
            log.warning("%s: stale lock of pid %s (started %s, no longer running on %s); "
                        "taking the folder over", lock, holder.get("pid"),
                        holder.get("started"), holder.get("host"))
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        return lock
    raise RunFolderBusy(_busy_message(folder, lock, _read(lock)))


def _read(lock: Path) -> dict[str, Any]:
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}  # unreadable, or being written right now
    return data if isinstance(data, dict) else {}


def _stale(holder: dict[str, Any], host: str) -> bool:
    """Only a lock naming this host and a pid that is gone is stale (a broken one is not)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or holder.get("host") != host:
        return False
    return not pid_alive(pid)


def _busy_message(folder: Path, lock: Path, holder: dict[str, Any]) -> str:
    return (f"run folder {folder} is in use by pid {holder.get('pid', '?')} on host "
            f"{holder.get('host', '?')} (started {holder.get('started', '?')}): two processes "
            "in one folder overwrite each other's checkpoints and metrics.json. Wait for it, "
            "use another hydra.run.dir, or, if that process is gone, delete "
            f"{lock}")
