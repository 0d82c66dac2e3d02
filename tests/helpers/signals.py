"""A callback that sends a signal to its own process at a given optimizer step (exit tests)."""

import os
import signal

import pytorch_lightning as pl


class SignalAtStep(pl.Callback):
    """Stop like a pre-empted job (SIGTERM) or a Ctrl+C (SIGINT) once ``step`` is reached."""

    def __init__(self, step: int, signum: str = "SIGTERM"):
        self.step, self.signum = step, signal.Signals[signum]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), self.signum)


class LateSigterm(pl.Callback):
    """Mark a SIGTERM as received after the loops' last check (Lightning then just returns)."""

    def on_train_end(self, trainer, pl_module):
        trainer._signal_connector.received_sigterm = True
