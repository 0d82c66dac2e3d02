"""Label checks of the data module: which splits must be labelled, and task vs source.

Train, validation and report splits must be labelled; a test split is fully labelled (scored) or
fully label-less (predictions only); the task config must agree with its source (docs/data.md).
"""

from __future__ import annotations

import logging

from lmcompress.data.base import DataSourceError, Example, Source
from lmcompress.specs import TaskSpec

log = logging.getLogger(__name__)


def check_task_matches_source(task: TaskSpec, source: Source) -> None:
    """Refuse a task config that disagrees with its data source (kind, label set, count)."""
    if source.kind != task.kind:
        raise ValueError(f"task.kind={task.kind!r} but the data source "
                         f"{type(source).__name__} gives {source.kind!r} examples")
    names = source.label_names
    if task.kind == "regression" or names is None:
        return
    if task.num_labels != len(names):
        raise ValueError(f"task.num_labels={task.num_labels} but the data source has "
                         f"{len(names)} labels: {list(names)}")
    if task.label_names is not None and list(task.label_names) != list(names):
        raise ValueError(f"task.label_names={list(task.label_names)} differ from the data "
                         f"source's labels {list(names)} (same order required)")


def require_all_labelled(examples: list[Example], split: str) -> None:
    """Refuse the first unlabelled example of a split that must be labelled, by file and line."""
    missing = next((e for e in examples if e.label is None), None)
    if missing is not None:
        raise DataSourceError(f"{missing.where or split}: no label (empty or a placeholder such "
                              f"as '-' or '-1'), but split '{split}' must be labelled")


def scored_test_split(examples: list[Example], split: str) -> bool:
    """True: every test example is labelled (scored); False: none is (predictions only)."""
    unlabelled = [e for e in examples if e.label is None]
    if not unlabelled:
        return True
    if len(unlabelled) == len(examples):
        log.info("test split '%s' has no labels: it is run for predictions only", split)
        return False
    labelled = len(examples) - len(unlabelled)
    raise DataSourceError(f"{unlabelled[0].where or split}: no label, but {labelled} other "
                          f"examples of test split '{split}' are labelled; label all or none")
