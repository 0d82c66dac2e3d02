"""The hub path a networked user takes, run offline: a model by hub id from an HF cache, a GLUE
task through ``datasets.load_dataset`` on a folder in the hub's layout (docs/launch.md)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from helpers.cli import run_cli
from lmcompress.models.hub import load_tokenizer

REPO_ID, REVISION = "lmc-test/tiny-bert", "0123456789abcdef0123456789abcdef01234567"
WORDS = ["good", "bad", "great", "awful", "fine", "poor", "nice", "dull"]


def _hf_cache(home) -> None:
    """A tiny BERT saved where the hub client caches ``REPO_ID`` (models--org--name layout)."""
    repo = home / "hub" / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_labels=2)).save_pretrained(snapshot)
    load_tokenizer("embedded:minilm-l6").save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)


def _glue_folder(root) -> None:
    """GLUE SST-2 in the datasets hub's layout: parquet per split and configs in the README."""
    for split, n in (("train", 32), ("validation", 12)):
        rows = [{"sentence": f"a {WORDS[i % 8]} film", "label": i % 2, "idx": i}
                for i in range(n)]
        (root / "sst2").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(root / "sst2" / f"{split}-00000-of-00001.parquet")
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: sst2\n  data_files:\n  - split: train\n"
        "    path: sst2/train-*\n  - split: validation\n    path: sst2/validation-*\n---\n")


@pytest.mark.slow
def test_teacher_stage_from_a_hub_id_and_a_hub_dataset_offline(tmp_path):
    home, data = tmp_path / "hf_home", tmp_path / "glue_hub"
    _hf_cache(home)
    _glue_folder(data)
    run_dir = tmp_path / "run"
    proc = run_cli("-cn", "teacher", "task=glue/sst2", "task.source.data_dir=null",
                   f"+task.source.hub_id={data}", f"+task.source.cache_dir={tmp_path / 'ds'}",
                   f"model.name_or_path={REPO_ID}", "logger=csv", "hardware=cpu",
                   "trainer.max_epochs=1", "data.batch_size=16", "test=false",
                   f"hydra.run.dir={run_dir}",
                   env={"HF_HOME": str(home), "HF_HUB_OFFLINE": "1",
                        "HF_DATASETS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data_sizes"]["train"] == 32 and metrics["data_sizes"]["validation"] == 12
    assert metrics["model"]["hidden_size"] == 32 and metrics["model"]["num_layers"] == 2
