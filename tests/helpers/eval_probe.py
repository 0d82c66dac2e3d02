"""A callback that leaves the student's classifier in eval mode at the start of training."""

from __future__ import annotations

import pytorch_lightning as pl


class StudentClassifierEval(pl.Callback):
    """Runs before the module's own ``on_train_start`` (Lightning calls callbacks first)."""

    def on_train_start(self, trainer, pl_module) -> None:
        pl_module.model.classifier.eval()
