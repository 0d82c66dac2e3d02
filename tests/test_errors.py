"""Bad input fails before training with a message naming the culprit, and writes no results."""

from __future__ import annotations

import time

import pytest

from helpers.cli import TINY, run_cli
from lmcompress.models.hub import ModelResolutionError, resolve_model_path


def _fails(tmp_path, *overrides: str, expect: list[str], env: dict | None = None) -> str:
    proc = run_cli("-cn", "teacher", *TINY, f"paths.log_dir={tmp_path / 'out'}", *overrides,
                   env=env, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-2000:]
    for needle in expect:
        assert needle in text, f"'{needle}' not in output:\n{text[-3000:]}"
    assert not list(tmp_path.glob("out/**/metrics.json"))
    assert not list(tmp_path.glob("out/**/*.ckpt"))
    return text


def test_unknown_task_name(tmp_path):
    _fails(tmp_path, "task=glue/sst3", expect=["task/glue/sst3", "Available options"])


def test_unknown_config_key(tmp_path):
    _fails(tmp_path, "trainer.max_epoch=3", expect=["max_epoch", "not in struct"])


def test_unknown_model_config_attribute(tmp_path):
    _fails(tmp_path, "+model.config.num_layerz=3", expect=["model.config.num_layerz"])


def test_missing_data_directory(tmp_path):
    missing = tmp_path / "no_such_glue"
    _fails(tmp_path, "task=glue/sst2_sentence", f"task.source.data_dir={missing}",
           expect=[str(missing)])


def _local(tmp_path, rows: list[str]) -> list[str]:
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(["text\tlabel", *rows]) + "\n")
    return ["task=local", f"task.source.train={path}", f"task.source.validation={path}",
            "task.num_labels=2", "task.label_names=[neg,pos]"]


def test_malformed_tsv_row_names_file_and_line(tmp_path):
    args = _local(tmp_path, ["good movie\tpos", "no label column here", "bad movie\tneg"])
    _fails(tmp_path, *args, expect=["train.tsv", "line 3"])


def test_label_outside_label_set(tmp_path):
    args = _local(tmp_path, ["good movie\tpos", "bad movie\tneg", "meh movie\tneutral"])
    _fails(tmp_path, *args, expect=["train.tsv", "line 4", "neutral"])


def test_hub_model_id_while_offline(tmp_path):
    start = time.time()
    _fails(tmp_path, "model=hf", "model.name_or_path=some-org/some-bert",
           expect=["some-org/some-bert", "offline"], env={"HF_HUB_OFFLINE": "1"})
    assert time.time() - start < 60  # no retry loop against an unreachable hub


def test_unreachable_hub_probe_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ModelResolutionError, match="offline"):
        resolve_model_path("some-org/some-bert")


def test_missing_local_model_dir():
    with pytest.raises(ModelResolutionError, match="does not exist"):
        resolve_model_path("./no/such/model_dir")
