"""Scoring a trained stage: dev, test (or predictions), report splits, one entry per sub-model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig

from lmcompress.models.hub import model_stats
from lmcompress.utils import artifacts


def evaluate(trainer: pl.Trainer, module: Any, datamodule: Any, best: str | None,
             out: Path, cfg: DictConfig) -> dict[str, Any]:
    """Dev, test (scored, or predictions when label-less) and report splits of ``best``."""
    def scores(fn, loader=None):
        kwargs = {"dataloaders": loader} if loader is not None else {"datamodule": datamodule}
        return {k: float(v) for r in fn(module, ckpt_path=best, verbose=False, **kwargs)
                for k, v in r.items()}

    result: dict[str, Any] = {"val": scores(trainer.validate), "test": {}, "reports": {}}
    split = datamodule.test_split
    if cfg.test and split and datamodule.test_labeled:
        result["test"] = scores(trainer.test)
    elif cfg.test and split:
        batches = trainer.predict(module, dataloaders=datamodule.eval_dataloader(split),
                                  ckpt_path=best)
        result["predictions"] = write_gathered_predictions(
            trainer, batches, module.task.label_names, out / "predictions" / f"{split}.tsv")
    for split in datamodule.report_splits:
        module.test_prefix = split
        result["reports"][split] = scores(trainer.test, datamodule.eval_dataloader(split))
    module.test_prefix = "test"
    return result


def write_gathered_predictions(trainer: Any, batches: list[dict[str, Any]],
                               label_names: list[str] | None, path: Path) -> str:
    """Rank 0 writes every rank's predictions into one file; the other ranks write nothing.

    Under DDP each rank predicts its own shard of the split (each example once); the shards
    are gathered to every rank (``all_gather_object``) and only rank 0 writes the file.
    """
    if trainer.world_size > 1:
        import torch.distributed as dist

        shards: list[Any] = [None] * trainer.world_size
        dist.all_gather_object(shards, batches)
        batches = [batch for shard in shards for batch in shard]
    if not trainer.is_global_zero:
        return str(path)
    return artifacts.write_predictions(batches, label_names, path)


def submodel_entries(module: Any, scores: dict[str, Any], exports: dict[str, str],
                     stats: Callable[[Any], dict[str, float]] = model_stats
                     ) -> dict[str, dict[str, Any]]:
    """One metrics.json entry per sub-model: its dev/test scores, size and export folder."""
    models = module.export_models()
    entries = {}
    for name in module.subnets():
        entry: dict[str, Any] = {"export_dir": exports.get(name)}
        for split in ("val", "test"):
            entry[split] = {k.rsplit("/", 1)[0]: v for k, v in scores[split].items()
                            if k.endswith(f"/{name}")}
        if name in models:
            entry["model"] = stats(models[name])
        entries[name] = entry
    return entries


def dev_lines(val: dict[str, float], subnets: list[str], aggregate: str = "mean") -> list[str]:
    """The console's dev summary; for a sub-network grid, what ``val/<metric>`` aggregates.

    ``val/<metric>`` of a DynaBERT run is ``module.aggregate`` over the grid: the line says so,
    then prints the grid, one row per width, one column per depth.
    """
    top = {k: v for k, v in val.items() if k.count("/") == 1 and not k.endswith("_best")}
    head = " ".join(f"{k}={v:.4f}" for k, v in top.items())
    if "" in subnets or len(subnets) < 2:
        return [f"dev {head}"]
    lines = [f"dev {head} ({aggregate} over {len(subnets)} sub-networks, grid below)"]
    for key in top:
        cells = {name: val.get(f"{key}/{name}") for name in subnets}
        pairs = [name.split("_") for name in subnets]
        if not all(len(p) == 2 for p in pairs):
            lines.append(f"  {key}: " + " ".join(f"{n}={v:.4f}" for n, v in cells.items()))
            continue
        widths, depths = dict.fromkeys(p[0] for p in pairs), dict.fromkeys(p[1] for p in pairs)
        lines.append(f"  {key:<16}" + "".join(f"{d:>8}" for d in depths))
        for w in widths:
            row = (cells.get(f"{w}_{d}") for d in depths)
            lines.append(f"  {w:<16}" + "".join("       -" if v is None else f"{v:8.4f}"
                                               for v in row))
    return lines
