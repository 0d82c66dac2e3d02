"""Every primary config, task, experiment and sweep composes; sources and modules instantiate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

from lmcompress.data.readers import DataSourceError
from lmcompress.losses import Objective
from lmcompress.utils.instantiate import instantiate_plain
from lmcompress.utils.paths import conf_dir

CONF = conf_dir()
TASKS = sorted(str(p.relative_to(CONF / "task").with_suffix(""))
               for p in (CONF / "task").rglob("*.yaml"))
LOSSES = sorted(str(p.relative_to(CONF / "loss").with_suffix(""))
                for p in (CONF / "loss").rglob("*.yaml"))
HARDWARE = sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))


def _compose(name: str, overrides: list[str], config_dir: Path = CONF):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.mark.parametrize("task", TASKS)
def test_task_configs_compose_and_build_source(task):
    cfg = _compose("teacher", [f"task={task}"])
    assert cfg.task.main_metric in cfg.task.metrics
    if task == "local":
        return
    try:
        source = instantiate_plain(cfg.task.source)
    except DataSourceError as err:  # real data not beside the repo (e.g. MNLI is not in ../shared)
        assert "not found" in str(err)
        pytest.skip(f"{task}: {err}")
    assert source.kind == cfg.task.kind
    if source.label_names is not None:
        assert len(source.label_names) == cfg.task.num_labels


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_presets_compose(loss):
    cfg = _compose("distill", [f"loss={loss}"])
    objective = Objective.from_config(cfg.loss)  # names, weights and options all valid
    assert objective.weights


@pytest.mark.parametrize("hardware", HARDWARE)
def test_hardware_configs_compose(hardware):
    cfg = _compose("teacher", [f"hardware={hardware}"])
    assert cfg.trainer.precision and cfg.trainer.accelerator in ("cpu", "gpu")


@pytest.mark.parametrize("sweep", sorted((CONF.parent / "sweeps").glob("*/sweep*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sweeps_compose(sweep):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(sweep.parent), version_base="1.3"):
        cfg = compose(sweep.stem, return_hydra_config=True)
    assert cfg.sweep_id.startswith(sweep.parent.name)
    assert cfg.hydra.mode == RunMode.MULTIRUN and cfg.hydra.sweeper.params


@pytest.mark.parametrize("experiment", sorted((CONF / "experiment").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_experiment_presets_compose_with_their_documented_stage(experiment):
    text = experiment.read_text()
    assert text.startswith("# @package _global_")
    usage = re.search(r"-cn (\w+) experiment=" + experiment.stem, text)
    assert usage, f"{experiment.name}: document its command (python -m lmcompress.run -cn ...)"
    cfg = _compose(usage.group(1), [f"experiment={experiment.stem}"])
    assert cfg.task_name == usage.group(1) and cfg.task.name
