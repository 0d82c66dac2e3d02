"""Recipe bookkeeping with fake steps: failures name their signal and reason, a step counts as
done only if it finished with the current config, AMoC steps print AMoC's choice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from lmcompress import recipe as recipe_module

RECIPE = {"overrides": ["logger=csv"], "steps": {
    "teacher": {"config": "teacher", "overrides": ["trainer.max_epochs=1"]},
    "student": {"config": "distill", "overrides": ["teacher.name_or_path={teacher:export_dir}"]},
}}


class FakeRuns:
    """Stands in for ``python -m lmcompress.run``: writes what a run would, returns its status."""

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.behaviour: dict[str, tuple[int, dict | None]] = {}
        monkeypatch.setattr(recipe_module, "run_child", self)

    def __call__(self, command: list[str]) -> int:
        folder = Path(next(c for c in command if c.startswith("hydra.run.dir=")).split("=", 1)[1])
        name = folder.name
        self.calls.append(name)
        code, status = self.behaviour.get(name, (0, None))
        folder.mkdir(parents=True, exist_ok=True)
        if status is not None:
            (folder / "status.json").write_text(json.dumps(status))
        elif code == 0:
            (folder / "metrics.json").write_text(json.dumps({
                "main_metric": "val/accuracy", "val": {"val/accuracy": 0.5},
                "export_dir": str(folder / "export"), "run": len(self.calls)}))
        return code


def _run(recipe: dict, out: Path, capsys) -> tuple[int, str]:
    path = out.parent / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    code = recipe_module.main([str(path), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_step_stopped_by_a_signal_is_reported_with_it(monkeypatch, tmp_path, capsys):
    fake = FakeRuns(monkeypatch)
    fake.behaviour["teacher"] = (143, {"status": "failed", "reason": "interrupted by SIGTERM",
                                       "signal": "SIGTERM", "exit_code": 143})
    code, text = _run(RECIPE, tmp_path / "out", capsys)
    assert code == 143 and fake.calls == ["teacher"], text
    assert "step 'teacher' failed (signal SIGTERM): interrupted by SIGTERM" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(("code", "expected", "status"), [
    (-signal.SIGKILL, "(signal SIGKILL)", 128 + signal.SIGKILL),  # no chance to write anything
    (0, "(exit status 0): no metrics.json written", 1),
    (1, "(exit status 1): ValueError: bad key", 1),
])
def test_every_kind_of_failure_is_a_failure(monkeypatch, tmp_path, capsys, code, expected,
                                            status):
    fake = FakeRuns(monkeypatch)
    written = {"status": "failed", "reason": "ValueError: bad key", "signal": None}
    fake.behaviour["teacher"] = (code, written if code == 1 else {})
    result, text = _run(RECIPE, tmp_path / "out", capsys)
    assert result == status and f"step 'teacher' failed {expected}" in text


def test_finished_steps_with_the_same_config_are_skipped_an_unfinished_one_reruns(
        monkeypatch, tmp_path, capsys):
    fake = FakeRuns(monkeypatch)
    fake.behaviour["student"] = (130, {"status": "failed", "reason": "interrupted by SIGINT",
                                       "signal": "SIGINT"})
    assert _run(RECIPE, tmp_path / "out", capsys)[0] == 130
    fake.behaviour.clear()
    code, text = _run(RECIPE, tmp_path / "out", capsys)
    assert code == 0 and fake.calls == ["teacher", "student", "student"]
    assert "teacher: done" in text and "student: val/accuracy = 0.5" in text
    code, text = _run(RECIPE, tmp_path / "out", capsys)
    assert code == 0 and len(fake.calls) == 3 and text.count("skipped") == 2


def test_a_step_stored_with_another_config_is_refused_naming_the_keys(monkeypatch, tmp_path,
                                                                      capsys):
    fake = FakeRuns(monkeypatch)
    assert _run(RECIPE, tmp_path / "out", capsys)[0] == 0
    changed = json.loads(json.dumps(RECIPE))
    changed["steps"]["teacher"]["overrides"] = ["trainer.max_epochs=2", "seed=3"]
    code, text = _run(changed, tmp_path / "out", capsys)
    assert code == 2 and len(fake.calls) == 2  # nothing ran
    assert "step 'teacher'" in text and "another config" in text
    assert "seed: <unset> -> 3" in text and "trainer.max_epochs: 1 -> 2" in text


def test_a_step_whose_input_was_rerun_is_refused(monkeypatch, tmp_path, capsys):
    fake = FakeRuns(monkeypatch)
    assert _run(RECIPE, tmp_path / "out", capsys)[0] == 0
    for path in (tmp_path / "out" / "teacher").iterdir():  # the user deletes the teacher
        path.unlink()
    code, text = _run(RECIPE, tmp_path / "out", capsys)
    assert code == 2 and fake.calls == ["teacher", "student", "teacher"]
    assert "step 'student'" in text and "input teacher (its metrics.json)" in text


def test_a_finished_step_without_a_record_is_not_counted(monkeypatch, tmp_path, capsys):
    FakeRuns(monkeypatch)
    (tmp_path / "out" / "teacher").mkdir(parents=True)
    (tmp_path / "out" / "teacher" / "metrics.json").write_text("{}")
    code, text = _run(RECIPE, tmp_path / "out", capsys)
    assert code == 2 and "no recipe_step.json" in text


def test_an_amoc_step_prints_amocs_choice(monkeypatch, tmp_path, capsys):
    FakeRuns(monkeypatch)
    recipe = {"steps": {"amoc": {"config": "amoc"}}}
    selection = tmp_path / "out" / "amoc" / "amoc" / "selection.json"
    selection.parent.mkdir(parents=True)
    selection.write_text(json.dumps({"selections": [
        {"source": "electronics", "target": "movies", "k": 1, "full": 0.9,
         "oracle": {"removed": "5", "target_score": 0.88},
         "amoc": {"removed": "4", "predicted": 0.81, "target_score": 0.86}},
        {"source": "electronics", "target": "movies", "k": 2, "full": 0.9,
         "oracle": {"removed": "4+5", "target_score": 0.8}, "amoc": None}]}))
    code, text = _run(recipe, tmp_path / "out", capsys)
    assert code == 0
    assert ("amoc: electronics->movies k=1: removed layers 4, predicted target score 0.8100, "
            "true 0.8600 (oracle 0.8800, full model 0.9000)") in text
    assert "k=2: no AMoC choice" in text and "val/accuracy" not in text


def test_a_signal_to_the_recipe_is_passed_on_to_the_running_step(tmp_path):
    import os
    import sys
    import threading
    import time

    ready = tmp_path / "ready"
    child = ("import signal, sys, time, pathlib\n"
             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(128 + signal.SIGTERM))\n"
             f"pathlib.Path({str(ready)!r}).touch()\n"
             "time.sleep(20)\n")
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _: received.append(signum))

    def send_when_ready():
        while not ready.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=send_when_ready, daemon=True)
    thread.start()
    try:
        code = recipe_module.run_child([sys.executable, "-c", child])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 128 + signal.SIGTERM and received == []  # the step got it, and stopped


def test_the_generated_recipes_amoc_step_can_select():
    from lmcompress.amoc.candidates import enumerate_candidates
    from lmcompress.amoc.regression import RegressionSpec
    from lmcompress.amoc.select import check_selectable

    recipe = recipe_module.load_recipe(recipe_module.Path(__file__).parents[1] / "recipes" /
                                       "generated_cpu.yaml")
    keys = dict(str(o).split("=", 1) for o in recipe["steps"]["amoc"]["overrides"])
    assert keys["model.name_or_path"] == "{teacher:export_dir}"
    assert "model=minilm_l6" in recipe["steps"]["teacher"]["overrides"]  # 6 layers
    assert keys["targets"] == "tiny"  # two target domains
    budgets = yaml.safe_load(keys["callbacks.amoc.budgets"])
    features = yaml.safe_load(keys.get("callbacks.amoc.regression.features", "null"))
    candidates = enumerate_candidates(6, budgets)
    check_selectable(6, 2, len(candidates), RegressionSpec(features=features))
