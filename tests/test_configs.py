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


BERT_BASE = ("model_type: bert, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12,"
             " intermediate_size: 3072, max_position_embeddings: 512")
OFFLINE_MODELS = {  # paper-scale hub models, built from their shape with random weights
    "bert-base-uncased": f"{{{BERT_BASE}, vocab_size: 30522}}",
    "bert-base-cased": f"{{{BERT_BASE}, vocab_size: 28996}}",
}


def _first_job(cfg) -> list[str]:
    """The first job of a sweep (basic sweeper); Optuna distributions keep their defaults."""
    out = []
    for key, value in (cfg.hydra.sweeper.params or {}).items():
        text = str(value)
        if not text.startswith(("interval(", "tag(", "range(", "choice(")):
            out.append(f"{key}={text.split(',')[0]}")
    return out


def _offline(cfg) -> list[str]:
    """Stand-ins for what a sweep needs but this machine may lack: published teachers and
    students (the embedded MiniLM-L6 takes their place) and hub models (random weights of the
    same shape)."""
    out = []
    teacher = cfg.get("teacher")
    if teacher is not None and teacher.get("name_or_path") and not Path(
            str(teacher.name_or_path)).exists():
        out += (["teacher.name_or_path=null", "teacher.pretrained=false",
                 "teacher.tokenizer=embedded:minilm-l6",
                 f"++teacher.config={OFFLINE_MODELS['bert-base-uncased']}"]
                if "paper_scale" in cfg.tags else
                ["teacher.name_or_path=embedded:minilm-l6", "teacher.tokenizer=embedded:minilm-l6"])
    student = cfg.get("student")
    if student is not None and student.get("init") == "pretrained" and not Path(
            str(student.get("name_or_path"))).exists():  # a published student (a sweep's own)
        out += ["student.name_or_path=embedded:minilm-l6"]
    model = cfg.get("model")
    if model is not None and str(model.get("name_or_path")) in OFFLINE_MODELS:
        shape = OFFLINE_MODELS[str(model.name_or_path)]
        out += ["model.name_or_path=null", "model.pretrained=false",
                "model.tokenizer=embedded:minilm-l6", f"++model.config={shape}"]
    return out


def _compose_job(sweep: Path, overrides: list[str], output_dir: Path):
    """A sweep job's config with the Hydra runtime set, as inside a running job."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(sweep.parent), version_base="1.3"):
        cfg = compose(sweep.stem, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig().set_config(cfg)
    return cfg


@pytest.mark.parametrize("sweep", sorted((CONF.parent / "sweeps").glob("*/sweep*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sweeps_instantiate_module_callbacks_and_data(sweep, shared_data, tmp_path):
    from lmcompress.specs import TaskSpec, parse
    from lmcompress.utils.checks import check_groups
    from lmcompress.utils.instantiate import build_callbacks

    # published teachers/students are looked up under tmp_path, never in this checkout's outputs
    isolated = [f"paths.artifact_dir={tmp_path / 'artifacts'}"]
    overrides = _first_job(_compose_job(sweep, isolated, tmp_path)) + isolated
    cfg = _compose_job(sweep, overrides, tmp_path)
    cfg = _compose_job(sweep, overrides + _offline(cfg), tmp_path)
    check_groups(cfg)  # no group written in the sweep config's body
    module = instantiate_plain(cfg.module)
    assert module.task.name == cfg.task.name and module.objective.weights
    build_callbacks(cfg.get("callbacks"))
    try:
        datamodule = instantiate_plain(cfg.data, source=instantiate_plain(cfg.task.source))
        sizes = datamodule.validate(parse(TaskSpec, cfg.task, "task"))
    except DataSourceError as err:  # a GLUE task not beside the repo (MNLI, QNLI, QQP)
        assert "not found" in str(err)
        return
    assert sizes["train"] > 0
