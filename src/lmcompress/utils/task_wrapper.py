"""Run a stage with logging and a guaranteed ``wandb.finish`` (exit code 1 on failure)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lmcompress")


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
    """Decorate a stage function: log its exception, always close the wandb run."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            _log_to_files("stage failed")
            _finish_wandb(1)
            raise
        _finish_wandb(0)
        return result

    return wrapped
