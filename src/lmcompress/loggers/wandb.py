"""Lightning's WandbLogger without the deprecation warning it causes on every run.

Lightning passes ``anonymous=None`` to ``wandb.init``; wandb >= 0.2x warns that the setting has
no effect. Nothing else changes.
"""

from __future__ import annotations

from typing import Any

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger


class WandbLogger(_LightningWandbLogger):
    """``pytorch_lightning.loggers.WandbLogger`` minus the ``anonymous=None`` argument."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._wandb_init.pop("anonymous", None)
