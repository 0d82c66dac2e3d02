"""The commands in README.md and docs/*.md, as a user types them (issue 22, item 5).

``doc_commands()`` takes every line of a fenced ``bash`` block (comments dropped, ``&&`` split).

- Fast: every ``python -m lmcompress.run`` command composes (a renamed group, option or key in
  the code fails here), and no document spells the SLURM launcher other than ``+launcher=slurm``.
- Slow: the cheap commands run in a subprocess, in order, in a scratch folder, with ``+quick=on``
  added to the stage runs: README.md's in the default suite (the main job and the "first hour"
  block: teacher, distill, DynaBERT phases 1 and 2, AMoC on the generated task, the AMoC report,
  the teacher_tiny sweep and its report), each docs/*.md's after them under ``pytest -m
  extended`` (docs/testing.md). Cheap = a stage on generated data only (no ../shared/data, no
  hub model), the reports and the tiny sweep. Skipped, with the reason returned by
  ``why_skipped``: ``pip install`` (CI installs first), ``python -m pytest`` (this suite), the
  real-data presets (minutes to hours each; ``tests/test_experiments.py`` composes them),
  ``--info`` (prints only).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from helpers.cli import OFFLINE_ENV, REPO
from lmcompress.utils.paths import conf_dir, register_resolvers

register_resolvers()
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)


def doc_commands(path: Path) -> list[str]:
    """The commands of ``path``'s fenced bash blocks, in order."""
    out = []
    for block in _FENCE.findall(path.read_text()):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.extend(part.strip() for part in line.split("&&"))
    return out


def _stage_args(command: str) -> tuple[Path, str, list[str]] | None:
    words = shlex.split(command)
    if words[:3] != ["python", "-m", "lmcompress.run"]:
        return None
    config_dir, name, overrides, rest = conf_dir(), "teacher", [], iter(words[3:])
    for word in rest:
        if word == "-cd":
            config_dir = REPO / next(rest)
        elif word == "-cn":
            name = next(rest)
        elif not word.startswith("-"):
            overrides.append(word)
    return config_dir, name, overrides


def _compose(command: str):
    config_dir, name, overrides = _stage_args(command)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(config_dir), version_base="1.3"):
            return compose(name, overrides=[*overrides, "paths.log_dir=/tmp/lmc_docs"],
                           return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def why_skipped(command: str) -> str | None:
    """None if the slow test runs ``command``, else the reason it does not."""
    if command.startswith("pip "):
        return "installs packages (CI installs before the suite)"
    if command.startswith("python -m pytest"):
        return "is this suite"
    if "--info" in command:
        return "prints the composition only (composed by the fast test)"
    if _stage_args(command) is None:
        return None if command.startswith("python -m lmcompress.") else "not an lmcompress command"
    cfg = _compose(command)
    text = OmegaConf.to_yaml(cfg.task) + OmegaConf.to_yaml(cfg.data.get("streams") or {})
    sources = set(re.findall(r"_target_: (\S+)", text))
    # a corpus (stage general) is as cheap as the sources it reads, which the text lists too
    cheap = {"lmcompress.data.synthetic.SyntheticSource", "lmcompress.data.corpus.CorpusSource"}
    if sources - cheap:
        return f"reads real data ({', '.join(sorted(sources))}): minutes to hours"
    return None


ALL = [(p.name, c) for p in DOCS for c in doc_commands(p)]
STAGES = [(name, c) for name, c in ALL if _stage_args(c) is not None]


def test_docs_have_commands():
    assert len(STAGES) >= 8 and any("+quick=on" in c for _, c in STAGES)


@pytest.mark.parametrize("doc, command", STAGES, ids=[c[24:80] for _, c in STAGES])
def test_documented_stage_command_composes(doc, command):
    assert _compose(command).task_name, (doc, command)


def test_slurm_launcher_has_one_spelling():
    texts = [*DOCS, *REPO.glob("sweeps/*/README.md"), *REPO.glob("conf/**/*.yaml")]
    bad = [p.name for p in texts if "hydra/launcher=submitit" in p.read_text()]
    assert not bad, f"write +launcher=slurm / +launcher=local (conf/launcher/) in {bad}"


class Scratch:
    """One scratch folder where the documented commands run in order, each at most once."""

    def __init__(self, root: Path) -> None:
        self.root, self.ran = root, []
        (root / "sweeps").symlink_to(REPO / "sweeps")
        self.env = {**os.environ, **OFFLINE_ENV, "CI": "1", "LMCOMPRESS_OUTPUT_DIR":
                    str(root / "outputs"), "PYTHONPATH": str(REPO / "src")}

    def run(self, doc: str) -> int:
        """Run ``doc``'s cheap commands not run yet; returns how many ran."""
        count = 0
        for name, command in ALL:
            if name != doc or why_skipped(command) is not None:
                continue
            words = shlex.split(command)
            if (_stage_args(command) is not None and "+quick=on" not in words
                    and "-cd" not in words):
                words.append("+quick=on")
            if words in self.ran:
                continue  # the install line's main job is the first-hour block's first command
            proc = subprocess.run([sys.executable, *words[1:]], cwd=self.root, env=self.env,
                                  capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"{doc}: {command}\n{proc.stderr[-3000:]}"
            self.ran.append(words)
            count += 1
        return count


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Scratch:
    return Scratch(tmp_path_factory.mktemp("docs"))


@pytest.mark.slow
def test_readme_commands_run_as_typed(scratch):
    """The new user's path: the main job and the first-hour block, in the default suite."""
    assert scratch.run("README.md") >= 8, scratch.ran


EXTENDED = sorted({doc for doc, c in ALL if doc != "README.md" and why_skipped(c) is None})


@pytest.mark.slow  # subprocess runs: `pytest -m "not slow"` leaves them out too
@pytest.mark.extended
@pytest.mark.parametrize("doc", EXTENDED)
def test_cheap_commands_of_each_document_run_as_typed(scratch, doc):
    """docs/*.md after the README's block (their commands read its outputs), outside the
    default suite for time: ``pytest -m extended tests/test_docs.py`` (docs/testing.md)."""
    scratch.run("README.md")
    assert scratch.run(doc) >= 1, doc
