"""A truncated candidates.csv is named and left out, never read in part (#16 class 7)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from lmcompress.amoc.report import load_candidates
from lmcompress.report.__main__ import main, report_kind

REMOVED = ("0", "1", "2", "0+1")


def write_run(root: Path, source: str, targets: tuple[str, ...] = ("x", "y"),
              selection: bool = True) -> Path:
    """A run folder with ``amoc/candidates.csv`` (4 candidates per target)."""
    rows = [{"source": source, "target": t, "removed": r, "metric": "macro_f1",
             "ate_target": 0.1 * len(r), "target_score": 0.8 - 0.1 * len(r)}
            for t in targets for r in REMOVED]
    out = root / source / "amoc"
    out.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(out / "candidates.csv", index=False)
    if selection:
        (out / "selection.json").write_text(json.dumps(
            {"targets": list(targets), "timing": {"candidates": len(REMOVED)}}))
    return out / "candidates.csv"


def _cut(path: Path, keep_lines: int | None = None, chars: int = 0) -> None:
    text = path.read_text()
    if keep_lines is not None:
        text = "".join(text.splitlines(keepends=True)[:keep_lines])
    path.write_text(text[:len(text) - chars] if chars else text)


@pytest.mark.parametrize(("cut", "reason"), [
    ({"chars": 5}, "truncated (its last line has no end of line)"),   # mid-line
    ({"keep_lines": 8}, "3 rows for target 'y', but its selection.json scored 4"),  # line end
    ({"keep_lines": 1}, "a header and no candidates"),
])
def test_truncated_table_is_named_and_left_out(tmp_path, caplog, cut, reason):
    write_run(tmp_path, "a")
    bad = write_run(tmp_path, "b")
    _cut(bad, **cut)
    with caplog.at_level(logging.WARNING):
        table = load_candidates([tmp_path])
    assert set(table["source"]) == {"a"} and len(table) == 8   # b not read in part
    assert len(table.attrs["left_out"]) == 1
    assert table.attrs["left_out"][0].startswith(f"{bad}: {reason}")
    assert f"leaving out {bad}: {reason}" in caplog.text


def test_a_field_short_line_is_refused_even_without_selection_json(tmp_path):
    bad = write_run(tmp_path, "b", selection=False)
    lines = bad.read_text().splitlines(keepends=True)
    bad.write_text("".join(lines[:3]) + "b,x,0+1\n" + "".join(lines[4:]))
    with pytest.raises(FileNotFoundError, match=r"line 4 has 3 of 6 fields"):
        load_candidates([tmp_path])


def test_one_report_command_detects_amoc_runs(tmp_path, monkeypatch, capsys):
    amoc, sweep = tmp_path / "amoc_runs", tmp_path / "sweep"
    write_run(amoc, "a")
    (sweep / "0" / ".hydra").mkdir(parents=True)
    assert report_kind([amoc], "auto") == "amoc" and report_kind([sweep], "auto") == "sweep"
    with pytest.raises(SystemExit) as exit_:
        main([str(amoc), str(sweep)])
    assert exit_.value.code == 2 and f"['{sweep}'] hold no amoc/candidates.csv" in (
        capsys.readouterr().err)
    calls = []

    def fake_report(folders, out, spec, *rest):
        calls.append((folders, out, spec.response))
        (tmp_path / "results.md").write_text("# AMoC\n")
        return {"results": tmp_path / "results.md"}

    monkeypatch.setattr("lmcompress.amoc.report.report", fake_report)
    assert main([str(amoc), "--response", "target_drop"]) == 0
    assert calls == [([amoc], amoc / "report", "target_drop")]
    assert "# AMoC" in capsys.readouterr().out
