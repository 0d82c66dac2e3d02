"""Run a stage so that its exit status and its folder tell the truth (docs/launch.md).

- SIGTERM and SIGINT raise :class:`Interrupted` (exit status 128 + signal number) wherever the
  stage is, fit included: Lightning's own SIGTERM handler (kept, it runs first) only stops the
  loops and raises a ``SystemExit`` with status 0, which made a killed job look finished.
- Any exception ends the run non-zero (a ``SystemExit`` with status 0 or None becomes 1) and
  writes ``<output_dir>/status.json`` (``status: failed``, ``reason``, ``signal``, ``exit_code``);
  a run that returns writes ``status: ok`` there. ``metrics.json`` is only written on success.
- The wandb run is always closed (exit code 1 on failure).
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmcompress.utils.io import write_json_atomic

log = logging.getLogger("lmcompress")
SIGNALS = (signal.SIGTERM, signal.SIGINT)
STATUS_FILE = "status.json"


class Interrupted(SystemExit):
    """The stage was stopped by a signal; exits with the shell's status ``128 + signum``."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum
        self.signal_name = signal.Signals(signum).name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM / SIGINT raise :class:`Interrupted` inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupted) for s in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ignore_signals() -> None:
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def failure_record(err: BaseException) -> dict[str, Any]:
    """``status.json`` of a failed run: the reason, the signal (or None), the exit status."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    if isinstance(err, SIGTERMException) and not isinstance(err, Interrupted):
        err = Interrupted(signal.SIGTERM)  # Lightning's handler ran but ours did not
    if isinstance(err, Interrupted):
        return {"status": "failed", "reason": str(err), "signal": err.signal_name,
                "exit_code": err.code}
    code = err.code if isinstance(err, SystemExit) else 1
    code = code if isinstance(code, int) and code != 0 else 1
    reason = f"{type(err).__name__}: {err}".strip().rstrip(":")
    return {"status": "failed", "reason": reason[:2000], "signal": None, "exit_code": code}


def _output_dir(args: tuple[Any, ...]) -> Path | None:
    cfg = args[0] if args else None
    try:
        return Path(cfg.paths.output_dir)
    except (AttributeError, KeyError, TypeError):
        return None


def _finish_wandb(exit_code: int) -> None:
    wandb = sys.modules.get("wandb")  # only if something imported it
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def _log_to_files(message: str) -> None:
    """The current exception's traceback into the log files (``run.log``) only.

    Hydra prints the same traceback to the console when the exception reaches it, ending with the
    message; logging it to the console here too printed it twice, the message buried mid-screen.
    """
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), sys.exc_info())
    for logger in (log, logging.getLogger()):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)


def task_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a stage function ``fn(cfg)`` as described in the module docstring."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = _output_dir(args)
        with signals_raise():
            try:
                result = fn(*args, **kwargs)
            except BaseException as err:
                _ignore_signals()  # a second Ctrl+C must not cut the failure record short
                record = failure_record(err)
                if record["signal"]:
                    log.error("stage %s (exit status %d)", record["reason"], record["exit_code"])
                else:
                    _log_to_files("stage failed")
                if out is not None:
                    write_json_atomic(out / STATUS_FILE, record)
                _finish_wandb(1)
                if isinstance(err, SystemExit) and err.code != record["exit_code"]:
                    raise SystemExit(record["exit_code"]) from err
                raise
        if out is not None and out.is_dir():
            write_json_atomic(out / STATUS_FILE, {"status": "ok"})
        _finish_wandb(0)
        return result

    return wrapped
