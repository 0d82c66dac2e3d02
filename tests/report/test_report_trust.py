"""Reports cannot mislead (#16 class 7): rows average seeds only, broken files are left out."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml
from fake_sweeps import job_metrics, mrpc_sweep, write_job, write_multirun

from lmcompress.report.__main__ import main
from lmcompress.report.build import build_report
from lmcompress.report.config import load_config
from lmcompress.report.load import UNREADABLE, load_jobs


def _config(tmp_path: Path, **keys) -> Path:
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "plots": [], **keys}))
    return path


def two_learning_rates(root: Path) -> list[Path]:
    """Two multiruns of one seed each, the learning rate set on their command lines."""
    sweeps = []
    for lr, f1 in (("1e-4", 0.80), ("1e-3", 0.60)):
        sweep = root / f"lr{lr}"
        write_multirun(sweep, {"seed": "1"}, [f"module.optim.lr={lr}"])
        write_job(sweep, 0, ["seed=1", f"module.optim.lr={lr}"], job_metrics(1, {"val/f1": f1}))
        sweeps.append(sweep)
    return sweeps


def test_default_rows_split_on_every_override_the_jobs_differ_in(tmp_path):
    report = build_report(two_learning_rates(tmp_path), load_config(), tmp_path / "out")
    assert "| module.optim.lr | n | params (M) | val/f1 |" in report.markdown
    assert "| 1e-4 | 1 | 17.0 | 80.00 |" in report.markdown   # not "n=2, 70.00 ± 14.14"
    assert "| 1e-3 | 1 | 17.0 | 60.00 |" in report.markdown


def test_declared_group_by_that_would_average_two_learning_rates_is_refused(tmp_path, capsys):
    sweeps = two_learning_rates(tmp_path)
    config = _config(tmp_path, group_by=["task"])
    with pytest.raises(ValueError, match=r"row \(task='glue_mrpc'\) would average jobs that "
                                         r"differ in 'module.optim.lr': '1e-4' .* vs '1e-3'"):
        build_report(sweeps, load_config(config), tmp_path / "out")
    with pytest.raises(SystemExit) as exit_:
        main([*map(str, sweeps), "--config", str(config)])
    assert exit_.value.code == 2 and "add 'module.optim.lr' to group_by" in capsys.readouterr().err


def test_jobs_from_different_sweep_configs_are_not_one_row(tmp_path):
    sweeps = []
    for name in ("sweep", "sweep_width"):  # same overrides, different -cn
        sweep = tmp_path / name
        write_multirun(sweep, {"seed": "1,2"}, config_dir=tmp_path / "sweeps" / "ckd")
        (sweep / "multirun.yaml").write_text((sweep / "multirun.yaml").read_text().replace(
            "hydra:\n", f"hydra:\n  job: {{config_name: {name}}}\n", 1))
        for seed in (1, 2):
            write_job(sweep, seed - 1, [f"seed={seed}"], job_metrics(seed, {"val/f1": 0.8}))
        sweeps.append(sweep)
    with pytest.raises(ValueError, match=r"differ in 'sweep_config': 'ckd/sweep' .* "
                                         r"'ckd/sweep_width'"):
        build_report(sweeps, load_config(_config(tmp_path, group_by=["task"])), tmp_path / "o")
    report = build_report(sweeps, load_config(), tmp_path / "out")
    assert "| ckd/sweep | 2 |" in report.markdown and "| ckd/sweep_width | 2 |" in report.markdown


def test_a_seed_twice_in_one_row_is_refused(tmp_path):
    sweep = mrpc_sweep(tmp_path / "a")
    copy = tmp_path / "b"
    shutil.copytree(sweep, copy)
    config = load_config(_config(tmp_path, group_by=["loss"]))
    with pytest.raises(ValueError, match=r"row \(loss='kd'\) has 2 jobs with seed=1: .*a/ckd_mrpc"
                                         r"/0, .*b/0"):
        build_report([sweep, copy], config, tmp_path / "out")


@pytest.mark.parametrize(("text", "reason"), [
    (None, "not valid JSON"),              # half-written: the first half of a real file
    ('{"val": {"val/f1": 0.9}}', "no ['stage', 'seed', 'main_metric']"),
    ("[1, 2]", "a JSON list"),
])
def test_unreadable_metrics_json_is_named_and_left_out(tmp_path, caplog, text, reason):
    sweep = mrpc_sweep(tmp_path)
    path = sweep / "1" / "metrics.json"
    path.write_text(text if text is not None else path.read_text()[:120])
    with caplog.at_level(logging.WARNING):
        jobs, problems = load_jobs([sweep])
    assert "1" not in set(jobs["job"]) and len(jobs) == 5
    row = problems[problems["job"] == "1"].iloc[0]
    assert row["status"] == UNREADABLE and str(path) in row["error"] and reason in row["error"]
    assert str(path) in caplog.text
    report = build_report([sweep], load_config(_config(tmp_path, group_by=["loss"])),
                          tmp_path / "out")
    assert "| kd | 2 |" in report.markdown and UNREADABLE in report.markdown


def test_a_metric_no_job_has_is_an_error_listing_the_known_keys(tmp_path):
    config = _config(tmp_path, group_by=["loss"], metrics=[{"key": "val/f1_score"}])
    with pytest.raises(KeyError, match=r"'val/f1_score' is in no job's metrics.json; the jobs "
                                       r"have: val/accuracy, val/f1"):
        build_report([mrpc_sweep(tmp_path)], load_config(config), tmp_path / "out")


def test_grid_cells_average_seeds_only(tmp_path):
    sweep = tmp_path / "dyna"
    write_multirun(sweep, {"experiment": "dyna,dyna_ckd", "seed": "1"})
    for number, (experiment, acc) in enumerate([("dyna", 0.90), ("dyna_ckd", 0.70)]):
        entries = {"w1.00_d1.00": {"val": {"val/accuracy": acc}, "test": {}}}
        write_job(sweep, number, [f"experiment={experiment}", "seed=1"],
                  job_metrics(1, {"val/accuracy": acc}, submodels=entries))
    grid = {"rows": "width", "columns": "depth"}
    config = _config(tmp_path, group_by=["experiment"], grid=grid,
                     metrics=[{"key": "val/accuracy"}])
    with pytest.raises(ValueError, match=r"row \(width=1.0, depth=1.0\) would average jobs that "
                                         r"differ in 'experiment'.*add 'experiment' to grid.by"):
        build_report([sweep], load_config(config), tmp_path / "out")
    config = _config(tmp_path, group_by=["experiment"], grid={**grid, "by": ["experiment"]},
                     metrics=[{"key": "val/accuracy"}])
    assert "dyna_ckd (n = 1)" in build_report([sweep], load_config(config), tmp_path / "o").markdown
