"""One process per run folder (utils/run_lock.py); resume=false sets old checkpoints aside."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
from pathlib import Path

import pytest

from lmcompress.utils.run_lock import LOCK_NAME, RunFolderBusy, run_folder_lock


def _write_lock(folder: Path, pid: int, host: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                "started": "2026-12-01T10:00:00+0000"}))
    return lock


@pytest.fixture
def live_pid():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_second_live_process_in_the_same_folder_is_refused(tmp_path, live_pid, monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    lock = _write_lock(tmp_path, live_pid)
    with pytest.raises(RunFolderBusy, match=rf"in use by pid {live_pid} on host "
                       rf"{socket.gethostname()} \(started 2026-12-01T10:00:00"), \
            run_folder_lock(tmp_path):
        pass
    assert json.loads(lock.read_text())["pid"] == live_pid  # the holder's lock is untouched


def test_a_lock_from_another_host_is_honoured(tmp_path, dead_pid):
    _write_lock(tmp_path, dead_pid, host="some-other-node")
    with pytest.raises(RunFolderBusy, match="some-other-node.*if that process is gone, delete"), \
            run_folder_lock(tmp_path):
        pass


def test_a_stale_lock_is_replaced_with_a_warning_and_removed_at_the_end(tmp_path, dead_pid,
                                                                       caplog):
    lock = _write_lock(tmp_path, dead_pid)
    with caplog.at_level(logging.WARNING, logger="lmcompress"), run_folder_lock(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"stale lock of pid {dead_pid}" in caplog.text
    assert not lock.exists()


def test_the_lock_is_released_when_the_stage_fails(tmp_path):
    with pytest.raises(ValueError, match="boom"), run_folder_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).is_file()
        raise ValueError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_other_ddp_ranks_do_not_take_rank_zeros_lock(tmp_path, live_pid, monkeypatch):
    _write_lock(tmp_path, live_pid)  # rank 0 (the launcher) holds the folder
    monkeypatch.setenv("LOCAL_RANK", "1")  # as Lightning's script launcher sets for rank 1
    with run_folder_lock(tmp_path) as lock:
        assert lock is None


def test_run_stage_refuses_a_folder_held_by_a_live_process(make_cfg, live_pid):
    from lmcompress.run import run_stage

    cfg = make_cfg("teacher")
    _write_lock(Path(cfg.paths.output_dir), live_pid)
    with pytest.raises(RunFolderBusy, match=f"pid {live_pid}"):
        run_stage(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_resume_false_sets_earlier_checkpoints_aside(make_cfg, tmp_path, caplog):
    from lmcompress.utils.checkpoints import resume_checkpoint

    run_dir = tmp_path / "used_run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run's checkpoint")
    cfg = make_cfg("teacher", "resume=false", run_dir=run_dir)
    with caplog.at_level(logging.WARNING, logger="lmcompress"):
        assert resume_checkpoint(cfg, "TeacherModule") is None
    assert not (run_dir / "checkpoints").exists()
    (aside,) = run_dir.glob("checkpoints.*")
    assert (aside / "last.ckpt").read_bytes() == b"an earlier run's checkpoint"
    assert "moved the earlier checkpoints" in caplog.text
    # a later resume=true finds no stale last.ckpt to continue from
    assert resume_checkpoint(make_cfg("teacher", run_dir=run_dir), "TeacherModule") is None


def test_other_ddp_ranks_leave_rank_zeros_checkpoints_in_place(make_cfg, tmp_path, monkeypatch):
    from lmcompress.utils.checkpoints import resume_checkpoint

    run_dir = tmp_path / "ddp_run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"rank 0's fresh checkpoint")
    monkeypatch.setenv("LOCAL_RANK", "1")  # rank 1 re-runs the command after rank 0 set aside
    assert resume_checkpoint(make_cfg("teacher", "resume=false", run_dir=run_dir),
                             "TeacherModule") is None
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
