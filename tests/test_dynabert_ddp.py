"""DynaBERT's optimization path as DDP and fp16 need it (issue 19; docs/launch.md).

The two-process runs are in tests/test_ddp_equivalence.py; these are the single-process checks:
where clipping acts under fp16, where and on what importance is computed, and that a
non-finite loss on another rank stops this one too.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lmcompress.modules.base import NonFiniteLossError
from lmcompress.utils.instantiate import instantiate_plain

TINY_DYNA = ["teacher=tiny", "teacher.config.num_attention_heads=4", "data.batch_size=16",
             "task.source.n_train=16", "test=false", "export=false", "module.widths=[1.0,0.5]"]


def test_fp16_clips_the_unscaled_gradients(make_cfg):
    """Under fp16 the step sees a gradient norm of clip_grad_norm, not clip / loss scale."""
    import pytorch_lightning as pl
    from pytorch_lightning.plugins.precision import MixedPrecision

    from helpers.step_grads import StepGrads

    clip = 1e-3  # far below the real norm, so every step is clipped
    cfg = make_cfg("dynabert", *TINY_DYNA, f"module.clip_grad_norm={clip}")
    module = instantiate_plain(cfg.module)
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    # Lightning gives a CPU fp16 run no scaler: give it one, as on a GPU (scale 2**16)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[StepGrads()],
                         plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
                         default_root_dir=cfg.paths.output_dir)
    trainer.fit(module, datamodule=datamodule)
    assert StepGrads.norms, "no optimizer step ran (the scaler skipped every step?)"
    for norm in StepGrads.norms:
        assert norm == pytest.approx(clip, rel=1e-2)  # before: about clip / 65536


class _Stop(Exception):
    pass


def test_importance_runs_on_the_training_device_over_the_unsharded_split(make_cfg, monkeypatch):
    """Rank 1 of 2 on a (stand-in) accelerator: importance on that device, the whole slice."""
    import lmcompress.modules.dynabert as dyna

    cfg = make_cfg("dynabert", *TINY_DYNA, "module.importance.examples=12",
                   "data.eval_batch_size=8")
    module = instantiate_plain(cfg.module)
    datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
    datamodule.validate()
    seen = {}

    def spy(model, batches, kind, mode):
        seen["device"] = next(model.parameters()).device.type
        seen["sizes"] = [len(b["input_ids"]) for b in batches]
        seen["first"] = batches[0]["input_ids"].device.type
        raise _Stop

    monkeypatch.setattr(dyna, "compute_importance", spy)
    trainer = SimpleNamespace(world_size=2, global_rank=1, datamodule=datamodule, ckpt_path=None,
                              strategy=SimpleNamespace(root_device=torch.device("meta")))
    datamodule.trainer = trainer
    monkeypatch.setattr(type(module), "trainer", property(lambda self: trainer))
    with pytest.raises(_Stop):
        module.setup("fit")
    # the first 12 of the split in global batches of 8, as one process would see them
    assert seen == {"device": "meta", "sizes": [8, 8], "first": "meta"}


def test_a_non_finite_loss_on_another_rank_stops_this_one(make_cfg):
    cfg = make_cfg("dynabert", *TINY_DYNA)
    module = instantiate_plain(cfg.module)
    totals = torch.tensor([0.5, 0.7])
    parts = {"w1.00_d1.00": {"kd": totals[0]}, "w0.50_d1.00": {"kd": totals[1]}}
    module.check_grid_finite(totals, torch.zeros(2), parts)  # nothing bad anywhere
    with pytest.raises(NonFiniteLossError, match=r"another process.*w0.50_d1.00"):
        module.check_grid_finite(totals, torch.tensor([0.0, 1.0]), parts)
    with pytest.raises(NonFiniteLossError, match=r"w1.00_d1.00.*kd=nan"):
        module.check_grid_finite(torch.tensor([float("nan"), 0.7]), torch.tensor([1.0, 0.0]),
                                 {"w1.00_d1.00": {"kd": torch.tensor(float("nan"))},
                                  "w0.50_d1.00": {"kd": totals[1]}})


def test_teacher_and_distill_stop_every_rank_on_another_rank_s_bad_loss(make_cfg, monkeypatch):
    """The automatic-optimization stages all-reduce a finite flag before the backward."""
    module = instantiate_plain(make_cfg("teacher").module)
    reduced = []

    def reduce(flag, reduce_op):
        reduced.append(float(flag))
        return flag + 1  # what the other rank, whose loss was nan, adds

    trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(reduce=reduce))
    monkeypatch.setattr(type(module), "trainer", property(lambda self: trainer))
    with pytest.raises(NonFiniteLossError, match="another process"):
        module.check_finite_on_every_rank(torch.tensor(0.5))
    assert reduced == [0.0]
