"""Shared LightningModule machinery for every stage.

Objective-driven training, evaluation of every sub-model, the optimizer schedule, and checks
that stop a run that would otherwise succeed silently.

A stage module (``TeacherModule``, ``DistillModule``, ``DynaBertModule``) builds its models and
``self.objective`` in ``__init__``, top to bottom. Sub-models: ``subnets()`` names what is
evaluated (``[""]`` = the model itself) and ``export_models()`` what is saved; a stage with
several sub-networks logs ``val/<metric>/<name>`` for each and ``val/<metric>`` as their
aggregate, which selects checkpoints. These and the other parts ``run.py`` asks for
(``provenance()``, ``published_submodel``) are the ``Stage`` protocol (modules/protocol.py); each
has its default here.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from transformers import get_linear_schedule_with_warmup

from lmcompress.losses import Objective, TermInputs, counts_across_ranks
from lmcompress.metrics import TaskMetrics, predictions
from lmcompress.models.hub import model_stats
from lmcompress.modules import steps
from lmcompress.optim import adamw_groups
from lmcompress.specs import CORPUS_KIND, OptimSpec, TaskSpec, parse

log = logging.getLogger(__name__)
AGGREGATES = ("mean", "min", "sum")


class NonFiniteLossError(FloatingPointError):
    """The loss went nan/inf: training stops at that step and nothing is exported."""


class TaskModule(pl.LightningModule):
    """A task model trained by an objective, with metrics, AdamW and linear warmup/decay.

    Args:
        task: the task config (``TaskSpec``).
        optim: optimizer settings (``OptimSpec``).
        aggregate: how several sub-networks' dev metrics combine into the selection metric.
    """

    frozen_prefixes: tuple[str, ...] = ()
    """State-dict prefixes never saved in checkpoints (frozen models rebuilt from their spec)."""
    published_submodel: str = ""
    """The ``export_models()`` entry ``publish_as`` copies (``""``: the model itself)."""
    reads_corpus: bool = False
    """True for the general stage only: its task is unlabelled text (``task.kind=corpus``)."""

    def __init__(self, task: dict[str, Any], optim: dict[str, Any], aggregate: str = "mean"):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.task = parse(TaskSpec, task, "task")
        self.optim_spec = parse(OptimSpec, optim, "module.optim")
        if aggregate not in AGGREGATES:
            raise ValueError(f"module.aggregate={aggregate!r}: choose from {AGGREGATES}")
        self.aggregate = aggregate
        self.kind = self.task.kind
        if (self.kind == CORPUS_KIND) != self.reads_corpus:
            raise ValueError(f"task={self.task.name} (task.kind={self.kind}): "
                             + (f"{type(self).__name__} trains on labelled tasks; unlabelled "
                                "text is for the general stage (-cn general)" if
                                not self.reads_corpus else
                                "the general stage reads a corpus task (task=corpus/...)"))
        self.best_score = float("-inf")  # best dev selection metric so far (kept in checkpoints)
        self.test_prefix = "test"  # run.py renames it to score report splits
        self.run_identity: dict[str, Any] = {}  # set by run.py: the config that shapes results
        self.strict_loading = not self.frozen_prefixes  # check_state_keys is strict otherwise
        self.objective: Objective  # set by each stage's __init__
        self.model: torch.nn.Module

    # -- sub-models -----------------------------------------------------------------------------
    def subnets(self) -> list[str]:
        """Names of the evaluated sub-models; ``""`` is the model itself."""
        return [""]

    @contextlib.contextmanager
    def subnet(self, name: str) -> Iterator[None]:
        """Run the body with sub-model ``name`` active (one model: nothing to switch)."""
        yield

    def export_models(self) -> dict[str, torch.nn.Module]:
        """``{name: model}`` saved with ``save_pretrained`` at the end (``""`` -> ``export/``)."""
        return {"": self.model}

    def provenance(self) -> dict[str, Any]:
        """Entries merged into ``metrics.json`` about the run's inputs (none by default)."""
        return {}

    # -- forward and training -------------------------------------------------------------------
    @staticmethod
    def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch without ``labels`` and ``index``: losses are computed by the objective."""
        return {k: v for k, v in batch.items() if k not in ("labels", "index")}

    def forward(self, batch: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        """Run the trained model on a batch."""
        return self.model(**self.model_inputs(batch), **kwargs)

    def teacher_outputs(self, batch: dict[str, torch.Tensor]) -> Any:
        """The frozen teacher's outputs (stages without a teacher never call this)."""
        raise NotImplementedError(f"{type(self).__name__} has no teacher")

    def term_inputs(self, batch: dict[str, torch.Tensor], teacher: Any = None) -> TermInputs:
        """Student forward (+ teacher unless given) packed for the objective."""
        student = self(batch, output_hidden_states=self.objective.needs_hidden)
        if teacher is None and self.objective.needs_teacher:
            teacher = self.teacher_outputs(batch)
        return TermInputs(student, teacher, batch, self.kind, getattr(self, "layer_map", None))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # under DDP, CKD's counts are the global batch's (docs/ckd.md §13)
        with counts_across_ranks(self.trainer.world_size > 1):
            total, parts = self.objective(self.term_inputs(batch))
        self.check_finite_on_every_rank(total)
        self.check_finite(total, parts)
        self.log_loss(total, parts)
        return total

    def check_finite_on_every_rank(self, total: torch.Tensor) -> None:
        """Under DDP, stop every rank when any rank's loss is non-finite (one 1-element all-reduce).

        Raised on one rank alone, the others would wait in the gradient all-reduce until the
        process-group timeout.
        """
        if self.trainer.world_size == 1:
            return
        flag = (~torch.isfinite(total.detach())).float().reshape(1)
        if bool(self.trainer.strategy.reduce(flag, reduce_op="sum")) and bool(
                torch.isfinite(total)):
            raise NonFiniteLossError(
                f"step {self.global_step}: another process's loss went non-finite; stopping "
                "every process before anything is exported (lower module.optim.lr)")

    def check_finite(self, total: torch.Tensor, parts: dict[str, torch.Tensor],
                     where: str = "") -> None:
        """Stop at the first non-finite loss, naming the step and the term(s) that went bad."""
        if bool(torch.isfinite(total)):
            return
        bad = [f"{n}={float(v)}" for n, v in parts.items() if not bool(torch.isfinite(v))]
        raise NonFiniteLossError(
            f"step {self.global_step}{where}: the loss is {float(total)} "
            f"({', '.join(bad) if bad else 'the weighted sum overflowed'}); stopping before "
            "anything is exported (lower module.optim.lr, check loss.weights and the data)")

    def log_loss(self, total: torch.Tensor, parts: dict[str, torch.Tensor],
                 suffix: str = "") -> None:
        """``train/loss`` and ``train/loss_<term>`` (each unweighted)."""
        if len(parts) > 1:
            for name, value in parts.items():
                self.log(f"train/loss_{name}{suffix}", value.detach())
        self.log(f"train/loss{suffix}", total.detach(), prog_bar=not suffix)

    # -- evaluation -----------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if not hasattr(self, "eval_metrics"):
            self.eval_metrics = torch.nn.ModuleDict()

    def _metrics(self, split: str, name: str) -> TaskMetrics:
        key = re.sub(r"\W", "_", f"{split}__{name}")
        if key not in self.eval_metrics:
            self.eval_metrics[key] = TaskMetrics(
                self.kind, list(self.task.metrics), self.task.num_labels, self.task.label_names,
                where=f"{split}/{name}" if name else split).to(self.device)
        return self.eval_metrics[key]

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str) -> None:
        for name in self.subnets():
            with self.subnet(name):
                logits = self(batch).logits
            self._metrics(split, name).update(predictions(self.kind, logits), batch["labels"])

    def _log_eval(self, split: str) -> dict[str, torch.Tensor]:
        values: dict[str, torch.Tensor] = {}
        per_metric: dict[str, list[torch.Tensor]] = {m: [] for m in self.task.metrics}
        for name in self.subnets():
            metrics = self._metrics(split, name)
            for metric, value in metrics.compute().items():
                values[f"{split}/{metric}" + (f"/{name}" if name else "")] = value
                per_metric[metric].append(value)
            metrics.reset()
        if "" not in self.subnets():
            for metric, vals in per_metric.items():
                stacked = torch.stack(vals)
                agg = {"mean": stacked.mean(), "min": stacked.min(), "sum": stacked.sum()}
                values[f"{split}/{metric}"] = agg[self.aggregate]
        return values

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_prefix)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        with self.subnet(self.subnets()[0]):
            preds = predictions(self.kind, self(batch).logits)
        return {"index": batch["index"].cpu(), "prediction": preds.cpu()}

    def on_validation_epoch_end(self) -> None:
        values = self._log_eval("val")
        score = float(values[f"val/{self.task.main_metric}"])
        if not self.trainer.sanity_checking and self.trainer.state.fn == "fit":
            self.best_score = max(self.best_score, score)
            # on the module's device: sync_dist all-reduces it, and NCCL refuses CPU tensors
            values[f"val/{self.task.main_metric}_best"] = torch.tensor(self.best_score,
                                                                       device=self.device)
        self.log_dict({k: v.float() for k, v in values.items()}, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        values = self._log_eval(self.test_prefix)
        self.log_dict({k: v.float() for k, v in values.items()}, sync_dist=True)

    # -- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no decay below 2 dimensions: ``lmcompress.optim``), linear warmup then decay."""
        spec = self.optim_spec
        optimizer = torch.optim.AdamW(adamw_groups(self.parameters(), spec.weight_decay),
                                      lr=spec.lr, eps=spec.eps, betas=tuple(spec.betas))
        total = self.planned_steps()
        warmup = int(spec.warmup_ratio * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def planned_steps(self) -> int:
        """Optimizer steps of the whole run (``modules/steps.py``)."""
        return steps.planned_steps(self.trainer)

    def on_train_start(self) -> None:
        steps.check_step_budget(self.trainer)  # before the first optimizer step
        expected = int(self.trainer.estimated_stepping_batches)  # the loader exists by now
        if self.planned_steps() != expected:
            raise RuntimeError(f"planned {self.planned_steps()} optimizer steps for the learning "
                               f"rate schedule, but Lightning will take {expected}")
        if self.trainer.is_global_zero and self.trainer.global_step == 0:  # not again on resume
            for name, model in self.export_models().items():
                stats = {f"model/{k}" + (f"/{name}" if name else ""): float(v)
                         for k, v in model_stats(model).items()}
                for logger in self.loggers:
                    logger.log_metrics(stats, step=0)

    # -- checkpoints ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["best_score"] = self.best_score
        # what wrote this checkpoint: resume refuses another stage's, task's or config's
        checkpoint["lmcompress"] = {"module": type(self).__name__, "task": self.task.name,
                                    "config": self.run_identity}
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(self.frozen_prefixes)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_score = checkpoint.get("best_score", float("-inf"))
        self.check_state_keys(checkpoint["state_dict"])

    def check_state_keys(self, state: dict[str, torch.Tensor]) -> None:
        """Strict loading of everything but the frozen prefixes (missing/unexpected -> error)."""
        expected = {k for k in self.state_dict() if not k.startswith(self.frozen_prefixes)}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise KeyError(f"checkpoint does not fit {type(self).__name__}: missing "
                           f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                           f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
