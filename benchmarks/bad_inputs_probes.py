"""The probes of ``bad_inputs.py``: bad inputs and faults for every entry point (issue #16).

Each probe has an id, a class (1-8 as in the issue, or ``other``), a setup that writes its
inputs into the sandbox (generated data, fake sweeps, recipes, symlinks, earlier runs), a
command (``args`` run as ``python <args>`` in ``{work}``, or an ``action`` that drives several
processes and signals), and what "handled well" means: ``expect="fail"``: a non-zero exit whose
output contains every needle (a tuple = any of them), no new metrics.json / export, and with
``before_work`` no checkpoint either; ``expect="ok"``: a tolerated fault, exit 0 and ``check``
returns None; ``expect="either"``: a refusal naming the needles, or exit 0 passing ``check``.
Nothing reads ``../shared/data``: every input is generated here, seeded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "report"))
import fake_sweeps  # noqa: E402  (the fake multirun folders the report tests use)


@dataclass
class Probe:
    """One bad input or fault, and what handling it well means."""

    id: str
    cls: str
    entry: str
    what: str
    args: list[str] = field(default_factory=list)
    expect: str = "fail"
    needles: tuple = ()
    setup: Callable | None = None
    action: Callable | None = None
    check: Callable | None = None
    before_work: bool = False
    timeout: int = 240
    command: str = ""


RUN = ["-m", "lmcompress.run"]
LOG = ["logger=csv", "hardware=cpu", "data.batch_size=16", "trainer.max_epochs=1"]
TEACHER = [*RUN, "-cn", "teacher", "model=tiny", "task=tiny", *LOG]
WEAK_OK = ["preflight.allow_weak_teacher=true"]  # random tiny teachers sit at the baseline
DISTILL = [*RUN, "-cn", "distill", "teacher=tiny", "student=tiny", "task=tiny", "loss=kd", *LOG,
           *WEAK_OK]
DYNABERT = [*RUN, "-cn", "dynabert", "teacher=tiny", "task=tiny", *LOG, *WEAK_OK]
AMOC = [*RUN, "-cn", "amoc_tiny", "logger=csv", "trainer.max_epochs=1"]
LONG = ["task.source.n_train=800", "trainer.max_epochs=200"]  # minutes: long enough to signal
RECIPE = ["-m", "lmcompress.recipe"]
REPORT = ["-m", "lmcompress.report"]
AMOC_REPORT = ["-m", "lmcompress.amoc.report"]
# the toy AMoC search has too few regression rows to choose (refused since issue #16, before
# training): probes that need a finished search ask for its features only
FEATURES_ONLY = "callbacks.amoc.features_only=true"
KILLED = "[harness] killed"  # the command had to be killed: never "handled"
TENSOR = "bert.encoder.layer.0.attention.self.query.weight"


def teacher(*extra: str) -> list[str]:
    return [*TEACHER, *extra]


def local(*extra: str, train: str = "train.tsv", dev: str = "dev.tsv") -> list[str]:
    """The teacher stage on the sandbox's own files (task=local)."""
    return [*RUN, "-cn", "teacher", "model=tiny", *LOG, "task=local",
            f"task.source.train={{work}}/{train}", f"task.source.validation={{work}}/{dev}",
            "task.num_labels=2", "task.label_names=[neg,pos]", *extra]


