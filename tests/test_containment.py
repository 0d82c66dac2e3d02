"""Nothing is written or deleted outside the output roots (utils/safe_paths.py, artifacts.py)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from lmcompress.utils.artifacts import MARKER, export, publish, publish_target
from lmcompress.utils.safe_paths import PathEscapeError, inside


def test_inside_accepts_names_and_paths_that_stay_below_the_root(tmp_path):
    root = tmp_path / "teachers"
    assert inside(root, "glue_sst2", "publish_as") == root / "glue_sst2"
    assert inside(root, "dynabert/w0.50", "publish_as") == root / "dynabert" / "w0.50"
    (tmp_path / "real").mkdir()
    link = tmp_path / "linked_root"
    link.symlink_to(tmp_path / "real")  # the root itself may be a symlink (outputs -> /scratch)
    assert inside(link, "x", "k") == link / "x"


@pytest.mark.parametrize("name", ["/etc/passwd", "../escaped", "a/../../escaped", ".", "", "  "])
def test_inside_refuses_absolute_dotdot_and_the_root_itself(tmp_path, name):
    with pytest.raises(PathEscapeError, match=r"publish_as="):
        inside(tmp_path / "teachers", name, "publish_as")


def test_inside_refuses_a_symlink_pointing_out(tmp_path):
    root, outside = tmp_path / "teachers", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "planted").symlink_to(outside)
    with pytest.raises(PathEscapeError, match=r"publish_as=planted/x: resolves to .*elsewhere"):
        inside(root, "planted/x", "publish_as")
    with pytest.raises(PathEscapeError, match="not inside"):
        inside(root, "planted", "publish_as")


@pytest.mark.parametrize("name", ["../../outside", "{tmp}/outside"])
def test_publish_as_outside_the_teachers_folder_is_refused_before_training(make_cfg, tmp_path,
                                                                           name):
    from lmcompress.run import run_stage

    name = name.format(tmp=tmp_path)
    cfg = make_cfg("teacher", f"publish_as={name}")
    with pytest.raises(PathEscapeError, match=r"publish_as=.*not inside|publish_as=.*absolute"):
        run_stage(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
    assert not (tmp_path / "outside").exists()


def _export(folder: Path) -> Path:
    folder.mkdir(mode=0o700)
    (folder / "model.safetensors").write_bytes(b"weights")
    os.chmod(folder / "model.safetensors", 0o600)
    return folder


def test_overwrite_replaces_only_an_earlier_publication(tmp_path):
    artifacts = tmp_path / "artifacts"
    own = artifacts / "teachers" / "someones_model"
    own.mkdir(parents=True)
    (own / "notes.txt").write_text("not an lmcompress publication")
    with pytest.raises(FileExistsError, match=rf"not published by lmcompress \(no {MARKER}"):
        publish_target(str(artifacts), "someones_model", overwrite=True)
    assert (own / "notes.txt").read_text() == "not an lmcompress publication"

    target = publish_target(str(artifacts), "teacher_a", overwrite=False)
    publish(str(_export(tmp_path / "export1")), target)
    assert (target / MARKER).is_file()
    with pytest.raises(FileExistsError, match="publish_overwrite=true to replace it"):
        publish_target(str(artifacts), "teacher_a", overwrite=False)
    again = publish_target(str(artifacts), "teacher_a", overwrite=True)
    (tmp_path / "export2").mkdir()
    (tmp_path / "export2" / "model.safetensors").write_bytes(b"new weights")
    publish(str(tmp_path / "export2"), again)
    assert (target / "model.safetensors").read_bytes() == b"new weights"


def test_published_files_get_the_umask_not_the_exports_mode(tmp_path):
    old = os.umask(0o022)
    try:
        target = publish_target(str(tmp_path / "artifacts"), "teacher_m", overwrite=False)
        publish(str(_export(tmp_path / "export")), target)
    finally:
        os.umask(old)
    assert stat.S_IMODE((target / "model.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((target / MARKER).stat().st_mode) == 0o644
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


class _Saved:
    def __init__(self, log: list[Path]):
        self.log = log

    def save_pretrained(self, folder: Path) -> None:
        self.log.append(Path(folder))


def test_export_refuses_a_sub_model_name_outside_export(tmp_path):
    saved: list[Path] = []

    class Module:
        def export_models(self):
            return {"w0.50_d1.00": _Saved(saved), "../../escaped": _Saved(saved)}

    with pytest.raises(PathEscapeError, match=r"sub-model name=../../escaped"):
        export(Module(), _Saved([]), tmp_path / "run")
    assert saved == [tmp_path / "run" / "export" / "w0.50_d1.00"]


def test_recipe_step_names_are_checked_before_the_first_step_runs(tmp_path, monkeypatch):
    from lmcompress import recipe

    calls = []
    monkeypatch.setattr(recipe.subprocess, "run", lambda *a, **k: calls.append(a) or
                        subprocess.CompletedProcess(a, 1))
    steps = {"teacher": {"config": "teacher"}, "../../escaped": {"config": "distill"}}
    with pytest.raises(PathEscapeError, match=r"recipe step=../../escaped"):
        recipe.run_steps({"steps": steps}, tmp_path / "out")
    assert calls == []


def test_recipe_name_stays_under_outputs_recipes(tmp_path, monkeypatch, capsys):
    from lmcompress import recipe

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump({"name": "/tmp/evil", "steps": {"a": {"config": "teacher"}}}))
    assert recipe.main([str(path), "--dry-run"]) == 2  # refused with a message, no traceback
    assert "evil.yaml: name=/tmp/evil: an absolute path" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def test_a_recipe_writes_under_the_output_root_not_the_current_folder(tmp_path, monkeypatch,
                                                                       capsys):
    from lmcompress import recipe

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMCOMPRESS_OUTPUT_DIR", str(tmp_path / "root"))
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "steps": {"a": {"config": "teacher"}}}))
    assert recipe.main([str(path), "--dry-run"]) == 0
    assert f"hydra.run.dir={tmp_path / 'root' / 'recipes' / 'r' / 'a'}" in capsys.readouterr().out
