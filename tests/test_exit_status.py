"""The exit status and the run folder tell the truth: a signal or an error is a failure."""

from __future__ import annotations

import json
import os
import signal

import pytest

from helpers.cli import REPO, TINY, run_cli
from lmcompress.run import run_stage

KILLER = "+callbacks.killer._target_=helpers.signals.SignalAtStep"


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_during_fit_fails_the_stage_with_128_plus_signum(make_cfg, signum):
    cfg = make_cfg("teacher", "data.batch_size=8", KILLER, "+callbacks.killer.step=2",
                   f"+callbacks.killer.signum={signum}")
    with pytest.raises(SystemExit) as caught:
        run_stage(cfg)
    number = signal.Signals[signum].value
    assert caught.value.code == 128 + number
    out = cfg.paths.output_dir
    status = json.loads(open(f"{out}/status.json").read())
    assert status == {"status": "failed", "reason": f"interrupted by {signum}",
                      "signal": signum, "exit_code": 128 + number}
    assert not os.path.exists(f"{out}/metrics.json")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_sigterm_lightning_saw_after_its_last_check_still_fails_the_stage(make_cfg):
    cfg = make_cfg("teacher", "+callbacks.late._target_=helpers.signals.LateSigterm")
    with pytest.raises(SystemExit) as caught:
        run_stage(cfg)
    assert caught.value.code == 128 + signal.SIGTERM
    assert not os.path.exists(f"{cfg.paths.output_dir}/metrics.json")


def test_lightnings_sigterm_exit_is_mapped_to_a_failure():
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from lmcompress.utils.task_wrapper import failure_record

    record = failure_record(SIGTERMException())  # status None: would exit 0
    assert record["signal"] == "SIGTERM" and record["exit_code"] == 128 + signal.SIGTERM
    assert failure_record(SystemExit(0))["exit_code"] == 1


def test_an_error_writes_status_failed_and_success_writes_ok(make_cfg, tmp_path):
    cfg = make_cfg("teacher", "trainer.limit_train_batches=0")
    with pytest.raises(ValueError, match="plans no optimizer step"):
        run_stage(cfg)
    status = json.loads((tmp_path / "run0_teacher" / "status.json").read_text())
    assert status["status"] == "failed" and status["signal"] is None
    assert status["reason"].startswith("ValueError: trainer.limit_train_batches=0 plans")
    assert not (tmp_path / "run0_teacher" / "metrics.json").exists()

    # the same folder, now successful: the stale failure is replaced
    ok = make_cfg("teacher", run_dir=tmp_path / "run0_teacher")
    assert run_stage(ok)["status"] == "ok"
    status = json.loads((tmp_path / "run0_teacher" / "status.json").read_text())
    assert status == {"status": "ok"}
    metrics = json.loads((tmp_path / "run0_teacher" / "metrics.json").read_text())
    assert metrics["status"] == "ok"


@pytest.mark.slow
def test_sigterm_gives_the_cli_a_nonzero_exit_status(tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    proc = run_cli("-cn", "teacher", *TINY, "data.batch_size=8", KILLER,
                   "+callbacks.killer.step=2", f"hydra.run.dir={tmp_path}", env=env)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    assert "interrupted by SIGTERM" in proc.stderr + proc.stdout
    assert json.loads((tmp_path / "status.json").read_text())["signal"] == "SIGTERM"
    assert not (tmp_path / "metrics.json").exists()
