"""Sweep folders -> one row per job (per sub-model), and every job that failed or never ran.

A Hydra multirun (``conf/hydra/default.yaml``) leaves ``<sweep dir>/multirun.yaml`` and, per job,
``<sweep dir>/<job number>/.hydra/overrides.yaml``; a finished job also has ``metrics.json``
(written last by ``lmcompress.run``). A job folder without ``metrics.json`` failed (or is still
running): its ``run.log`` says why. A job the sweeper planned but that has no folder never
started, e.g. because an earlier job stopped the basic launcher. Either is ``re-run`` when a job
with the same overrides finished in another of the folders given (a sweep completed by a second
multirun of its missing jobs).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from lmcompress.report.groups import OVERRIDES, SWEEP_CONFIG

log = logging.getLogger(__name__)

PROBLEM_COLUMNS = ["sweep", "job", "status", "overrides", "error"]
# DynaBERT's sub-model names (docs/dynabert.md) also give width and depth columns.
SUBNET_NAME = re.compile(r"^w(?P<width>\d+(?:\.\d+)?)_d(?P<depth>\d+(?:\.\d+)?)$")
RERUN = "re-run"  # status of a failed or missing job that finished in another given folder
UNREADABLE = "metrics.json unreadable, left out"
# What lmcompress.run always writes: a metrics.json without them is not one of its files.
REQUIRED_METRICS = ("stage", "seed", "main_metric", "val")
# The last line of a Python traceback: "ValueError: ...", "torch.OutOfMemoryError: ...".
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


class Plan(NamedTuple):
    """The jobs Hydra's basic sweeper runs: one override list per job number."""

    jobs: list[tuple[str, ...]]
    swept: list[str]  # keys of the sweeper's params and of command-line sweeps (``a=1,2``)


