"""A callback that SIGKILLs its own process at a given optimizer step (resume tests)."""

import os
import signal

import pytorch_lightning as pl


class KillAtStep(pl.Callback):
    """Die like an OOM-killed or pre-empted job: no cleanup, no final checkpoint."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
