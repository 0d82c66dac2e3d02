"""The bad-input harness (benchmarks/bad_inputs.py) judges probes as documented: the escape
check, the leftovers check, the needles and the exit status each decide a verdict."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bad_inputs  # noqa: E402
from bad_inputs_probes import PROBES, Probe  # noqa: E402

NONE = {"metrics": [], "export": [], "ckpt": []}


def _verdict(probe: Probe, code: int, text: str = "", new: dict | None = None,
             outside: list[str] | None = None, problem: str | None = None) -> str:
    return bad_inputs.verdict(probe, code, text, new or NONE, outside or [], problem)[0]


def test_a_refusal_is_handled_only_with_every_needle_and_no_leftovers():
    probe = Probe("p", "5", "run", "x", needles=("train.tsv", ("line 2", "line 3")),
                  before_work=True)
    assert _verdict(probe, 1, "train.tsv, line 3: bad") == "handled"
    assert _verdict(probe, 0, "train.tsv, line 3: bad") == "silent-wrong"
    assert _verdict(probe, 1, "train.tsv: bad") == "NOT handled"
    assert _verdict(probe, 1, "TRAIN.TSV, LINE 2") == "handled"  # case-insensitive
    left = {**NONE, "metrics": ["m/metrics.json"]}
    assert _verdict(probe, 1, "train.tsv, line 3", new=left) == "NOT handled"
    trained = {**NONE, "ckpt": ["c/last.ckpt"]}
    assert _verdict(probe, 1, "train.tsv, line 3", new=trained) == "NOT handled"
    assert _verdict(Probe("q", "5", "run", "x", needles=("train.tsv",)), 1, "train.tsv",
                    new=trained) == "handled"


def test_tolerated_faults_need_exit_0_and_a_passing_check():
    probe = Probe("p", "5", "run", "x", expect="ok")
    assert _verdict(probe, 0) == "handled"
    assert _verdict(probe, 0, problem="data_sizes.train = [15]") == "silent-wrong"
    assert _verdict(probe, 2) == "NOT handled"
    either = Probe("e", "8", "recipe", "x", expect="either", needles=("stale",))
    assert _verdict(either, 0, problem="still seed 1") == "silent-wrong"
    assert _verdict(either, 0) == "handled"  # exit 0 with the right result is fine too
    assert _verdict(either, 1, "step is stale") == "handled"
    assert _verdict(either, 1, "boom") == "NOT handled"


def test_writing_outside_the_roots_is_never_handled():
    probe = Probe("p", "3", "run", "x", expect="ok")
    assert _verdict(probe, 0, outside=["+/sb/canary/pwn"]) == "silent-wrong"
    assert _verdict(Probe("f", "3", "run", "x"), 1, outside=["+/sb/canary/pwn"]) == "NOT handled"


@pytest.mark.parametrize("target, escaped", [("{canary}/pwn", True), ("{out}/fine", False),
                                             ("{work}/stray", True)])
def test_run_probe_sees_files_written_outside_the_output_root(tmp_path, target, escaped):
    code = f"open('{target}', 'w').write('x')"
    probe = Probe("escape", "3", "python", "write a file", ["-c", code], expect="ok")
    old = os.umask(0o077)  # the harness, not the caller's umask, decides the commands' umask
    try:
        row = bad_inputs.run_probe(probe, tmp_path)
    finally:
        os.umask(old)
    assert bool(row["outside_roots"]) == escaped, row
    assert row["verdict"] == ("silent-wrong" if escaped else "handled")
    if not escaped:
        assert row["modes"] == ["0o644"]  # commands run under umask 022


def test_run_probe_counts_only_leftovers_the_command_created(tmp_path):
    def setup(sb):
        (sb.outputs / "old").mkdir()
        (sb.outputs / "old" / "metrics.json").write_text("{}")

    refuse = "import sys; sys.exit('bad.tsv, line 2')"
    probe = Probe("left", "5", "python", "refuse", ["-c", refuse], needles=("line 2",),
                  setup=setup)
    assert bad_inputs.run_probe(probe, tmp_path)["verdict"] == "handled"
    leave = "import os, sys; os.makedirs('{out}/new/export'); sys.exit('bad.tsv, line 2')"
    probe = Probe("left2", "5", "python", "refuse late", ["-c", leave], needles=("line 2",))
    row = bad_inputs.run_probe(probe, tmp_path)
    assert row["verdict"] == "NOT handled" and row["export"], row


def test_the_probe_list_covers_every_class_and_entry_point():
    ids = [p.id for p in PROBES]
    assert len(ids) == len(set(ids)) >= 70
    assert {p.cls for p in PROBES} == {*"12345678", "other"}
    entries = {p.entry for p in PROBES}
    for needed in ("run teacher", "run distill", "run dynabert", "run amoc_tiny", "recipe",
                   "report", "amoc.report"):
        assert needed in entries


def test_a_command_the_harness_had_to_kill_is_not_handled():
    probe = Probe("p", "1", "run", "x")
    assert _verdict(probe, -9, f"training...\n{bad_inputs.KILLED} after 90s") == "NOT handled"
    assert _verdict(probe, -9, "training...") == "handled"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_what_a_command_leaves_running_is_killed_after_the_probe(tmp_path):
    spawn = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
             "'import time; time.sleep(120)']); open('{out}/pid', 'w').write(str(p.pid))")
    probe = Probe("orphan", "1", "python", "leave a child", ["-c", spawn], expect="ok")
    row = bad_inputs.run_probe(probe, tmp_path)
    pid = int((Path(row["sandbox"]) / "outputs" / "pid").read_text())
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)


def test_reused_rows_are_kept_and_probes_past_the_deadline_are_not_run(tmp_path):
    old = {"id": "unknown_key", "class": "other", "entry": "run", "what": "x", "exit": 1,
           "seconds": 1.0, "verdict": "handled", "why": "from an earlier run"}
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    bad_inputs.main(["--out", str(tmp_path / "res"), "--only", "unknown_key,unknown_stage",
                     "--reuse", str(tmp_path / "old.jsonl"), "--deadline", "0", "--label", "t"])
    rows = {r["id"]: r for r in json.loads((tmp_path / "res" / "t.json").read_text())["results"]}
    assert rows["unknown_key"]["why"] == "from an earlier run"
    assert rows["unknown_stage"]["verdict"] == "not run"
    assert "| not run |" in (tmp_path / "res" / "t.md").read_text()


def test_probes_run_round_robin_over_classes():
    order = [p.cls for p in bad_inputs.interleave(PROBES)]
    classes = len({p.cls for p in PROBES})
    assert len(set(order[:classes])) == classes
    assert sorted(p.id for p in bad_inputs.interleave(PROBES)) == sorted(p.id for p in PROBES)


def test_needles_count_only_in_the_message_not_in_traceback_source_lines():
    probe = Probe("p", "5", "run", "x", needles=("max_epochs",))
    text = ('Traceback (most recent call last):\n  File "trainer.py", line 9, in fit\n'
            "    assert isinstance(max_epochs, int)\n           ^^^^^^^^^^\nAssertionError\n")
    assert _verdict(probe, 1, text) == "NOT handled"
    echo = "Error executing job with overrides: ['trainer.max_epochs=1.5']\n"
    assert _verdict(probe, 1, echo + "AssertionError\n") == "NOT handled"
    assert _verdict(probe, 1, text + "ValueError: trainer.max_epochs=1.5: not an integer\n") \
        == "handled"


def test_recorded_messages_name_no_temporary_folder(tmp_path):
    # committed results must not carry this machine's sandbox paths
    refuse = "import os, sys; sys.exit(os.path.join(os.getcwd(), 'bad.tsv') + ', line 2')"
    probe = Probe("paths", "5", "python", "refuse", ["-c", refuse], needles=("line 2",))
    row = bad_inputs.run_probe(probe, tmp_path)
    assert row["last_error"] == "<work>/bad.tsv, line 2", row
