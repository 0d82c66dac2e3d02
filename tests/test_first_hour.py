"""A new user's first hour (issue 22): the bare chain finds each stage's input, one quick switch.

Composition only (no training): each stage's default publish name is the one the next stage's
default teacher reads, and ``+quick=on`` shortens any stage.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lmcompress.models.hub import ModelResolutionError, resolve_model_path
from lmcompress.utils.paths import conf_dir, register_resolvers

register_resolvers()


def _compose(stage: str, *overrides: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            return compose(stage, overrides=["paths.log_dir=/tmp/lmc", *overrides])
    finally:
        GlobalHydra.instance().clear()


def _published_path(cfg) -> Path:
    return Path(cfg.paths.artifact_dir) / "teachers" / cfg.publish_as


def test_bare_teacher_publishes_what_bare_distill_and_dynabert_read():
    teacher = _compose("teacher")
    assert teacher.publish_as and teacher.publish_overwrite is True  # re-running must not fail
    for stage in ("distill", "dynabert"):
        assert Path(_compose(stage).teacher.name_or_path) == _published_path(teacher), stage


def test_bare_dynabert_phase1_publishes_the_phase2_teacher():
    phase1 = _compose("dynabert")
    phase2 = _compose("dynabert", "phase=width_depth",
                      "teacher=generated_dynabert_w")
    assert Path(phase2.teacher.name_or_path) == _published_path(phase1)
    assert phase2.publish_as is None  # phase 2 must not overwrite its own teacher


@pytest.mark.parametrize("overrides", [("task=tiny",), ("model=tiny",),
                                       ("task=glue/sst2",)])
def test_other_teachers_publish_nothing_by_default(overrides):
    # an SST-2 or tiny teacher published as generated_minilm_l6 would mislead the next stage
    assert _compose("teacher", *overrides).publish_as is None


@pytest.mark.parametrize("stage, extra", [
    ("teacher", ()), ("distill", ()), ("dynabert", ()),
    ("dynabert", ("phase=width_depth", "teacher=generated_dynabert_w")),
    ("amoc", ("experiment=amoc_generated",)),
    ("teacher", ("experiment=sst2_teacher_cpu",))])
def test_quick_switch_shortens_any_stage(stage, extra):
    full, quick = _compose(stage, *extra), _compose(stage, *extra, "+quick=on")
    assert full.data.train_limit is None
    assert (quick.data.train_limit, quick.data.eval_limit, quick.trainer.max_epochs) == (
        256, 128, 1)
    assert quick.data.limit_sample is True


def test_missing_published_teacher_names_the_publishing_command(tmp_path):
    with pytest.raises(ModelResolutionError, match="publish_as=generated_minilm_l6"):
        resolve_model_path(str(tmp_path / "teachers" / "generated_minilm_l6"))


def test_dev_line_names_the_mean_and_prints_the_grid():
    from lmcompress.utils.evaluation import dev_lines

    subnets = [f"w{w:.2f}_d{d:.2f}" for w in (1.0, 0.5) for d in (1.0, 0.5)]
    val = {"val/accuracy": 0.6, **{f"val/accuracy/{n}": v for n, v in zip(
        subnets, (0.9, 0.7, 0.5, 0.3), strict=True)}}
    head, columns, *rows = dev_lines(val, subnets)
    assert "mean over 4 sub-networks" in head and "val/accuracy=0.6000" in head
    assert columns.split()[1:] == ["d1.00", "d0.50"]
    assert [r.split() for r in rows] == [["w1.00", "0.9000", "0.7000"],
                                         ["w0.50", "0.5000", "0.3000"]]
    assert dev_lines({"val/accuracy": 0.8}, [""]) == ["dev val/accuracy=0.8000"]


def test_stage_failure_traceback_goes_to_run_log_not_twice_to_console(tmp_path):
    import io
    import logging

    from lmcompress.utils.task_wrapper import task_wrapper

    stream, root = io.StringIO(), logging.getLogger()
    console, file = logging.StreamHandler(stream), logging.FileHandler(tmp_path / "run.log")
    root.addHandler(console), root.addHandler(file)

    @task_wrapper
    def stage():
        raise ValueError("data.max_length=999 exceeds the model's 512 positions")

    try:
        with pytest.raises(ValueError):
            stage()  # Hydra prints this traceback to the console, message last
    finally:
        root.removeHandler(console), root.removeHandler(file)
        file.close()
    assert "Traceback" not in stream.getvalue()
    logged = (tmp_path / "run.log").read_text()
    assert "stage failed" in logged and "Traceback" in logged and "max_length=999" in logged


@pytest.mark.parametrize("message", [  # the eval-mode warning: tests/test_memory.py
    "Checkpoint directory /x/checkpoints exists and is not empty."])
def test_lightning_noise_is_silenced(message):
    import warnings

    from lmcompress.utils.logs import quiet_libraries

    with warnings.catch_warnings(record=True) as seen:
        quiet_libraries()
        warnings.warn(message, UserWarning, stacklevel=1)
    assert not seen


def test_seed_plot_marks_the_trivial_baseline():
    import pandas as pd

    from lmcompress.report.config import Baseline, Metric
    from lmcompress.report.plots import seeds_figure

    jobs = pd.DataFrame({"loss": ["kd", "kd", "ce", "ce"], "val/f1": [0.83, 0.84, 0.82, 0.81]})
    majority = Baseline("majority class", {"val/f1": 0.8122}, "279 of 408 dev pairs")
    other = Baseline("chance", {"val/accuracy": 0.5}, "two classes")  # another metric: not drawn
    fig = seeds_figure(jobs, ["loss"], [Metric("val/f1", scale=100.0)], baselines=[majority, other])
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label() in ("majority class", "chance")]
    assert [(ln.get_label(), ln.get_ydata()[0]) for ln in lines] == [
        ("majority class", pytest.approx(81.22))]
