"""Quieter third-party logging, so the lines a user reads are the run's own."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """Silence wandb's banner, transformers' weight-loading reports and Lightning's tips.

    "Checkpoint directory ... is not empty" is every resume. Lightning's "Found N module(s) in
    eval mode" is not silenced here: modules/frozen_teacher.py lifts it for the teacher only.
    """
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "pytorch_lightning.accelerators.cuda", "lightning_fabric.utilities.seed",
                 "wandb", "datasets"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*",
                    ".*LeafSpec.*", ".*will save all targets.*", ".*set_vital.*",
                    ".*smaller than the logging interval.*",
                    # resume re-uses the run folder by design: its checkpoints/ holds last.ckpt
                    ".*Checkpoint directory .* exists and is not empty.*"):
        warnings.filterwarnings("ignore", message=pattern)