def load_jobs(sweep_dirs: Iterable[str | Path], derive: Mapping[str, str] | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Finished jobs (one row per job and sub-model) and problems (failed or missing jobs).

    Args:
        sweep_dirs: multirun folders (or single run folders).
        derive: new column -> format string over a row's columns, e.g.
            ``{"student": "{num_layers}L/{hidden_size}"}``.

    Returns:
        ``jobs``: the swept keys, ``stage``, ``task``, ``seed``, metrics (``val/*``, ``test/*``,
        ``<report split>/*``), model stats (``params_total``, ``latency_ms_b1`` ...),
        ``wall_time_s``, ``sweep``, ``job`` and ``subnet`` for multi-sub-model stages.
        ``problems``: one row per failed or missing job (:data:`PROBLEM_COLUMNS`).
    """
    rows: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    finished: dict[tuple, str] = {}   # (sweep config, overrides) -> "<sweep>/<job>" finished
    for sweep in map(Path, sweep_dirs):
        if not sweep.is_dir():
            raise FileNotFoundError(f"no sweep folder {sweep}")
        jobs = job_dirs(sweep)
        for job in jobs:
            if (job / "metrics.json").is_file():
                try:
                    rows += job_rows(job, sweep)
                except ValueError as err:  # half-written or foreign: never read in part
                    log.warning("report: leaving out %s", err)
                    problems.append({**_problem(sweep, job, UNREADABLE, raw_overrides(job),
                                                str(err)), "config": sweep_config(sweep)})
                    continue
                where = f"{sweep}/{_job_name(job, sweep)}"
                finished.setdefault((sweep_config(sweep), frozenset(raw_overrides(job))), where)
            else:
                problems.append({**_problem(sweep, job, "failed or still running",
                                            raw_overrides(job), last_error(job / "run.log")),
                                 "config": sweep_config(sweep)})
        problems += [{**p, "config": sweep_config(sweep)} for p in missing_jobs(sweep, jobs)]
    problems = mark_reruns(problems, finished)
    for row in rows:
        for column, template in (derive or {}).items():
            row[column] = _format(template, row)
    return pd.DataFrame(rows), pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def job_dirs(sweep: Path) -> list[Path]:
    """Folders holding ``.hydra/`` under ``sweep`` (itself, for a single run), job 2 before 10."""
    dirs = {p.parent for p in sweep.rglob(".hydra") if p.is_dir()}
    return sorted(dirs, key=lambda p: [int(t) if t.isdigit() else t
                                       for t in re.split(r"(\d+)", p.as_posix())])


def job_rows(job: Path, sweep: Path) -> list[dict[str, Any]]:
    """A finished job's rows: one, or one per sub-model (``subnet``) when it has several."""
    metrics = read_metrics(job / "metrics.json")
    swept = overrides(job)
    base = {
        "sweep": str(sweep), "job": _job_name(job, sweep),
        OVERRIDES: swept, SWEEP_CONFIG: _config_name(sweep),
        "stage": metrics.get("stage"), "task": metrics.get("task"),
        "main_metric": metrics.get("main_metric"),
        **swept,  # the values as typed on the command line: task=glue/mrpc wins over task's name
        "seed": metrics.get("seed", swept.get("seed")),  # the int the run used
        "wall_time_s": metrics.get("wall_time_s"),
        "teacher_model": (metrics.get("teacher") or {}).get("name_or_path"),
    }
    model = _numbers(metrics.get("model") or {})
    submodels = metrics.get("submodels")
    if not submodels:
        reports = {_report_key(split, k): v for split, scores in metrics.get("reports", {}).items()
                   for k, v in scores.items()}
        return [{**base, **model, **metrics.get("val", {}), **metrics.get("test", {}), **reports}]
    return [{**base, "subnet": name, **_subnet_fields(name),
             **(_numbers(entry.get("model") or {}) or model),
             **entry.get("val", {}), **entry.get("test", {})}
            for name, entry in submodels.items()]


def read_metrics(path: Path) -> dict[str, Any]:
    """A job's ``metrics.json``, whole, or ValueError naming the file and what is wrong."""
    text = path.read_text(errors="replace")
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} of "
                         f"{text.count(chr(10)) + 1}; half-written or truncated?)") from err
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: a JSON {type(metrics).__name__}, not an object")
    missing = [key for key in REQUIRED_METRICS if key not in metrics]
    if missing:
        raise ValueError(f"{path}: no {missing} (every lmcompress.run metrics.json has "
                         f"{list(REQUIRED_METRICS)})")
    return metrics


def _subnet_fields(name: str) -> dict[str, float]:
    match = SUBNET_NAME.match(name)
    return {k: float(v) for k, v in match.groupdict().items()} if match else {}


def raw_overrides(job: Path) -> list[str]:
    """The job's command-line overrides as Hydra wrote them (``.hydra/overrides.yaml``)."""
    path = job / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def overrides(job: Path) -> dict[str, str]:
    """The job's overrides as ``{key: value}``: ``+a.b=1`` -> ``{"a.b": "1"}``; no deletions."""
    pairs = (o.split("=", 1) for o in raw_overrides(job) if "=" in o and not o.startswith("~"))
    return {key.lstrip("+"): value for key, value in pairs}


def last_error(log: Path, tail_bytes: int = 16_384) -> str:
    """The error line near the end of a job's ``run.log``: the exception, else an ERROR line."""
    if not log.is_file():
        return "no run.log"
    with log.open("rb") as f:
        f.seek(max(0, log.stat().st_size - tail_bytes))
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
    errors = [line for line in lines if "[ERROR]" in line]
    if exceptions or errors:
        return (exceptions or errors)[-1]
    return f"no error logged; last line: {lines[-1]}" if lines else "run.log is empty"


def missing_jobs(sweep: Path, jobs: Sequence[Path]) -> list[dict[str, Any]]:
    """Jobs of the sweep's plan without a folder; a note when the plan can't be expanded."""
    if not (sweep / "multirun.yaml").is_file():
        return []
    plan = sweep_plan(sweep)
    if plan is None:
        return [_problem(sweep, "?", "plan not expanded", [],
                         "multirun.yaml: not a basic-sweeper grid; missing jobs not checked")]
    started = {frozenset(raw_overrides(job)) for job in jobs}
    return [_problem(sweep, str(number), "planned, never started", planned, "")
            for number, planned in enumerate(plan.jobs) if frozenset(planned) not in started]


def mark_reruns(problems: list[dict[str, Any]], finished: Mapping[tuple, str]
                ) -> list[dict[str, Any]]:
    """A failed or missing job that finished in another given folder of the same sweep config.

    Its row stays (the report says what happened) with the status ``re-run`` and the finished
    job's folder; :func:`open_problems` leaves such rows out of the failure count.
    """
    for problem in problems:
        config = problem.pop("config", None)
        done = finished.get((config, frozenset(problem["overrides"].split())))
        if done is not None:
            problem["status"], problem["error"] = RERUN, f"finished in {done}"
    return problems


def sweep_config(sweep: Path) -> tuple[str, str] | None:
    """``(-cd folder, -cn name)`` a multirun was launched with; None for a single run."""
    hydra = _multirun(sweep).get("hydra") or {}
    if not hydra:
        return None
    return (str(sweep_config_dir(sweep)), str((hydra.get("job") or {}).get("config_name")))


def _config_name(sweep: Path) -> str | None:
    """``<-cd folder name>/<-cn name>`` of a multirun (None for a single run)."""
    config = sweep_config(sweep)
    return None if config is None else f"{Path(config[0]).name}/{config[1]}"


def open_problems(problems: pd.DataFrame) -> pd.DataFrame:
    """The failed or missing jobs that no other given folder re-ran."""
    return problems[problems["status"] != RERUN] if not problems.empty else problems


def sweep_plan(sweep: Path) -> Plan | None:
    """The job list Hydra's BasicSweeper makes from ``multirun.yaml``, as it makes it.

    The sweeper's ``params`` come first, then the command-line overrides (a key given twice
    keeps its first position, last value); the jobs are their Cartesian product, in order, so
    job ``i`` is folder ``i``. ``range(...)`` and ``choice(...)`` expand; ``glob`` and interval
    sweeps (Optuna) don't, and give None.
    """
    hydra = _multirun(sweep).get("hydra") or {}
    sweeper = hydra.get("sweeper") or {}
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = sweeper.get("params") or {}
    command_line = (hydra.get("overrides") or {}).get("task") or []
    arguments = [f"{k}={v}" for k, v in params.items()] + list(command_line)
    choices: dict[str, list[str]] = {}
    swept = []
    try:
        for override in OverridesParser.create().parse_overrides(arguments):
            key = override.get_key_element()
            if override.is_sweep_override():
                values = list(override.sweep_string_iterator())  # raises for interval sweeps
            else:
                values = [override.get_value_element_as_str()]
            choices[key] = [f"{key}={value}" for value in values]
            if override.is_sweep_override() or key in params:
                swept.append(key.lstrip("+~"))
    except Exception:  # whatever Hydra's parser can't expand offline (glob needs the config)
        return None
    return Plan(list(itertools.product(*choices.values())), list(dict.fromkeys(swept)))


def sweep_config_dir(sweep: Path) -> Path | None:
    """The folder given to ``-cd`` when the sweep was launched (e.g. ``sweeps/ckd_mrpc_cpu``)."""
    runtime = (_multirun(sweep).get("hydra") or {}).get("runtime") or {}
    for source in runtime.get("config_sources") or []:
        if source.get("provider") == "command-line" and source.get("schema") == "file":
            return Path(source["path"])
    return None


def _multirun(sweep: Path) -> dict[str, Any]:
    path = sweep / "multirun.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _problem(sweep: Path, job: Path | str, status: str, overrides: Sequence[str], error: str
             ) -> dict[str, Any]:
    name = _job_name(job, sweep) if isinstance(job, Path) else job
    return {"sweep": str(sweep), "job": name, "status": status,
            "overrides": " ".join(overrides), "error": error}


def _job_name(job: Path, sweep: Path) -> str:
    return job.relative_to(sweep).as_posix()


def _numbers(stats: Mapping[str, Any]) -> dict[str, float]:
    """The numeric model stats (params, size, latency), without nested entries."""
    return {k: v for k, v in stats.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def _report_key(split: str, key: str) -> str:
    return key if key.startswith(f"{split}/") else f"{split}/{key}"


def _format(template: str, row: Mapping[str, Any]) -> str | None:
    """``template.format(**row)`` with whole floats as ints (3.0 -> 3); None if a key is absent."""
    values = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in row.items()}
    try:
        return template.format_map(values)
    except (KeyError, IndexError):
        return None
