"""A report's ``name`` (report.yaml) is a file stem inside the output folder, nothing else."""

from __future__ import annotations

import pytest
import yaml
from fake_sweeps import mrpc_sweep

from lmcompress.report.__main__ import main
from lmcompress.report.build import build_report
from lmcompress.report.config import load_config
from lmcompress.utils.safe_paths import PathEscapeError


@pytest.mark.parametrize("name", ["../escaped", "{tmp}/absolute"])
def test_report_name_outside_the_output_folder_is_refused(tmp_path, name):
    name = name.format(tmp=tmp_path)
    config = tmp_path / "report.yaml"
    config.write_text(yaml.safe_dump({"name": name, "plots": []}))
    sweep, out = mrpc_sweep(tmp_path), tmp_path / "out"
    with pytest.raises(PathEscapeError, match=r"report.yaml name="):
        build_report([sweep], load_config(config), out)
    assert not any((out / f"{name}{suffix}").exists() for suffix in (".tex", ".md"))
    with pytest.raises(SystemExit) as exit_info:  # the CLI: a message and exit 2, no traceback
        main([str(sweep), "--config", str(config), "--out", str(out)])
    assert exit_info.value.code == 2
