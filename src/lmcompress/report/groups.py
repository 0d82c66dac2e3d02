"""Which jobs one table row averages: every job of a row differs from the others by its seed only.

A row of the report is a mean ± std "over seeds", so the jobs it averages must be the same
experiment run with different seeds. What a job was is its command-line overrides (the values
the sweep set, ``.hydra/overrides.yaml``) and the sweep config it was launched with (``-cd``
and ``-cn``): the *identity* of a job here. By default a report groups by every identity key
in which the jobs differ (seed excepted). A report that declares ``group_by`` is refused,
naming the key, when two jobs of one row differ outside those keys (two learning rates averaged
as if they were two seeds), or when two jobs of one row ran with the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

OVERRIDES = "_overrides"  # jobs column: {key: value} of the job's command-line overrides
SWEEP_CONFIG = "sweep_config"  # jobs column: "<-cd folder name>/<-cn name>" (None: a single run)


def identity(jobs: pd.DataFrame) -> pd.DataFrame:
    """One column per override key (None where a job did not set it), then ``sweep_config``."""
    frame = pd.DataFrame(list(jobs[OVERRIDES]), index=jobs.index)
    frame = frame.astype(object).where(frame.notna(), None)
    frame[SWEEP_CONFIG] = jobs[SWEEP_CONFIG]
    return frame


def differing_keys(jobs: pd.DataFrame, seed_key: str = "seed") -> list[str]:
    """The identity keys in which the jobs differ, first-seen order, without ``seed_key``."""
    frame = identity(jobs)
    return [key for key in frame.columns
            if key != seed_key and frame[key].astype(str).nunique() > 1]


def check_groups(jobs: pd.DataFrame, group_by: Sequence[str], seed_key: str = "seed",
                 where: str = "group_by") -> None:
    """Refuse a row whose jobs differ outside ``group_by`` + ``seed_key``, or repeat a seed.

    Raises:
        ValueError: names the key, two of its values and the jobs holding them (or the seed and
            its jobs), and how to fix the report config.
    """
    frame = identity(jobs)
    free = [key for key in frame.columns if key not in group_by and key != seed_key]
    for values, part in jobs.groupby(list(group_by), sort=False, dropna=False):
        row = _row_name(group_by, values)
        for key in free:
            seen = frame.loc[part.index, key].astype(str)
            if seen.nunique() > 1:
                first, other = seen.index[0], seen.index[seen != seen.iloc[0]][0]
                raise ValueError(
                    f"report row {row} would average jobs that differ in {key!r}: "
                    f"{_show(frame.loc[first, key])} ({_job(jobs, first)}) vs "
                    f"{_show(frame.loc[other, key])} ({_job(jobs, other)}); a row is one "
                    f"experiment over {seed_key}s: add {key!r} to {where} in report.yaml (or "
                    "leave group_by unset: rows then split on every differing override)")
        if seed_key in part:
            repeated = part[part[seed_key].duplicated(keep=False) & part[seed_key].notna()]
            if len(repeated):
                seed = repeated[seed_key].iloc[0]
                same = [_job(jobs, i) for i in repeated.index[repeated[seed_key] == seed]]
                raise ValueError(
                    f"report row {row} has {len(same)} jobs with {seed_key}={seed}: "
                    f"{', '.join(same)}; the same job finished twice (pass one of the folders) "
                    f"or they differ in a key the report cannot see")


def _row_name(group_by: Sequence[str], values: Any) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return "(" + ", ".join(f"{k}={_show(v)}" for k, v in zip(group_by, values, strict=True)) + ")"


def _show(value: Any) -> str:
    return "(not set)" if value is None or value != value else repr(value)


def _job(jobs: pd.DataFrame, index: Any) -> str:
    return f"{jobs.at[index, 'sweep']}/{jobs.at[index, 'job']}"