def rows(n: int = 16, sep: str = "\t", eol: str = "\n", header: str | None = None) -> str:
    header = header if header is not None else f"text{sep}label"
    body = [f"{w} movie number {i}{sep}{y}" for i, (w, y) in
            enumerate([("good", "pos"), ("bad", "neg")] * (n // 2))]
    return eol.join([header, *body]) + eol


def files(**contents: str | bytes) -> Callable:
    """A setup writing ``{work}/<name>`` for each keyword (``__`` in a name = ``.``)."""

    def setup(sb: Any) -> None:
        for name, text in contents.items():
            path = sb.work / name.replace("__", ".")
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def both(*setups: Callable) -> Callable:
    def setup(sb: Any) -> None:
        for one in setups:
            one(sb)
    return setup


def jsonl(*records: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


GOOD = [{"text": f"{w} film {i}", "label": y}
        for i, (w, y) in enumerate([("good", "pos"), ("bad", "neg")] * 8)]


def metrics(sb: Any) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sb.outputs.rglob("metrics.json"))]


def must(code: int, text: str, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"setup step '{what}' failed (exit {code}): {text[-400:]}")


# --- actions: several processes, signals ------------------------------------------------------

def wait_for(log: Path, needle: str, proc: Any, timeout: float = 120) -> bool:
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if needle in log.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def finish(proc: Any, log: Path, timeout: float = 90) -> tuple[int, str]:
    try:
        code = proc.wait(timeout=timeout)
    except Exception:
        proc.kill()
        code = proc.wait()
        with log.open("a") as handle:
            handle.write(f"\n{KILLED} after {timeout}s: it did not stop by itself\n")
    return code, log.read_text(errors="replace")


def signal_run(sig: int, needle: str = "training:", child: bool = False) -> Callable:
    """Start the probe's command, send ``sig`` once ``needle`` is printed (to the recipe's
    running step with ``child``), and return its exit code and output."""

    def action(sb: Any, probe: Probe) -> tuple[int, str]:
        proc, log = sb.spawn(probe.args, "cmd")
        if not wait_for(log, needle, proc):
            return finish(proc, log)
        target = proc.pid
        if child:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            target = int(kids[0]) if kids else proc.pid
        os.kill(target, sig)
        return finish(proc, log)
    return action


def nothing_left_running(sb: Any, code: int, text: str) -> str | None:
    """No process of the command's session outlives it (a recipe's step after the recipe)."""
    time.sleep(3)
    try:
        os.killpg(sb.procs[0].pid, 0)
    except ProcessLookupError:
        return None
    return "a process of the command (its running step) is still alive after it exited"


def kill9_then_rerun(needle: str, first: int = 0) -> Callable:
    """``kill -9`` the command once ``needle`` appears (or a file under outputs matching it),
    then run the same command again; returns the second run's code and output."""

    def action(sb: Any, probe: Probe) -> tuple[int, str]:
        proc, log = sb.spawn(probe.args, "first")
        end = time.time() + 180
        while time.time() < end and proc.poll() is None:
            text = log.read_text(errors="replace")
            if (needle in text) if not needle.startswith("*") else any(
                    sb.outputs.rglob(needle[1:])):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return sb.run(probe.args, "second")
    return action


def concurrent_same_folder(sb: Any, probe: Probe) -> tuple[int, str]:
    """A first run trains in a folder; a second one into the same folder is the probe."""
    first, log = sb.spawn([*teacher(*LONG), "hydra.run.dir={out}/runs/shared"], "first")
    if not wait_for(log, "training:", first):
        return finish(first, log)
    try:
        return sb.run(probe.args, "second", timeout=120)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()


# --- setups that build models, runs, sweeps, recipes ----------------------------------------

def saved_bert(name: str, poison: str | None = None, token: bool = False,
               model_type: str = "bert") -> Callable:
    """A tiny random BERT saved with save_pretrained to ``{work}/<name>`` (two labels), with
    ``poison`` = 'nan' / 'inf' written into one tensor, or a token-classification head."""

    def setup(sb: Any) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForSequenceClassification,
            AutoModelForTokenClassification,
        )

        torch.manual_seed(0)
        config = AutoConfig.for_model(model_type, vocab_size=30522, hidden_size=32,
                                      num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=514,
                                      num_labels=2, id2label={0: "negative", 1: "positive"},
                                      label2id={"negative": 0, "positive": 1})
        cls = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
        model = cls.from_config(config)
        if poison:
            with torch.no_grad():
                dict(model.named_parameters())[TENSOR].view(-1)[3] = float(poison)
        model.save_pretrained(sb.work / name)
    return setup


def prior_run(args: list[str], folder: str = "runs/prev") -> Callable:
    def setup(sb: Any) -> None:
        must(*sb.run([*args, f"hydra.run.dir={{out}}/{folder}"], "setup"), "prior run")
    return setup


def recipe_file(steps: dict, name: str = "r.yaml", **top: Any) -> Callable:
    def setup(sb: Any) -> None:
        import yaml

        (sb.work / name).write_text(yaml.safe_dump({"name": "probe", **top, "steps": steps},
                                                   sort_keys=False))  # steps run in order
    return setup


TINY_STEP = {"config": "teacher", "overrides": TEACHER[4:]}
RECIPE_OUT = ["{work}/r.yaml", "--out", "{out}/recipes/probe"]


def recipe_stale(common: bool) -> Callable:
    """Run a one-step recipe, then change its config (the step's or the common overrides)."""

    def setup(sb: Any) -> None:
        recipe_file({"teacher": TINY_STEP}, overrides=["seed=1"])(sb)
        must(*sb.run([*RECIPE, *RECIPE_OUT], "setup"), "first recipe run")
        step = {"config": "teacher", "overrides": [*TEACHER[4:], *([] if common else ["seed=2"])]}
        recipe_file({"teacher": step}, overrides=["seed=2" if common else "seed=1"])(sb)
    return setup


def reran_with_seed_2(sb: Any, code: int, text: str) -> str | None:
    seeds = [m["seed"] for m in metrics(sb)]
    return None if seeds == [2] else f"the step's metrics.json still has seed {seeds} (stale)"


def sweep(kind: str) -> Callable:
    """Fake multirun folders under {out}/sweeps (the shape of tests/report/fake_sweeps.py)."""

    def setup(sb: Any) -> None:
        root = sb.outputs / "sweeps"
        if kind == "mrpc":
            fake_sweeps.mrpc_sweep(root)
        elif kind == "half_json":
            path = fake_sweeps.mrpc_sweep(root) / "1" / "metrics.json"
            path.write_text(path.read_text()[:70])
        elif kind == "two_lrs":
            for lr in ("0.001", "0.0001"):
                folder = root / f"lr{lr}"
                fake_sweeps.write_multirun(folder, {"loss": "kd,kd_ckd"},
                                           [f"module.optim.lr={lr}", "seed=1"])
                for n, loss in enumerate(("kd", "kd_ckd")):
                    val = {"val/f1": 0.8 + 0.01 * n + (0.05 if lr == "0.001" else 0)}
                    fake_sweeps.write_job(folder, n, [f"loss={loss}", f"module.optim.lr={lr}",
                                                      "seed=1"], fake_sweeps.job_metrics(1, val))
        elif kind == "empty":
            (root / "empty").mkdir(parents=True)
    return setup


def report_yaml(**config: Any) -> Callable:
    def setup(sb: Any) -> None:
        import yaml

        (sb.work / "report.yaml").write_text(yaml.safe_dump(config))
    return setup


def amoc_candidates(edit: str) -> Callable:
    """A real tiny AMoC run's candidates.csv under {out}/amoc_runs/a, then ``edit`` it."""

    def setup(sb: Any) -> None:
        folder = sb.outputs / "amoc_runs" / "a"
        must(*sb.run([*AMOC, "callbacks.amoc.budgets=[1,2]", f"hydra.run.dir={folder}",
                      "export=false", FEATURES_ONLY], "setup"), "tiny amoc run")
        csv = folder / "amoc" / "candidates.csv"
        lines = csv.read_text().splitlines(keepends=True)
        if edit == "truncate":
            csv.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 3])
        elif edit == "drop_column":
            import pandas as pd

            pd.read_csv(csv).drop(columns=["ate_target"]).to_csv(csv, index=False)
        elif edit == "duplicate":
            other = sb.outputs / "amoc_runs" / "b" / "amoc"
            other.mkdir(parents=True)
            (other / "candidates.csv").write_text("".join(lines))
        elif edit == "remove":
            csv.unlink()
        (folder / "metrics.json").unlink()
    return setup


def file_intact(relative: str) -> Callable:
    def check(sb: Any, code: int, text: str) -> str | None:
        path = sb.outputs / relative
        return None if path.is_file() else f"{path} was deleted"
    return check


def readable_files(sb: Any, code: int, text: str) -> str | None:
    """Under umask 022 every written file is group/other readable."""
    private = [str(p) for p in sb.outputs.rglob("*") if p.is_file() and not p.is_symlink()
               and (p.stat().st_mode & 0o044) != 0o044]
    return f"{len(private)} files not readable under umask 022, e.g. {private[:2]}" if private \
        else None


def data_size(split: str, n: int) -> Callable:
    def check(sb: Any, code: int, text: str) -> str | None:
        got = [m.get("data_sizes", {}).get(split) for m in metrics(sb)]
        return None if got == [n] else f"data_sizes.{split} = {got}, expected {n}"
    return check


def resumed_to(step: int) -> Callable:
    def check(sb: Any, code: int, text: str) -> str | None:
        got = [(m.get("resumed_from"), m.get("global_step")) for m in metrics(sb)]
        ok = len(got) == 1 and got[0][0] and got[0][1] == step
        return None if ok else f"(resumed_from, global_step) = {got}, expected a resume to {step}"
    return check


def set_aside(sb: Any, code: int, text: str) -> str | None:
    """The earlier run's checkpoints moved out of checkpoints/, so no old last.ckpt waits."""
    run = sb.outputs / "runs" / "prev"
    if not list(run.glob("checkpoints.*/last.ckpt")):
        return "the earlier checkpoints were not set aside"
    return None


def amoc_resumed(total: int) -> Callable:
    """The killed search finished all ``total`` candidates without redoing the done ones."""

    def check(sb: Any, code: int, text: str) -> str | None:
        csv = next(sb.outputs.rglob("amoc/candidates.csv"), None)
        if csv is None:
            return "no candidates.csv after the re-run"
        redone = text.count("amoc candidate ")
        removed = {line.split(",")[2] for line in csv.read_text().splitlines()[1:]}
        if len(removed) != total:
            return f"candidates.csv has {len(removed)} candidates, expected {total}"
        return None if redone < total else f"the re-run retrained all {redone} candidates"
    return check


def amoc_selected(sb: Any, code: int, text: str) -> str | None:
    found = list(sb.outputs.rglob("amoc/selection.json"))
    if not found:
        return "no selection.json"
    empty = [(s["target"], s["k"]) for s in json.loads(found[0].read_text())["selections"]
             if s.get("amoc") is None]
    return f"AMoC selected nothing for (target, budget) {empty}" if empty else None


def no_pooled_seeds(sb: Any, code: int, text: str) -> str | None:
    if re.search(r"^\| kd \| 2 \|", text, re.M) or "n=2" in text:
        return "two runs with the same seed (different lr) pooled as n=2 over seeds"
    return None


P = Probe
NAN_DIR, INF_DIR, TOKEN_DIR = "nan_teacher", "inf_teacher", "token_teacher"
PATH_TEACHER = ["teacher=path", "teacher.tokenizer=embedded:minilm-l6"]
FILE_TENSOR = (("model.safetensors", NAN_DIR, INF_DIR), TENSOR)
LINE = ("line 2", "line 3")
PROBES: list[Probe] = [
    # 1. exit status -------------------------------------------------------------------------
    P("sigterm_teacher", "1", "run teacher", "SIGTERM while the teacher trains",
      teacher(*LONG), action=signal_run(signal.SIGTERM)),
    P("sigint_teacher", "1", "run teacher", "SIGINT (Ctrl-C) while the teacher trains",
      teacher(*LONG), action=signal_run(signal.SIGINT)),
    P("sigterm_distill", "1", "run distill", "SIGTERM while the student trains",
      [*DISTILL, *LONG], action=signal_run(signal.SIGTERM)),
    P("sigterm_dynabert", "1", "run dynabert", "SIGTERM while DynaBERT trains",
      [*DYNABERT, *LONG], action=signal_run(signal.SIGTERM)),
    P("sigterm_amoc_search", "1", "run amoc_tiny", "SIGTERM during the AMoC candidate search",
      [*AMOC, "task.source.n_train=1000"], action=signal_run(signal.SIGTERM, "amoc candidate 2/")),
    P("sigterm_recipe_step", "1", "recipe", "SIGTERM to a recipe's running step",
      [*RECIPE, *RECIPE_OUT], needles=("signal", "teacher"),
      setup=recipe_file({"teacher": {"config": "teacher", "overrides": TEACHER[4:] + LONG}}),
      action=signal_run(signal.SIGTERM, child=True)),
    P("sigterm_recipe", "1", "recipe", "SIGTERM to the recipe process itself: it and its "
      "running step stop", [*RECIPE, *RECIPE_OUT], check=nothing_left_running,
      setup=recipe_file({"teacher": {"config": "teacher", "overrides": TEACHER[4:] + LONG}}),
      action=signal_run(signal.SIGTERM)),
    P("amoc_selects_nothing", "1", "run amoc_tiny", "AMoC search whose regression is refused "
      "for every pair (budget 1, 4 rows, 12 features): nothing selected",
      [*AMOC, "callbacks.amoc.budgets=[1]"], needles=(("select", "refused"),)),
    # 2. divergence, non-finite weights ------------------------------------------------------
    P("diverge_teacher", "2", "run teacher", "module.optim.lr=1e3 on the tiny teacher",
      teacher("module.optim.lr=1e3", "trainer.max_epochs=3"),
      needles=(("diverg", "finite", "nan", "inf"),)),
    P("diverge_distill", "2", "run distill", "module.optim.lr=1e3 on the tiny student",
      [*DISTILL, "module.optim.lr=1e3", "trainer.max_epochs=3"],
      needles=(("diverg", "finite", "nan", "inf"),)),
    P("nan_teacher_distill", "2", "run distill", "teacher export with a NaN weight",
      [*DISTILL, *PATH_TEACHER, f"teacher.name_or_path={{work}}/{NAN_DIR}"],
      needles=FILE_TENSOR, setup=saved_bert(NAN_DIR, "nan"), before_work=True),
    P("inf_teacher_distill", "2", "run distill", "teacher export with an Inf weight",
      [*DISTILL, *PATH_TEACHER, f"teacher.name_or_path={{work}}/{INF_DIR}"],
      needles=FILE_TENSOR, setup=saved_bert(INF_DIR, "inf"), before_work=True),
    P("nan_teacher_dynabert", "2", "run dynabert", "DynaBERT teacher with a NaN weight",
      [*DYNABERT, *PATH_TEACHER, f"teacher.name_or_path={{work}}/{NAN_DIR}"],
      needles=FILE_TENSOR, setup=saved_bert(NAN_DIR, "nan"), before_work=True),
    P("nan_model_finetune", "2", "run teacher", "fine-tuning from a model with a NaN weight",
      teacher("model=hf", f"model.name_or_path={{work}}/{NAN_DIR}",
              "model.tokenizer=embedded:minilm-l6"),
      needles=FILE_TENSOR, setup=saved_bert(NAN_DIR, "nan"), before_work=True),
    # 3. nothing written / deleted outside the output roots ----------------------------------
    P("publish_dotdot", "3", "run teacher", "publish_as=../../../canary/pwn",
      teacher("publish_as=../../../canary/pwn"), needles=("publish_as",)),
    P("publish_absolute", "3", "run teacher", "publish_as=<absolute path>",
      teacher("publish_as={canary}/pwn"), needles=("publish_as",)),
    P("publish_symlink", "3", "run teacher", "publish_as through a symlink leaving the artifacts",
      teacher("publish_as=link/pwn"), needles=("publish_as",),
      setup=lambda sb: ((sb.outputs / "artifacts/teachers").mkdir(parents=True),
                        (sb.outputs / "artifacts/teachers/link").symlink_to(sb.canary))),
    P("publish_overwrite_foreign", "3", "run teacher", "publish_overwrite=true onto a folder "
      "lmcompress never published (a user's file inside)",
      teacher("publish_as=precious", "publish_overwrite=true"), needles=("publish",),
      setup=lambda sb: ((sb.outputs / "artifacts/teachers/precious").mkdir(parents=True),
                        (sb.outputs / "artifacts/teachers/precious/notes.txt").write_text("x")),
      check=file_intact("artifacts/teachers/precious/notes.txt")),
    P("publish_overwrite_own", "3", "run teacher", "publish_overwrite=true onto an earlier "
      "lmcompress publication (tolerated: replaced)",
      teacher("publish_as=mine", "publish_overwrite=true", "seed=3"), expect="ok",
      setup=prior_run(teacher("publish_as=mine")),
      check=lambda sb, c, t: None if (sb.outputs / "artifacts/teachers/mine/config.json")
      .is_file() else "no published teacher"),
    P("umask_teacher", "3", "run teacher", "files of a run under umask 022 are group/other "
      "readable", teacher(), expect="ok", check=readable_files),
    P("umask_report", "3", "report", "report files under umask 022 are readable",
      [*REPORT, "{out}/sweeps/ckd_mrpc"], expect="ok", setup=sweep("mrpc"),
      check=readable_files),
    P("report_name_dotdot", "3", "report", "report.yaml name: ../../../canary/pwn",
      [*REPORT, "{out}/sweeps/ckd_mrpc", "--config", "{work}/report.yaml"], needles=("name",),
      setup=both(sweep("mrpc"), report_yaml(name="../../../../canary/pwn"))),
    P("report_name_absolute", "3", "report", "report.yaml name: an absolute path",
      [*REPORT, "{out}/sweeps/ckd_mrpc", "--config", "{work}/report.yaml"], needles=("name",),
      setup=lambda sb: (sweep("mrpc")(sb), report_yaml(name=str(sb.canary / "pwn"))(sb))),
    P("recipe_step_dotdot", "3", "recipe", "recipe step named ../../../canary/pwn",
      [*RECIPE, *RECIPE_OUT], needles=("step",),
      setup=recipe_file({"../../../canary/pwn": TINY_STEP})),
    P("recipe_step_absolute", "3", "recipe", "recipe step named with an absolute path",
      [*RECIPE, *RECIPE_OUT], needles=("step",),
      setup=lambda sb: recipe_file({str(sb.canary / "pwn"): TINY_STEP})(sb)),
    P("recipe_step_symlink", "3", "recipe", "recipe step folder is a symlink out of the roots",
      [*RECIPE, *RECIPE_OUT], needles=("teacher",),
      setup=both(recipe_file({"teacher": TINY_STEP}), lambda sb: (
          (sb.outputs / "recipes/probe").mkdir(parents=True),
          (sb.outputs / "recipes/probe/teacher").symlink_to(sb.canary)))),
    P("recipe_default_out", "3", "recipe", "recipe without --out writes under the output root, "
      "not the current folder", [*RECIPE, "{work}/r.yaml"], expect="ok",
      setup=recipe_file({"teacher": TINY_STEP}),
      check=lambda sb, c, t: None if metrics(sb) else "no metrics.json under the output root"),
    P("task_name_dotdot", "3", "run teacher", "task.name=../../../canary/pwn (tolerated if "
      "nothing leaves the roots)", teacher("task.name=../../../canary/pwn"), expect="either",
      needles=("task.name",), check=lambda sb, c, t: None if metrics(sb) else "no metrics"),
    # 4. one process per run folder ----------------------------------------------------------
    P("two_runs_one_folder", "4", "run teacher", "a second run into a folder where a run is "
      "training (same command)", [*teacher(*LONG), "hydra.run.dir={out}/runs/shared"],
      needles=(("lock", "another process", "already running", "in use"),),
      action=concurrent_same_folder, timeout=200),
    P("resume_false_with_ckpts", "4", "run teacher", "resume=false into a folder holding "
      "checkpoints: refused, or the old ones set aside", teacher("resume=false",
                                                                "hydra.run.dir={out}/runs/prev"),
      expect="either", needles=("resume",), setup=prior_run(teacher()), check=set_aside),
    P("resume_other_stage", "4", "run distill", "a distill run into a teacher's folder",
      [*DISTILL, "hydra.run.dir={out}/runs/prev"], setup=prior_run(teacher()), before_work=True),
    P("rerun_finished", "4", "run teacher", "re-running a finished run's command (tolerated)",
      teacher("hydra.run.dir={out}/runs/prev"), expect="ok", setup=prior_run(teacher()),
      check=lambda sb, c, t: None if metrics(sb) else "metrics.json gone"),
    P("kill9_resume", "4", "run teacher", "kill -9 mid-training, then the same command "
      "(tolerated: exact resume)", teacher("task.source.n_train=320", "trainer.max_epochs=3",
                                           "checkpoint_every_n_steps=5",
                                           "hydra.run.dir={out}/runs/k"),
      expect="ok", action=kill9_then_rerun("*last.ckpt"), check=resumed_to(60)),
    P("corrupt_last_ckpt", "4", "run teacher", "resume from a truncated last.ckpt",
      teacher("trainer.max_epochs=2", "hydra.run.dir={out}/runs/prev"), needles=("last.ckpt",),
      setup=lambda sb: (prior_run(teacher())(sb), (lambda p: p.write_bytes(
          p.read_bytes()[:1000]))(sb.outputs / "runs/prev/checkpoints/last.ckpt"),
          (sb.outputs / "runs/prev/metrics.json").unlink(),
          __import__("shutil").rmtree(sb.outputs / "runs/prev/export"))),
    P("resume_missing_path", "4", "run teacher", "resume=<a checkpoint that does not exist>",
      teacher("resume={work}/no_such.ckpt"), needles=("no_such.ckpt",), before_work=True),
]

JSONL = dict(train="train.jsonl", dev="dev.jsonl")
GOOD_JSONL = jsonl(*GOOD)
REGRESSION = ["task.kind=regression", "task.num_labels=1", "task.label_names=null",
              "task.metrics=[pearson]", "task.main_metric=pearson"]
PROBES += [
    # 5. data read as written or refused with file and line ----------------------------------
    P("jsonl_null_text", "5", "run teacher", "JSONL row with text null",
      local(**JSONL), needles=("train.jsonl, line 2",),
      setup=files(train__jsonl=jsonl(GOOD[0], {"text": None, "label": "pos"}, *GOOD[1:]),
                  dev__jsonl=GOOD_JSONL)),
    P("jsonl_list_text", "5", "run teacher", "JSONL row whose text is a list",
      local(**JSONL), needles=("train.jsonl, line 2",),
      setup=files(train__jsonl=jsonl(GOOD[0], {"text": ["a", "b"], "label": "pos"}, *GOOD[1:]),
                  dev__jsonl=GOOD_JSONL)),
    P("jsonl_number_text", "5", "run teacher", "JSONL row whose text is a number",
      local(**JSONL), needles=("train.jsonl, line 2",),
      setup=files(train__jsonl=jsonl(GOOD[0], {"text": 123, "label": "pos"}, *GOOD[1:]),
                  dev__jsonl=GOOD_JSONL)),
    P("jsonl_invalid", "5", "run teacher", "JSONL line that is not JSON",
      local(**JSONL), needles=("train.jsonl, line 2",),
      setup=files(train__jsonl=GOOD_JSONL.replace("\n", "\n{oops\n", 1), dev__jsonl=GOOD_JSONL)),
    P("csv_duplicate_header", "5", "run teacher", "CSV header with 'label' twice",
      local(train="train.csv", dev="dev.csv"), needles=("train.csv", "label"),
      setup=files(train__csv=rows(sep=",", header="text,label,label").replace(
          "\n", ",pos\n").replace("text,label,label,pos", "text,label,label"),
          dev__csv=rows(sep=","))),
    P("tsv_non_utf8", "5", "run teacher", "TSV with a Latin-1 byte on line 3",
      local(), needles=("train.tsv, line 3",),
      setup=files(train__tsv=rows().replace("bad movie number 1", "caf\xe9 1").encode("latin-1"),
                  dev__tsv=rows())),
    P("empty_train", "5", "run teacher", "empty (0-byte) training file", local(),
      needles=("train.tsv",), setup=files(train__tsv="", dev__tsv=rows()), before_work=True),
    P("header_only_train", "5", "run teacher", "training file with only a header", local(),
      needles=("train.tsv",), setup=files(train__tsv="text\tlabel\n", dev__tsv=rows()),
      before_work=True),
    P("header_only_dev", "5", "run teacher", "validation file with only a header", local(),
      needles=("dev.tsv",), setup=files(train__tsv=rows(), dev__tsv="text\tlabel\n"),
      before_work=True),
    P("labels_names_vs_numbers", "5", "run teacher", "labels as names in train, as numbers in "
      "validation (label_names unset)", local("task.label_names=null"), needles=("dev.tsv",),
      setup=files(train__tsv=rows(),
                  dev__tsv=rows().replace("\tpos", "\t1").replace("\tneg", "\t0"))),
    P("regression_nan_target", "5", "run teacher", "regression target 'nan'",
      local(*REGRESSION), needles=("train.tsv, line 3",),
      setup=files(train__tsv=rows().replace("\tpos", "\t4.0").replace("\tneg", "\t1.0")
                  .replace("number 1\t1.0", "number 1\tnan"),
                  dev__tsv=rows().replace("\tpos", "\t4.0").replace("\tneg", "\t1.0"))),
    P("regression_inf_target", "5", "run teacher", "regression target 'inf'",
      local(*REGRESSION), needles=("train.tsv, line 3",),
      setup=files(train__tsv=rows().replace("\tpos", "\t4.0").replace("\tneg", "\t1.0")
                  .replace("number 1\t1.0", "number 1\tinf"),
                  dev__tsv=rows().replace("\tpos", "\t4.0").replace("\tneg", "\t1.0"))),
    P("malformed_tsv_row", "5", "run teacher", "TSV row without its label column", local(),
      needles=("train.tsv, line 3",),
      setup=files(train__tsv=rows().replace("bad movie number 1\tneg", "no label here"),
                  dev__tsv=rows())),
    P("label_outside_set", "5", "run teacher", "label 'neutral' outside label_names", local(),
      needles=("train.tsv, line 3", "neutral"),
      setup=files(train__tsv=rows().replace("number 1\tneg", "number 1\tneutral"),
                  dev__tsv=rows())),
    P("missing_text_column", "5", "run teacher", "task.source.text_column=review (absent)",
      local("task.source.text_column=review"), needles=("review",),
      setup=files(train__tsv=rows(), dev__tsv=rows())),
    P("missing_train_file", "5", "run teacher", "task.source.train points nowhere",
      local(train="nope.tsv"), needles=("nope.tsv",), setup=files(dev__tsv=rows())),
    P("train_limit_zero", "5", "run teacher", "data.train_limit=0", teacher("data.train_limit=0"),
      needles=("train_limit",), before_work=True),
    P("eval_limit_zero", "5", "run teacher", "data.eval_limit=0", teacher("data.eval_limit=0"),
      needles=("eval_limit",), before_work=True),
    P("batch_size_zero", "5", "run teacher", "data.batch_size=0", teacher("data.batch_size=0"),
      needles=("batch_size",), before_work=True),
    P("eval_batch_size_zero", "5", "run teacher", "data.eval_batch_size=0",
      teacher("data.eval_batch_size=0"), needles=("eval_batch_size",), before_work=True),
    P("epochs_fractional", "5", "run teacher", "trainer.max_epochs=1.5",
      teacher("trainer.max_epochs=1.5"), needles=("max_epochs",), before_work=True),
    P("crlf_tsv", "5", "run teacher", "TSV with CRLF line ends (tolerated)", local(),
      expect="ok", setup=files(train__tsv=rows(eol="\r\n"), dev__tsv=rows(eol="\r\n")),
      check=data_size("train", 16)),
    P("bom_csv", "5", "run teacher", "CSV starting with a UTF-8 BOM (tolerated)",
      local(train="train.csv", dev="dev.csv"), expect="ok",
      setup=files(train__csv="\ufeff" + rows(sep=","), dev__csv="\ufeff" + rows(sep=",")),
      check=data_size("train", 16)),
    P("quoted_csv", "5", "run teacher", "CSV with quoted commas and a quoted newline "
      "(tolerated)", local(train="train.csv", dev="dev.csv"), expect="ok",
      setup=files(train__csv=rows(sep=",").replace("good movie number 0",
                                                   '"good, movie\nnumber 0"'),
                  dev__csv=rows(sep=",")), check=data_size("train", 16)),
    P("placeholder_label", "5", "run teacher", "label '-' in a labelled split", local(),
      needles=("train.tsv, line 3",),
      setup=files(train__tsv=rows().replace("number 1\tneg", "number 1\t-"), dev__tsv=rows())),
]

SWEEP = "{out}/sweeps/ckd_mrpc"
ROBERTA = ["teacher.config.model_type=roberta", "teacher.config.max_position_embeddings=514",
           "+teacher.config.pad_token_id=1"]
PROBES += [
    # 6. options checked before any work -----------------------------------------------------
    P("amoc_budget_too_big", "6", "run amoc_tiny", "callbacks.amoc.budgets=[10] on a 4-layer "
      "model", [*AMOC, "callbacks.amoc.budgets=[10]"], needles=("budget",), before_work=True),
    P("amoc_budget_zero", "6", "run amoc_tiny", "callbacks.amoc.budgets=[0]",
      [*AMOC, "callbacks.amoc.budgets=[0]"], needles=("budget",), before_work=True),
    P("amoc_unknown_pattern", "6", "run amoc_tiny", "callbacks.amoc.patterns=[top,middle]",
      [*AMOC, "callbacks.amoc.patterns=[top,middle]"], needles=("middle",), before_work=True),
    P("amoc_unknown_target", "6", "run amoc_tiny", "callbacks.amoc.targets=[nowhere]",
      [*AMOC, "callbacks.amoc.targets=[nowhere]"], needles=("nowhere",), before_work=True),
    P("amoc_unknown_metric", "6", "run amoc_tiny", "callbacks.amoc.metric=bleu",
      [*AMOC, "callbacks.amoc.metric=bleu"], needles=("bleu",), before_work=True),
    P("amoc_unknown_feature", "6", "run amoc_tiny", "regression.features=[no_such_feature]",
      [*AMOC, "callbacks.amoc.regression.features=[no_such_feature]"],
      needles=("no_such_feature",), before_work=True),
    P("dynabert_width_roberta", "6", "run dynabert", "DynaBERT widths on a RoBERTa teacher "
      "(no sliced export)", [*DYNABERT, *ROBERTA], needles=(("roberta", "sliced"),),
      before_work=True),
    P("dynabert_width_above_one", "6", "run dynabert", "module.widths=[1.0,1.5]",
      [*DYNABERT, "module.widths=[1.0,1.5]"], needles=("widths",), before_work=True),
    P("dynabert_depth_zero", "6", "run dynabert", "phase=width_depth module.depths=[1.0,0.0]",
      [*DYNABERT, "phase=width_depth", "loss=dynabert_wd", "module.depths=[1.0,0.0]"],
      needles=("depths",), before_work=True),
    P("token_teacher_sequence_task", "6", "run distill", "token-classification teacher on a "
      "sequence-classification task", [*DISTILL, *PATH_TEACHER,
                                       f"teacher.name_or_path={{work}}/{TOKEN_DIR}"],
      needles=(("token",),), setup=saved_bert(TOKEN_DIR, token=True), before_work=True),
    P("unknown_loss_term", "6", "run distill", "loss.weights.no_such_term=1.0",
      [*DISTILL, "+loss.weights.no_such_term=1.0"], needles=("no_such_term",), before_work=True),
    P("ckd_window_too_big", "6", "run distill", "loss=kd_ckd loss.ckd.window=20",
      [*DISTILL, "loss=kd_ckd", "loss.ckd.window=20"], needles=("loss.ckd.window=20",),
      before_work=True),
    P("max_length_too_long", "6", "run teacher", "data.max_length=600 (512 positions)",
      teacher("data.max_length=600"), needles=("data.max_length=600",), before_work=True),
    P("num_labels_mismatch", "6", "run teacher", "task.num_labels=3 with 2 label names",
      teacher("task.num_labels=3"), needles=("task.num_labels=3",), before_work=True),
    P("zero_steps", "6", "run teacher", "trainer.max_steps=0", teacher("trainer.max_steps=0"),
      needles=("max_steps",), before_work=True),
    P("student_deeper_than_teacher", "6", "run distill", "student.config.num_hidden_layers=5 "
      "from a 2-layer teacher", [*DISTILL, "student.config.num_hidden_layers=5"], expect="either",
      needles=("layers",), check=lambda sb, c, t: None if metrics(sb) else "no metrics"),
    # 7. reports -----------------------------------------------------------------------------
    P("report_ok", "7", "report", "a sweep with one failed and one missing job (tolerated: "
      "reported)", [*REPORT, SWEEP], expect="ok", setup=sweep("mrpc"),
      check=lambda sb, c, t: None if ("RuntimeError" in t or "not enough memory" in t)
      else "the failed job is not reported"),
    P("report_two_lrs_one_seed", "7", "report", "two sweeps, lr 1e-3 and 1e-4, seed 1 each: "
      "not 'n=2 over seeds'", [*REPORT, "{out}/sweeps/lr0.001", "{out}/sweeps/lr0.0001"],
      expect="either", needles=(("lr", "seed"),), setup=sweep("two_lrs"), check=no_pooled_seeds),
    P("report_half_metrics", "7", "report", "a job's metrics.json cut in half",
      [*REPORT, SWEEP], expect="either", needles=("1/metrics.json",), setup=sweep("half_json"),
      check=lambda sb, c, t: None if "1/metrics.json" in t else "the half-written "
      "metrics.json is neither refused nor named"),
    P("report_unknown_metric", "7", "report", "report.yaml metric key val/f2 (absent)",
      [*REPORT, SWEEP, "--config", "{work}/report.yaml"], needles=("val/f2",),
      setup=both(sweep("mrpc"), report_yaml(metrics=[{"key": "val/f2"}])),
      check=lambda sb, c, t: None if "val/f2" in t.strip().splitlines()[-1] else "the error "
      "it stops with does not name val/f2 (a warning before it does)"),
    P("report_unknown_config_key", "7", "report", "report.yaml with an unknown key",
      [*REPORT, SWEEP, "--config", "{work}/report.yaml"], needles=("group_bye",),
      setup=both(sweep("mrpc"), report_yaml(group_bye=["loss"]))),
    P("report_empty_folder", "7", "report", "a folder with no jobs",
      [*REPORT, "{out}/sweeps/empty"], needles=("empty",), setup=sweep("empty")),
    P("report_missing_folder", "7", "report", "a folder that does not exist",
      [*REPORT, "{out}/sweeps/nope"], needles=("nope",)),
    P("amoc_report_ok", "7", "amoc.report", "a real tiny run's candidates (tolerated)",
      [*AMOC_REPORT, "{out}/amoc_runs/a", "--out", "{out}/amoc_report"], expect="ok",
      setup=amoc_candidates("none"),
      check=lambda sb, c, t: None if (sb.outputs / "amoc_report/results.md").is_file()
      else "no results.md"),
    P("amoc_report_truncated", "7", "amoc.report", "candidates.csv cut mid-row",
      [*AMOC_REPORT, "{out}/amoc_runs/a", "--out", "{out}/amoc_report"],
      needles=("candidates.csv",), setup=amoc_candidates("truncate")),
    P("amoc_report_missing_column", "7", "amoc.report", "candidates.csv without ate_target",
      [*AMOC_REPORT, "{out}/amoc_runs/a", "--out", "{out}/amoc_report"],
      needles=("ate_target",), setup=amoc_candidates("drop_column")),
    P("amoc_report_duplicate", "7", "amoc.report", "the same candidates in two runs",
      [*AMOC_REPORT, "{out}/amoc_runs", "--out", "{out}/amoc_report"],
      needles=("several runs",), setup=amoc_candidates("duplicate")),
    P("amoc_report_no_candidates", "7", "amoc.report", "a run folder without candidates.csv",
      [*AMOC_REPORT, "{out}/amoc_runs/a", "--out", "{out}/amoc_report"],
      needles=("candidates.csv",), setup=amoc_candidates("remove")),
    # 8. resumable searches, stale recipe steps ----------------------------------------------
    P("amoc_killed_mid_search", "8", "run amoc_tiny", "kill -9 during the candidate search, "
      "then the same command: resumes the search", [*AMOC, "task.source.n_train=1000",
                                                     "hydra.run.dir={out}/runs/a", FEATURES_ONLY],
      expect="ok", action=kill9_then_rerun("amoc candidate 4/"), check=amoc_resumed(14)),
    P("recipe_stale_step", "8", "recipe", "re-run after changing a finished step's overrides",
      [*RECIPE, *RECIPE_OUT], expect="either", needles=(("stale", "changed"), "teacher"),
      setup=recipe_stale(common=False), check=reran_with_seed_2),
    P("recipe_stale_common", "8", "recipe", "re-run after changing the recipe's common "
      "overrides", [*RECIPE, *RECIPE_OUT], expect="either",
      needles=(("stale", "changed"), "teacher"), setup=recipe_stale(common=True),
      check=reran_with_seed_2),
    # other ----------------------------------------------------------------------------------
    P("unknown_stage", "other", "run", "-cn no_such_stage", [*RUN, "-cn", "no_such_stage"],
      needles=("no_such_stage",)),
    P("unknown_key", "other", "run teacher", "trainer.max_epoch=3 (typo)",
      teacher("trainer.max_epoch=3"), needles=("max_epoch",)),
    P("bad_seed_type", "other", "run teacher", "seed=abc", teacher("seed=abc"),
      needles=("seed",), before_work=True),
    P("teacher_dir_missing", "other", "run distill", "teacher.name_or_path=<missing folder>",
      [*DISTILL, *PATH_TEACHER, "teacher.name_or_path={work}/no_teacher"],
      needles=("no_teacher",)),
    P("recipe_missing_file", "other", "recipe", "a recipe path that does not exist",
      [*RECIPE, "{work}/nope.yaml"], needles=("nope.yaml",)),
    P("recipe_unknown_key", "other", "recipe", "a recipe with 'stepz'",
      [*RECIPE, *RECIPE_OUT], needles=("stepz",),
      setup=lambda sb: (sb.work / "r.yaml").write_text("stepz: {}\n")),
    P("recipe_forward_reference", "other", "recipe", "a step using a later step's output",
      [*RECIPE, *RECIPE_OUT], needles=("later",),
      setup=recipe_file({"a": {"config": "distill", "overrides": [
          *DISTILL[4:], "teacher=path", "teacher.name_or_path={later:export_dir}"]},
          "later": TINY_STEP})),
    P("recipe_bad_reference_key", "other", "recipe", "{teacher:no_such_key}",
      [*RECIPE, *RECIPE_OUT], needles=("no_such_key",),
      setup=both(recipe_file({"teacher": TINY_STEP}),  # the first step done beforehand
                 lambda sb: must(*sb.run([*RECIPE, *RECIPE_OUT], "setup"), "first step"),
                 recipe_file({"teacher": TINY_STEP, "b": {"config": "distill", "overrides": [
                     *DISTILL[4:], "teacher=path",
                     "teacher.name_or_path={teacher:no_such_key}"]}}))),
    P("recipe_failing_step", "other", "recipe", "a step with a bad override: the recipe stops "
      "naming it", [*RECIPE, *RECIPE_OUT], needles=("teacher", "max_epoch"),
      setup=recipe_file({"teacher": {"config": "teacher",
                                     "overrides": [*TEACHER[4:], "trainer.max_epoch=2"]}})),
]
