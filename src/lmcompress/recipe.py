"""Chained recipes: several stages in order, each passing its artifacts to the next by path.

``python -m lmcompress.recipe recipes/<name>.yaml [--out DIR] [--dry-run]``. A recipe names its
steps in order; each step is one ``lmcompress.run`` (a stage config plus overrides) writing to
``<out>/<step>``. An override may refer to an earlier step's ``metrics.json`` as
``{step:path/to/key}`` (e.g. ``{teacher:export_dir}``,
``{dynabert_w:submodels/w1.00_d1.00/export_dir}``). Re-running the command skips every step whose
``metrics.json`` exists and resumes an interrupted one from its ``last.ckpt``::

    overrides: [logger=csv]            # added to every step
    steps:
      teacher: {config: teacher, overrides: [task=generated]}
      student:
        config: distill
        overrides: [teacher=path, "teacher.name_or_path={teacher:export_dir}"]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from lmcompress.utils.safe_paths import inside

PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")


class RecipeError(ValueError):
    """A recipe file or a step reference that cannot be used; the message names it."""


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
            raise RecipeError(f"{path}: step '{name}' needs 'config' (a stage) and optionally "
                              "'overrides'")
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


def run_steps(recipe: dict[str, Any], out: Path, dry_run: bool = False) -> dict[str, Any]:
    """Run (or skip) every step in order; returns each step's metrics.json."""
    done: dict[str, dict[str, Any]] = {}
    # every step's folder is checked before the first step runs (utils/safe_paths.py)
    folders = {name: inside(out, name, "recipe step") for name in recipe["steps"]}
    for name, step in recipe["steps"].items():
        folder = folders[name]
        metrics = folder / "metrics.json"
        raw = [str(o) for o in [*recipe.get("overrides", []), *step.get("overrides", [])]]
        overrides = raw if dry_run else [resolve(o, done, name) for o in raw]
        command = [sys.executable, "-m", "lmcompress.run", "-cn", step["config"], *overrides,
                   f"hydra.run.dir={folder}"]
        if metrics.is_file():
            print(f"[recipe] {name}: done ({metrics}), skipped", flush=True)
        else:
            print(f"[recipe] {name}: {' '.join(command[2:])}", flush=True)
            if dry_run:
                done[name] = {}
                continue
            if subprocess.run(command).returncode != 0:
                raise SystemExit(f"[recipe] step '{name}' failed (log: {folder}/run.log); fix it "
                                 "and re-run the same command: finished steps are skipped and "
                                 f"'{name}' resumes from its last checkpoint")
        done[name] = json.loads(metrics.read_text())
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Run a recipe from the command line."""
    parser = argparse.ArgumentParser(prog="python -m lmcompress.recipe",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("--out", type=Path, help="default: outputs/recipes/<recipe name>")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    recipe = load_recipe(args.recipe)
    out = args.out or inside(Path("outputs") / "recipes", recipe.get("name", args.recipe.stem),
                             f"{args.recipe}: name")
    done = run_steps(recipe, out, args.dry_run)
    if not args.dry_run:
        for name, metrics in done.items():
            main_metric = metrics.get("main_metric", "")
            print(f"[recipe] {name}: {main_metric} = {metrics.get('val', {}).get(main_metric)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
