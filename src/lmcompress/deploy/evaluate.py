"""The dev metric of a runtime variant, on the dev split the export folder records.

The export record (``lmcompress_export.json``, written by :mod:`lmcompress.deploy.card`) holds
the resolved task and data configs of the run; the datamodule is rebuilt from them through the
project's data code, so the dev split, tokenizer, length and limits are the training run's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from lmcompress.metrics import TaskMetrics, predictions
from lmcompress.utils.instantiate import instantiate_plain


def datamodule(rec: dict[str, Any], folder: str) -> Any:
    """The run's datamodule rebuilt from the export record; refused with the folder named."""
    task = rec.get("task_config") or {}
    try:
        source = instantiate_plain(task["source"])
        return instantiate_plain(rec["data_config"], source=source)
    except (KeyError, TypeError, ValueError, ImportError) as err:
        raise ValueError(f"{folder}: the task recorded in lmcompress_export.json "
                         f"({rec.get('task')!r}) cannot be loaded: {err}") from err


def dev_metric(run: Callable[[dict[str, torch.Tensor]], torch.Tensor], data: Any,
               rec: dict[str, Any], batch_size: int = 32) -> dict[str, float]:
    """Every metric of the task on its dev split, with ``run`` giving the logits."""
    task = rec["task_config"]
    num_labels = len(rec.get("labels") or []) or int(task.get("num_labels", 2))
    metric = TaskMetrics(task.get("kind", "classification"), list(task.get("metrics") or [
        rec["main_metric"]]), num_labels, where="dev")
    split = getattr(data, "val_split", "validation")
    with torch.no_grad():
        for batch in data.eval_dataloader(split, batch_size=batch_size):
            logits = run(batch)
            metric.update(predictions(metric.kind, logits), batch["labels"])
    return {k: float(v) for k, v in metric.compute().items()}
