"""Shared LightningModule machinery: task model, metrics, evaluation and the optimizer schedule.

Stage modules (``FinetuneModule``, ``DistillModule``) subclass :class:`TaskModule` and define
only ``training_step`` (and whatever extra models they hold).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from transformers import get_linear_schedule_with_warmup

from lmcompress.losses.kd import hard_ce, hard_mse
from lmcompress.models.hf import build_model, model_stats
from lmcompress.modules.metrics import build_metrics, predictions


class TaskModule(pl.LightningModule):
    """A task model with metrics, AdamW and linear warmup/decay.

    Args:
        model: ``{name_or_path, pretrained, config}``: the model reference, whether to load its
            weights, and config overrides (depth, width, heads) for a random-init model.
        task: ``{kind, num_labels, label_names, metrics, main_metric}`` from the task config.
        optim: ``{lr, weight_decay, warmup_ratio, eps, betas}``.
    """

    def __init__(self, model: dict[str, Any], task: dict[str, Any], optim: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.kind = task["kind"]
        self.main_metric = task["main_metric"]
        if self.main_metric not in task["metrics"]:
            raise ValueError(
                f"task.main_metric='{self.main_metric}' is not in task.metrics={task['metrics']}"
            )
        # from_pretrained returns eval-mode modules; Lightning keeps each submodule's mode, so
        # switch to train mode here or dropout would stay off for the whole run
        self.model = self.build_task_model(model, task).train()
        metrics = build_metrics(self.kind, list(task["metrics"]), task["num_labels"])
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.best_score = float("-inf")  # best dev main metric so far (kept in checkpoints)

    def build_task_model(self, spec: dict[str, Any], task: dict[str, Any]) -> torch.nn.Module:
        """The HF model for ``task`` described by ``spec`` (see ``models.hf.build_model``)."""
        return build_model(
            spec.get("name_or_path"),
            task["kind"],
            task["num_labels"],
            config_overrides=spec.get("config"),
            pretrained=spec.get("pretrained", True),
            label_names=task.get("label_names"),
        )

    def export_model(self) -> torch.nn.Module:
        """The model saved by ``save_pretrained`` at the end of the stage."""
        return self.model

    @staticmethod
    def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch without ``labels`` and ``index``: losses are computed by the stage."""
        return {k: v for k, v in batch.items() if k not in ("labels", "index")}

    def forward(self, batch: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        """Run the model on a batch (labels are not passed: losses are computed by the stage)."""
        return self.model(**self.model_inputs(batch), **kwargs)

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the gold labels (MSE for regression; -100 ignored for tokens)."""
        if self.kind == "regression":
            return hard_mse(logits, labels)
        return hard_ce(logits, labels)

    def _update_metrics(self, metrics, batch: dict[str, torch.Tensor]) -> None:
        logits = self(batch).logits
        preds, target = predictions(self.kind, logits), batch["labels"]
        if self.kind == "token_classification":
            preds, target = preds.reshape(-1), target.reshape(-1)
        metrics.update(preds, target)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._update_metrics(self.val_metrics, batch)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._update_metrics(self.test_metrics, batch)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        score = values[f"val/{self.main_metric}"]
        if not self.trainer.sanity_checking and self.trainer.state.fn == "fit":
            self.best_score = max(self.best_score, float(score))
            values[f"val/{self.main_metric}_best"] = torch.tensor(self.best_score)
        self.log_dict(values, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        values = self.test_metrics.compute()
        self.test_metrics.reset()
        self.log_dict(values, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay on biases and LayerNorm weights) with linear warmup then decay to 0."""
        cfg = self.hparams.optim
        decay, no_decay = [], []
        for param in self.parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.get("weight_decay", 0.0)},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg["lr"],
            eps=cfg.get("eps", 1e-8),
            betas=tuple(cfg.get("betas", (0.9, 0.999))),
        )
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(cfg.get("warmup_ratio", 0.0) * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["best_score"] = self.best_score
        # what wrote this checkpoint: run.resume_checkpoint refuses to resume another stage's run
        checkpoint["lmcompress"] = {"module": type(self).__name__,
                                    "task": self.hparams.task.get("name")}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_score = checkpoint.get("best_score", float("-inf"))

    def on_fit_start(self) -> None:
        stats = {f"model/{k}": float(v) for k, v in model_stats(self.export_model()).items()}
        if self.trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics(stats, step=self.trainer.global_step)
