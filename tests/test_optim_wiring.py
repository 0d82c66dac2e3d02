"""module.optim.lr and warmup_ratio decide the learning rate of every optimizer step.

Expected values are the schedule written out here: linear warm-up from 0 over
``int(warmup_ratio * total)`` steps, then linear decay to 0 at ``total`` (the schedule
that ``TaskModule.configure_optimizers`` documents).
"""

from __future__ import annotations

import pytest

from helpers.spy import SPY, Spy
from lmcompress.run import run_stage


@pytest.mark.parametrize(("lr", "warmup_ratio"), [(1e-3, 0.25), (4e-4, 0.0)])
def test_each_step_uses_the_scheduled_learning_rate(make_cfg, lr, warmup_ratio):
    # 64 examples / batch 16 = 4 steps per epoch, 2 epochs: 8 steps
    cfg = make_cfg("teacher", "task.source.n_train=64", "data.batch_size=16",
                   "trainer.max_epochs=2", f"module.optim.lr={lr}",
                   f"module.optim.warmup_ratio={warmup_ratio}", "export=false", "test=false",
                   "callbacks.best=null", "callbacks.last=null", SPY)
    run_stage(cfg)
    total, warmup = 8, int(warmup_ratio * 8)
    expected = [lr * k / warmup if k < warmup else lr * (total - k) / (total - warmup)
                for k in range(total)]
    seen = Spy.last().lrs
    assert len(seen) == total
    for step, (groups, value) in enumerate(zip(seen, expected, strict=True)):
        assert groups == pytest.approx([value] * len(groups), rel=1e-9, abs=1e-15), step
