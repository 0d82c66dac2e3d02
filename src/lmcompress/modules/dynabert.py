"""Stage ``dynabert``: width- then width×depth-adaptive distillation (Hou et al., NeurIPS 2020).

Hou, Huang, Shang, Jiang, Chen & Liu, "DynaBERT: Dynamic BERT with Adaptive Width and Depth",
arXiv:2004.04037; docs/dynabert.md. Two phases, each its own run chained by path:

- ``phase=width``: the student is a copy of the fine-tuned teacher, rewired by head and neuron
  importance (computed on a slice of *train* on the training device, the same slice on every
  rank, before the first step); every batch trains each width of ``widths`` at full depth.
- ``phase=width_depth``: teacher and student start from the width phase's full model
  (``export/w1.00_d1.00``); every batch trains the whole ``widths × depths`` grid, each
  sub-network against the teacher's layers matched by the kept-layer rule.

Per batch the teacher runs once; each sub-network's loss is back-propagated in turn and the
gradients accumulate before one clipped optimizer step (under DDP: without synchronising, then
one all-reduce, ``modules/grad_sync.py``; docs/launch.md). The objective is any registered
``loss`` preset: ``dynabert_w`` / ``dynabert_wd`` (the original soft CE + hidden MSE with the
official λ per phase), ``dynabert_ckd`` (CKD relations instead of the hidden MSE), or a mix.
Every sub-network is evaluated (``val/<metric>/w0.50_d0.75``) and exported as a physically
smaller model (``export/w0.50_d0.75``); ``val/<metric>`` is their aggregate (``aggregate``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import torch

from lmcompress.losses import Objective, TermInputs, counts_across_ranks
from lmcompress.models.dynabert import (
    check_exportable,
    compute_importance,
    dynabert_layer_map,
    extract_subnetwork,
    make_dynamic,
    rewire,
    set_subnet,
    subnet,
    subnet_shape,
)
from lmcompress.models.dynabert.parity import parity_record
from lmcompress.models.teacher import build_teacher
from lmcompress.modules.base import NonFiniteLossError, TaskModule
from lmcompress.modules.frozen_teacher import FrozenTeacher
from lmcompress.modules.grad_sync import reduce_gradients
from lmcompress.specs import ImportanceSpec, TeacherSpec, parse

log = logging.getLogger(__name__)
PHASES = ("width", "width_depth")


def subnet_name(width: float, depth: float) -> str:
    """``w0.50_d0.75``: the metric suffix and export folder of a sub-network."""
    return f"w{width:.2f}_d{depth:.2f}"


class DynaBertModule(FrozenTeacher, TaskModule):
    """DynaBERT training of a BERT-family student over a grid of (width, depth) sub-networks.

    Args:
        teacher: the frozen teacher (``TeacherSpec``); the student starts as its copy.
        task: the task config.
        loss: the objective applied to every sub-network (registry terms).
        optim: optimizer settings.
        phase: ``width`` | ``width_depth`` (see the module docstring).
        widths: width multipliers in (0, 1], trained widest first.
        depths: depth multipliers in (0, 1]. The grid ``widths × depths`` is evaluated and
            exported; the ``width`` phase trains its depth-1.0 row only.
        importance: ``{split, examples, mode}``: where head/neuron importance is computed
            (default a slice of ``train``: dev would also select checkpoints), how many examples,
            and ``clean`` or the official cumulative-gradient ``mode``.
        rewire: reorder heads and neurons by importance before training (``width`` phase).
        clip_grad_norm: gradient-norm clipping of the accumulated step (manual optimization).
        aggregate: how the sub-networks' dev metrics combine into ``val/<metric>``.

    The defaults of everything after ``optim`` are ``DynaBertSpec``'s (specs.py), which
    ``conf/module/dynabert.yaml`` starts from (``schema/dynabert``, lmcompress/schemas.py).
    """

    published_submodel = "w1.00_d1.00"
    """What ``publish_as`` copies: the full model, the next phase's teacher."""

    def __init__(self, teacher: dict[str, Any], task: dict[str, Any], loss: dict[str, Any],
                 optim: dict[str, Any], phase: str, widths: list[float], depths: list[float],
                 importance: dict[str, Any], rewire: bool, clip_grad_norm: float | None,
                 aggregate: str):
        super().__init__(task, optim, aggregate)
        if phase not in PHASES:
            raise ValueError(f"module.phase={phase!r}: choose from {PHASES}")
        self.phase, self.clip_grad_norm, self.rewire = phase, clip_grad_norm, rewire
        self.importance = dataclasses.asdict(
            parse(ImportanceSpec, importance, "module.importance"))
        self.automatic_optimization = False  # every sub-network's backward, then one step
        self.teacher_spec = parse(TeacherSpec, teacher, "teacher")
        self.objective = Objective.from_config(loss)
        self.teacher = build_teacher(self.teacher_spec, self.task).requires_grad_(False).eval()
        self.model = make_dynamic(copy.deepcopy(self.teacher)).requires_grad_(True).train()
        self.objective.check_models(self.teacher.config, self.model.config)
        self.grid = self._grid(list(widths), list(depths))
        self.train_grid = [(w, d) for w, d in self.grid if phase == "width_depth" or d == 1.0]
        if not self.train_grid:
            raise ValueError("module.phase=width trains depth 1.0: add 1.0 to module.depths")
        self.rewired = phase == "width_depth" or not rewire  # width_depth starts rewired

    def _grid(self, widths: list[float], depths: list[float]) -> list[tuple[float, float]]:
        """(width, depth) pairs, deepest then widest first; each refused by value if unusable."""
        if not widths or not depths:
            raise ValueError("module.widths and module.depths must not be empty")
        depths = sorted(set(depths), reverse=True)
        widths = sorted(set(widths), reverse=True)
        for width, depth in itertools.product(widths, depths):
            try:
                subnet_shape(self.model.config, width, depth)
                dynabert_layer_map(self.teacher.config.num_hidden_layers, depth)
                check_exportable(self.model, width, depth)  # else refused after training
            except ValueError as err:
                raise ValueError(f"module.widths/depths: ({width}, {depth}): {err}") from err
        return [(w, d) for d in depths for w in widths]

    # -- sub-models -----------------------------------------------------------------------------
    def subnets(self) -> list[str]:
        return [subnet_name(w, d) for w, d in self.grid]

    @contextlib.contextmanager
    def subnet(self, name: str) -> Iterator[None]:
        width, depth = dict(zip(self.subnets(), self.grid, strict=True))[name]
        with subnet(self.model, width, depth):
            yield

    def export_models(self) -> dict[str, torch.nn.Module]:
        """Every sub-network of the grid as a physically smaller model."""
        return {subnet_name(w, d): extract_subnetwork(self.model, w, d) for w, d in self.grid}

    def parity(self, name: str, folder) -> dict[str, Any]:
        """``parity.json`` of sub-network ``name`` exported to ``folder`` (docs/dynabert.md §7)."""
        width, depth = dict(zip(self.subnets(), self.grid, strict=True))[name]
        return parity_record(self.model, folder, width, depth)

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Every sub-network's backward with DDP's sync off, one all-reduce, one step."""
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        teacher = self.teacher_outputs(batch) if self.objective.needs_teacher else None
        num_layers = self.teacher.config.num_hidden_layers
        totals, parts_of = [], {}
        no_sync = getattr(self.trainer.strategy, "block_backward_sync", contextlib.nullcontext)
        with no_sync():  # DDP: no all-reduce per sub-network
            for width, depth in self.train_grid:
                name = subnet_name(width, depth)
                set_subnet(self.model, width, depth)
                student = self(batch, output_hidden_states=self.objective.needs_hidden)
                inputs = TermInputs(student, teacher, batch, self.kind,
                                    dynabert_layer_map(num_layers, depth))
                with counts_across_ranks(self.trainer.world_size > 1):  # docs/ckd.md §13
                    total, parts = self.objective(inputs)
                self.manual_backward(total)  # frees this sub-network's graph before the next
                totals.append(total.detach())
                parts_of[name] = {k: v.detach() for k, v in parts.items()}
                self.log(f"train/loss/{name}", total.detach())
        set_subnet(self.model, 1.0, 1.0)
        stacked = torch.stack(totals)
        bad = reduce_gradients([p for p in self.model.parameters() if p.requires_grad],
                               (~torch.isfinite(stacked)).float(), self.trainer.world_size)
        self.check_grid_finite(stacked, bad, parts_of)  # one host sync, the same on every rank
        optimizer.step()  # clipped in on_before_optimizer_step (after fp16 unscaling)
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        loss = stacked.mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def check_grid_finite(self, totals: torch.Tensor, bad: torch.Tensor,
                          parts_of: dict[str, dict[str, torch.Tensor]]) -> None:
        """Stop every rank at once when any rank's sub-network loss went non-finite."""
        if not bool(bad.any()):
            return
        names = list(parts_of)
        for i in torch.nonzero(bad).flatten().tolist():
            if not bool(torch.isfinite(totals[i])):  # this rank's own loss: name its terms
                self.check_finite(totals[i], parts_of[names[i]], where=f" ({names[i]})")
        raise NonFiniteLossError(
            f"step {self.global_step}: another process's loss went non-finite for "
            f"{[names[i] for i in torch.nonzero(bad).flatten().tolist()]}; stopping every "
            "process before anything is exported (lower module.optim.lr)")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip here: under fp16 Lightning has unscaled the gradients by now, not before."""
        if self.clip_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.clip_grad_norm,
                                gradient_clip_algorithm="norm")

    # -- rewiring before the first step ---------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        resuming = getattr(self.trainer, "ckpt_path", None) is not None
        if self.rewired or resuming:
            return
        split, examples = self.importance["split"], int(self.importance["examples"])
        # on the device the run trains on (the strategy has not moved the model yet), and on
        # the same first examples on every rank, unsharded: every rank rewires as one process
        # would (and DDP then broadcasts rank 0's weights to the others anyway)
        device = self.trainer.strategy.root_device
        self.model.to(device)
        loader = self.trainer.datamodule.eval_dataloader(split, shard=False)
        batches, seen = [], 0
        for batch in loader:
            if seen >= examples:
                break
            batches.append({k: v.to(device) for k, v in batch.items() if k != "index"})
            seen += len(batch["input_ids"])
        heads, neurons = compute_importance(self.model, batches, self.kind,
                                            self.importance["mode"])
        rewire(self.model, heads, neurons)
        self.rewired = True
        log.info("rewired heads and FFN neurons by importance on %d %s examples (%s mode)",
                 seen, split, self.importance["mode"])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["dynabert_rewired"] = self.rewired

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.rewired = checkpoint.get("dynabert_rewired", self.rewired)
