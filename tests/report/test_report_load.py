"""Loading sweep folders: one row per job / sub-model, failed and never-started jobs listed."""

from __future__ import annotations

from fake_sweeps import ERROR, job_metrics, mrpc_sweep, write_job, write_multirun

from lmcompress.report.load import last_error, load_jobs, open_problems, sweep_plan


def test_rows_have_swept_keys_metrics_and_model_stats(tmp_path):
    jobs, _ = load_jobs([mrpc_sweep(tmp_path)], derive={"student": "{num_layers}L/{hidden_size}"})
    assert len(jobs) == 6
    first = jobs.iloc[0]
    assert (first["job"], first["loss"], first["seed"], first["trainer.max_epochs"]) == (
        "0", "kd", 1, "1")
    assert first["val/f1"] == 0.80 and first["params_total"] == 17_000_000
    assert first["latency_ms_b1"] == 17.0 and first["wall_time_s"] == 61.0
    assert set(jobs["student"]) == {"3L/384"}
    assert jobs["job"].tolist() == ["0", "1", "2", "4", "5", "6"]


def test_failed_and_never_started_jobs_are_listed(tmp_path):
    _, problems = load_jobs([mrpc_sweep(tmp_path)])
    failed, missing = problems.to_dict("records")
    assert failed["job"] == "3" and failed["status"].startswith("failed")
    assert failed["error"] == ERROR
    assert failed["overrides"] == "loss=kd seed=4 trainer.max_epochs=1"
    assert missing["job"] == "7" and missing["status"] == "planned, never started"
    assert missing["overrides"] == "loss=kd_ckd seed=4 trainer.max_epochs=1"


def test_jobs_finished_by_a_second_multirun_are_marked_re_run(tmp_path):
    sweep = mrpc_sweep(tmp_path)
    # the missing kd_ckd seed 4 (not the failed kd seed 4) run again with the same sweep config
    rest = tmp_path / "rest"
    write_multirun(rest, {"loss": "kd,kd_ckd", "seed": "range(1,5)"},
                   ["trainer.max_epochs=1", "loss=kd_ckd", "seed=4"])
    write_job(rest, 0, ["loss=kd_ckd", "seed=4", "trainer.max_epochs=1"],
              job_metrics(4, {"val/f1": 0.84}))
    other = tmp_path / "other"   # the same overrides from another sweep config: not a re-run
    write_multirun(other, {"seed": "4"}, ["loss=kd", "trainer.max_epochs=1"],
                   config_dir=tmp_path / "elsewhere")
    write_job(other, 0, ["seed=4", "loss=kd", "trainer.max_epochs=1"],
              job_metrics(4, {"val/f1": 0.80}))
    jobs, problems = load_jobs([sweep, rest, other])
    assert len(jobs) == 8
    by_job = {row["job"]: row for row in problems.to_dict("records")}
    assert by_job["7"]["status"] == "re-run" and by_job["7"]["error"] == f"finished in {rest}/0"
    assert by_job["3"]["status"] == "failed or still running"
    assert open_problems(problems)["job"].tolist() == ["3"]


def test_plan_is_the_basic_sweepers_grid(tmp_path):
    plan = sweep_plan(mrpc_sweep(tmp_path))
    assert plan.swept == ["loss", "seed"]
    assert len(plan.jobs) == 8
    assert plan.jobs[3] == ("loss=kd", "seed=4", "trainer.max_epochs=1")
    # a command-line sweep is swept too, and replaces the config's value in place
    write_multirun(tmp_path / "b", {"loss": "kd", "seed": "1"}, ["loss=ce,kd", "+lr=1e-4,2e-4"])
    plan = sweep_plan(tmp_path / "b")
    assert plan.swept == ["loss", "seed", "lr"]
    assert plan.jobs[:2] == [("loss=ce", "seed=1", "+lr=0.0001"),
                             ("loss=ce", "seed=1", "+lr=0.0002")]


def test_unexpandable_plan_is_reported_not_guessed(tmp_path):
    sweep = tmp_path / "optuna"
    write_multirun(sweep, {"lr": "interval(1e-5,1e-3)"},
                   target="hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    write_job(sweep, 0, ["lr=0.0001"], job_metrics(1, {"val/f1": 0.5}))
    assert sweep_plan(sweep) is None
    _, problems = load_jobs([sweep])
    assert problems["status"].tolist() == ["plan not expanded"]
    write_multirun(tmp_path / "glob", {"task": "glob(glue/*)"})  # needs the config to expand
    assert sweep_plan(tmp_path / "glob") is None


def test_submodels_give_one_row_each(tmp_path):
    entries = {name: {"val": {"val/accuracy": acc}, "test": {},
                      "model": {"params_total": params, "num_layers": layers, "hidden_size": 768}}
               for name, acc, params, layers in [("w1.00_d1.00", 0.90, 110e6, 12),
                                                 ("w0.50_d0.50", 0.85, 40e6, 6)]}
    val = {"val/accuracy/w1.00_d1.00": 0.90, "val/accuracy/w0.50_d0.50": 0.85}
    write_job(tmp_path, 0, ["seed=1"], job_metrics(1, val, submodels=entries))
    jobs, problems = load_jobs([tmp_path])
    assert problems.empty
    assert jobs[["subnet", "val/accuracy", "params_total"]].values.tolist() == [
        ["w1.00_d1.00", 0.90, 110e6], ["w0.50_d0.50", 0.85, 40e6]]
    assert jobs[["width", "depth"]].values.tolist() == [[1.0, 1.0], [0.5, 0.5]]


def test_last_error_without_exception(tmp_path):
    log = tmp_path / "run.log"
    assert last_error(log) == "no run.log"
    log.write_text("[x][lmcompress][INFO] - epoch 1\n[x][lmcompress][INFO] - step 40\n")
    assert last_error(log) == "no error logged; last line: [x][lmcompress][INFO] - step 40"
