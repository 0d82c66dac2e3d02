"""What a run keeps on disk (issue 22, item 4): one resumable last.ckpt, the best weights alone,
and ``delete_checkpoints=true`` removing both after a successful export."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lmcompress.run import run_stage


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def test_best_keeps_weights_only_last_keeps_optimizer(make_cfg):
    cfg = make_cfg("teacher")
    result = run_stage(cfg)
    files = sorted(p.name for p in (Path(cfg.paths.output_dir) / "checkpoints").glob("*.ckpt"))
    assert len(files) == 2 and "last.ckpt" in files, files
    best, last = _load(Path(result["best_checkpoint"])), _load(Path(cfg.paths.output_dir)
                                                               / "checkpoints" / "last.ckpt")
    assert "optimizer_states" not in best and best["state_dict"]
    assert last["optimizer_states"]  # resume needs the optimizer's moments
    assert result["checkpoints_deleted"] is False


def test_delete_checkpoints_after_export(make_cfg):
    cfg = make_cfg("teacher", "delete_checkpoints=true")
    run_stage(cfg)
    out = Path(cfg.paths.output_dir)
    assert not (out / "checkpoints").exists()
    assert (out / "export" / "config.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["checkpoints_deleted"] is True


def test_no_export_keeps_checkpoints(make_cfg):
    # without an export the checkpoints are the only copy of the trained weights
    cfg = make_cfg("teacher", "delete_checkpoints=true", "export=false")
    run_stage(cfg)
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()
