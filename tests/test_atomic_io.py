"""One atomic write (utils/io.atomic_write) for JSON, CSV and checkpoints, with the umask."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest

from lmcompress.utils.checkpoints import AtomicCheckpointIO
from lmcompress.utils.io import atomic_write, write_csv_atomic, write_json_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_results_csv_and_checkpoints_are_created_with_the_umask(tmp_path, umask_022):
    # mkstemp alone leaves 0600: unreadable to the group on a shared cluster
    json_file = write_json_atomic(tmp_path / "metrics.json", {"a": 1})
    csv_file = write_csv_atomic(tmp_path / "amoc" / "candidates.csv", pd.DataFrame({"x": [1]}))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, ckpt)
    assert [_mode(p) for p in (json_file, csv_file, ckpt)] == [0o644] * 3
    os.umask(0o077)
    assert _mode(write_json_atomic(tmp_path / "private.json", {})) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = write_json_atomic(tmp_path / "metrics.json", {"old": True})
    with pytest.raises(RuntimeError, match="killed"), atomic_write(target) as f:
        f.write('{"half": ')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_amoc_callback_writes_csv_through_the_shared_primitive():
    from lmcompress.callbacks import amoc
    from lmcompress.utils import io

    assert amoc.write_csv_atomic is io.write_csv_atomic


def test_an_export_gets_the_umasks_modes(tmp_path, umask_022):
    # save_pretrained's safetensors writer creates model.safetensors at 0600 whatever the umask
    from types import SimpleNamespace

    from lmcompress.models.hub import build_model, load_tokenizer
    from lmcompress.specs import ModelSpec, TaskSpec
    from lmcompress.utils.artifacts import export

    task = TaskSpec(name="t", kind="classification", num_labels=2, metrics=["accuracy"],
                    main_metric="accuracy")
    model = build_model(ModelSpec(pretrained=False, config={
        "model_type": "bert", "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16}), task)
    module = SimpleNamespace(export_models=lambda: {"": model})
    folder = export(module, load_tokenizer("embedded:minilm-l6"), tmp_path)[""]
    modes = {p.name: _mode(p) for p in (tmp_path / "export").iterdir()}
    assert folder == str(tmp_path / "export") and "model.safetensors" in modes
    assert set(modes.values()) == {0o644}, modes
