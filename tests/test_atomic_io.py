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
