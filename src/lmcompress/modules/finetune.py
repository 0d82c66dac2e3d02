"""Stage ``teacher``: fine-tune a Hugging Face encoder on a task with its gold labels."""

from __future__ import annotations

import torch

from lmcompress.modules.base import TaskModule


class FinetuneModule(TaskModule):
    """Plain fine-tuning (sequence classification, regression or token classification).

    Built by ``conf/module/finetune.yaml``::

        _target_: lmcompress.modules.finetune.FinetuneModule
        model: ${model}
        task: ${task}
        optim: {lr: 5e-5, weight_decay: 0.01, warmup_ratio: 0.1}
    """

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch).logits
        loss = self.task_loss(logits, batch["labels"])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss
