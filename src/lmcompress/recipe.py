"""Chained recipes: several stages in order, each passing its artifacts to the next by path.

``python -m lmcompress.recipe recipes/<name>.yaml [--out DIR] [--dry-run]``. A recipe names its
steps in order; each step is one ``lmcompress.run`` (a stage config plus overrides) writing to
``<out>/<step>``. An override may refer to an earlier step's ``metrics.json`` as
``{step:path/to/key}`` (e.g. ``{teacher:export_dir}``,
``{dynabert_w:submodels/w1.00_d1.00/export_dir}``). A step with ``config: deploy`` runs
``python -m lmcompress.deploy`` with its own overrides as arguments (the recipe's common
overrides are not added) and ``--out <out>/<step>`` (docs/deploy.md)::

    overrides: [logger=csv]            # added to every step
    steps:
      teacher: {config: teacher, overrides: [task=generated]}
      student:
        config: distill
        overrides: [teacher=path, "teacher.name_or_path={teacher:export_dir}"]

Each step's folder records what it was run with (``recipe_step.json``: the stage config, the
resolved overrides and a digest of every earlier ``metrics.json`` it refers to). Re-running the
command skips a step only if it finished and that record equals the current one; an
interrupted step resumes from its ``last.ckpt``; a step recorded with another config is
refused, naming the differing keys (docs/launch.md). A failed step is reported with its exit
status, signal and reason (the run's ``status.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lmcompress.utils.io import write_json_atomic
from lmcompress.utils.paths import output_root
from lmcompress.utils.safe_paths import inside
from lmcompress.utils.task_wrapper import STATUS_FILE

PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")
RECORD = "recipe_step.json"


class RecipeError(ValueError):
    """A recipe file or a step reference that cannot be used; the message names it."""


class StepFailed(RuntimeError):
    """A step's run failed; ``code`` is its exit status (the recipe exits with it)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def load_recipe(path: Path) -> dict[str, Any]:
    """The recipe's common overrides and its ordered steps, checked."""
    recipe = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(recipe) - {"name", "overrides", "steps"})
    if unknown or not isinstance(recipe.get("steps"), dict) or not recipe["steps"]:
        raise RecipeError(f"{path}: needs 'steps' (a mapping of step names); unknown keys "
                          f"{unknown}")
    for name, step in recipe["steps"].items():
        if not isinstance(step, dict) or "config" not in step or set(step) - {"config",
                                                                             "overrides"}:
            raise RecipeError(f"{path}: step '{name}' needs 'config' (a stage or deploy) and "
                              "optionally 'overrides'")
    return recipe


def resolve(text: str, done: dict[str, dict[str, Any]], step: str) -> str:
    """Replace every ``{step:path/to/key}`` by that value of an earlier step's metrics.json."""

    def value(match: re.Match) -> str:
        source, path = match.group(1), match.group(2)
        if source not in done:
            raise RecipeError(f"step '{step}' refers to '{source}', which is not an earlier step")
        node: Any = done[source]
        for key in path.split("/"):
            if not isinstance(node, dict) or key not in node:
                raise RecipeError(f"step '{step}': '{source}' has no '{path}' in its metrics.json")
            node = node[key]
        return str(node)

    return PLACEHOLDER.sub(value, text)


def step_record(config: str, overrides: list[str], raw: list[str], out: Path) -> dict[str, Any]:
    """What a step is run with: its config, resolved overrides, and the inputs it refers to."""
    sources = sorted({m.group(1) for o in raw for m in PLACEHOLDER.finditer(o)})
    inputs = {s: hashlib.sha256((out / s / "metrics.json").read_bytes()).hexdigest()[:16]
              for s in sources}
    return {"config": config, "overrides": overrides, "inputs": inputs}


def record_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every key a step's stored record and the current one differ in."""
    def split(record: dict[str, Any]) -> dict[str, Any]:
        keys = {"config": record.get("config")}
        for override in record.get("overrides", []):
            key, _, value = str(override).partition("=")
            keys[key] = value
        keys.update({f"input {s} (its metrics.json)": d
                     for s, d in record.get("inputs", {}).items()})
        return keys

    old, new = split(saved), split(now)
    return [f"{k}: {old.get(k, '<unset>')} -> {new.get(k, '<unset>')}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def is_done(name: str, folder: Path, record: dict[str, Any]) -> bool:
    """True if the step finished with this record; False if it has not finished; else refuse."""
    saved_path, finished = folder / RECORD, (folder / "metrics.json").is_file()
    if not saved_path.is_file():
        if finished:
            raise RecipeError(f"step '{name}': {folder} has a metrics.json but no {RECORD}, so "
                              "what it was run with is unknown; delete the folder to rerun it, "
                              "or use another --out")
        return False
    differ = record_differences(json.loads(saved_path.read_text()), record)
    if differ:
        raise RecipeError(
            f"step '{name}': {folder} was run with another config (changed: "
            f"{'; '.join(differ)}); its results would not be this recipe's. Delete the folder "
            "to rerun the step, or use another --out")
    return finished


def failure(name: str, folder: Path, code: int) -> str:
    """The message for a failed step: exit status, signal and the reason its run recorded."""
    status_path = folder / STATUS_FILE
    status = json.loads(status_path.read_text()) if status_path.is_file() else {}
    signum = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else None
    signame = status.get("signal") or (signal.Signals(signum).name if signum else None)
    how = f"signal {signame}" if signame else f"exit status {code}"
    reason = status.get("reason") or ("no metrics.json written" if code == 0 else "")
    return (f"[recipe] step '{name}' failed ({how}){': ' + reason if reason else ''} "
            f"(log: {folder}/run.log); fix it and re-run the same command: finished steps are "
            f"skipped and '{name}' resumes from its last checkpoint")


def run_child(command: list[str]) -> int:
    """Run one step; SIGTERM / SIGINT sent to the recipe are passed on to it."""
    child = subprocess.Popen(command)

    def forward(signum: int, _frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_steps(recipe: dict[str, Any], out: Path, dry_run: bool = False) -> dict[str, Any]:
    """Run (or skip) every step in order; returns each step's metrics.json."""
    done: dict[str, dict[str, Any]] = {}
    # every step's folder is checked before the first step runs (utils/safe_paths.py)
    folders = {name: inside(out, name, "recipe step") for name in recipe["steps"]}
    for name, step in recipe["steps"].items():
        folder = folders[name]
        metrics = folder / "metrics.json"
        common = [] if step["config"] == "deploy" else recipe.get("overrides", [])
        raw = [str(o) for o in [*common, *step.get("overrides", [])]]
        overrides = raw if dry_run else [resolve(o, done, name) for o in raw]
        command = ([sys.executable, "-m", "lmcompress.deploy", *overrides, "--out", str(folder)]
                   if step["config"] == "deploy" else  # arguments of lmcompress.deploy
                   [sys.executable, "-m", "lmcompress.run", "-cn", step["config"], *overrides,
                    f"hydra.run.dir={folder}"])
        if dry_run:
            print(f"[recipe] {name}: {' '.join(command[2:])}", flush=True)
            done[name] = {}
            continue
        record = step_record(step["config"], overrides, raw, out)
        if is_done(name, folder, record):
            print(f"[recipe] {name}: done ({metrics}), skipped", flush=True)
        else:
            print(f"[recipe] {name}: {' '.join(command[2:])}", flush=True)
            write_json_atomic(folder / RECORD, record)
            code = run_child(command)
            if code != 0 or not metrics.is_file():
                # the recipe's own status: the step's, or 128 + signal if a signal killed it
                raise StepFailed(failure(name, folder, code), 128 - code if code < 0 else code or 1)
        done[name] = json.loads(metrics.read_text())
    return done


def summary(name: str, folder: Path, metrics: dict[str, Any]) -> list[str]:
    """A step's result line(s): AMoC's choices for an AMoC run, else the dev main metric."""
    selection = folder / "amoc" / "selection.json"
    if not selection.is_file():
        main_metric = metrics.get("main_metric", "")
        return [f"[recipe] {name}: {main_metric} = {metrics.get('val', {}).get(main_metric)}"]
    lines = []
    for entry in json.loads(selection.read_text())["selections"]:
        pair = f"{entry['source']}->{entry['target']} k={entry['k']}"
        chosen = entry.get("amoc")
        lines.append(f"[recipe] {name}: {pair}: " + (
            f"removed layers {chosen['removed']}, predicted target score "
            f"{chosen['predicted']:.4f}, true {chosen['target_score']:.4f} (oracle "
            f"{entry['oracle']['target_score']:.4f}, full model {entry['full']:.4f})"
            if chosen else "no AMoC choice (features only)"))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run a recipe from the command line."""
    parser = argparse.ArgumentParser(prog="python -m lmcompress.recipe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--out", type=Path, help="default: <output root>/recipes/<recipe name> "
                        "(the output root: $LMCOMPRESS_OUTPUT_DIR, else the checkout's outputs/)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    try:
        out = args.out or inside(output_root() / "recipes",
                                 recipe.get("name", args.recipe.stem), f"{args.recipe}: name")
        done = run_steps(recipe, out, args.dry_run)
    except StepFailed as err:
        print(err, file=sys.stderr, flush=True)
        return err.code
    except (RecipeError, ValueError) as err:
        print(f"[recipe] {err}", file=sys.stderr, flush=True)
        return 2
    if not args.dry_run:
        for name, metrics in done.items():
            print("\n".join(summary(name, out / name, metrics)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
