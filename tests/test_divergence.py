"""A loss that explodes (finite) stops the run naming step, loss and reference (#16 class 2)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers.cli import TINY, run_cli
from lmcompress.callbacks.divergence import DivergenceCheck, DivergenceError
from lmcompress.run import build_trainer, run_stage


def _feed(check: DivergenceCheck, losses: list[float]) -> int:
    """Feed one loss per batch as Lightning would; returns how many batches passed."""
    trainer = SimpleNamespace(global_step=0, current_epoch=0, world_size=1)
    module = SimpleNamespace(optim_spec=SimpleNamespace(lr=1e3))
    for i, loss in enumerate(losses):
        trainer.global_step = i
        check.on_train_batch_start(trainer, module, None, i)
        try:
            check.on_train_batch_end(trainer, module, {"loss": torch.tensor(loss)}, None, i)
        except DivergenceError:
            return i
    return len(losses)


def test_explosion_within_the_reference_batches_does_not_raise_its_own_bar():
    # a mean of the first 5 losses (~1e4) would put the bar at 1e7 and let 5e4 through
    assert _feed(DivergenceCheck(factor=1000, reference_steps=5), [0.69, 50, 600, 5e4]) == 3


def test_normal_curves_pass_including_a_loss_that_starts_near_zero():
    assert _feed(DivergenceCheck(), [0.7, 0.5, 0.2, 0.05, 0.01, 0.002, 1e-4, 3.0]) == 8
    # a student that starts as its teacher's copy: the floor keeps 1e-6 from being the bar
    assert _feed(DivergenceCheck(min_reference=0.01), [1e-6, 1e-3, 0.5, 2.0]) == 4


def test_message_names_step_loss_reference_and_the_hint():
    check = DivergenceCheck(factor=100, reference_steps=2)
    with pytest.raises(DivergenceError) as err:
        _feed(check, [0.5, 0.4])
        trainer = SimpleNamespace(global_step=7, current_epoch=1, world_size=1)
        module = SimpleNamespace(optim_spec=SimpleNamespace(lr=0.5))
        check.on_train_batch_start(trainer, module, None, 0)
        check.on_train_batch_end(trainer, module, torch.tensor(41.0), None, 0)  # manual opt.
    text = str(err.value)
    for needle in ("step 7", "loss 41", "reference 0.4", "divergence.factor=100",
                   "module.optim.lr (now 0.5)", "divergence=null"):
        assert needle in text, text


def test_a_resumed_run_keeps_its_reference():
    check = DivergenceCheck(factor=10, reference_steps=2)
    _feed(check, [0.5, 0.6])
    resumed = DivergenceCheck(factor=10, reference_steps=2)
    resumed.load_state_dict(check.state_dict())
    assert _feed(resumed, [4.0, 6.0]) == 1  # 6 > 10 x 0.5; a fresh reference would be 4


def test_config_keys_reach_the_trainer_and_null_switches_it_off(make_cfg):
    checks = [c for c in build_trainer(make_cfg("teacher", "divergence.factor=50")).callbacks
              if isinstance(c, DivergenceCheck)]
    assert [c.factor for c in checks] == [50]
    off = build_trainer(make_cfg("teacher", "divergence=null")).callbacks
    assert not [c for c in off if isinstance(c, DivergenceCheck)]
    with pytest.raises(TypeError, match="divergence: unknown key"):
        build_trainer(make_cfg("teacher", "+divergence.factr=5"))


def _nothing_written(out: Path) -> None:
    assert not list(out.glob("**/metrics.json")) and not list(out.glob("**/export"))


def test_tiny_teacher_at_lr_1e3_stops_before_metrics_and_export(make_cfg, tmp_path):
    cfg = make_cfg("teacher", "module.optim.lr=1e3", "trainer.max_epochs=3")
    with pytest.raises(DivergenceError, match=r"training diverged at step \d+ .*now 1000"):
        run_stage(cfg)
    _nothing_written(tmp_path)


def test_dynabert_manual_optimization_is_checked_too(make_cfg, tmp_path):
    cfg = make_cfg("dynabert", "teacher=tiny", "teacher.config.num_attention_heads=4",
                   "data.batch_size=16", "module.optim.lr=1e3", "trainer.max_epochs=3")
    with pytest.raises(DivergenceError, match="training diverged"):
        run_stage(cfg)
    _nothing_written(tmp_path)


@pytest.mark.slow
def test_cli_exits_non_zero_naming_the_divergence(tmp_path):
    proc = run_cli("-cn", "teacher", *TINY, f"paths.log_dir={tmp_path}", "module.optim.lr=1e3",
                   "trainer.max_epochs=3", timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "DivergenceError: training diverged at step" in text, text
    _nothing_written(tmp_path)
