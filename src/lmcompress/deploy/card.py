"""The model card (``README.md``) and export record written into every export folder.

``write_cards(result, cfg)`` is called by the run once ``metrics.json``'s content is known and
before anything is published, so a published teacher carries its card too. Each export folder
gets ``lmcompress_export.json`` (the resolved task and data configs, the sub-model's dev/test
scores, teacher provenance, compression, parameters: what ``python -m lmcompress.deploy`` reads
to evaluate it) and a ``README.md`` a person reads (docs/deploy.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lmcompress.utils.io import write_json_atomic

RECORD = "lmcompress_export.json"


def export_entries(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {export_dir, val, test, model}}`` of every exported folder of a run."""
    if result.get("submodels"):
        return {k: v for k, v in result["submodels"].items() if v.get("export_dir")}
    if not result.get("export_dir"):
        return {}
    prefix = lambda s: {k.split("/", 1)[1]: v for k, v in result.get(s, {}).items()  # noqa: E731
                        if k.count("/") == 1}
    return {"": {"export_dir": result["export_dir"], "val": prefix("val"),
                 "test": prefix("test"), "model": result.get("model", {})}}


def compression(cfg: DictConfig, name: str) -> str:
    """One line: what the stage did to get this model."""
    stage = cfg.task_name
    loss = OmegaConf.select(cfg, "loss.name") or OmegaConf.select(cfg, "loss._name_") or ""
    if stage == "teacher":
        return "none (fine-tuned teacher)"
    if stage == "distill":
        return f"distilled student ({loss or 'distill'} objective)"
    if stage == "dynabert":
        return f"DynaBERT sub-network {name or 'full'} (physically sliced)"
    return f"{stage} stage{f' sub-model {name}' if name else ''}"


def _bare(scores: dict[str, Any]) -> dict[str, Any]:
    """``{"val/accuracy": x}`` (a sub-model entry's keys) -> ``{"accuracy": x}``."""
    return {k.split("/", 1)[-1]: v for k, v in scores.items()}


def record(result: dict[str, Any], cfg: DictConfig, name: str, entry: dict[str, Any]
           ) -> dict[str, Any]:
    """The export record of one folder (JSON-ready)."""
    return {
        "stage": cfg.task_name, "submodel": name, "task": result.get("task"),
        "main_metric": cfg.task.main_metric,
        "task_config": OmegaConf.to_container(cfg.task, resolve=True),
        "data_config": OmegaConf.to_container(cfg.data, resolve=True),
        "labels": list(OmegaConf.select(cfg, "task.label_names", default=None) or []),
        "val": _bare(entry.get("val", {})), "test": _bare(entry.get("test", {})),
        "teacher": result.get("teacher"), "compression": compression(cfg, name),
        "parameters": entry.get("model", {}).get("params_total"), "seed": result.get("seed"),
    }


def card_text(rec: dict[str, Any]) -> str:
    """The README.md of an export folder."""
    teacher = rec.get("teacher") or {}
    digest = teacher.get("sha256") or teacher.get("digest") or teacher.get("weights_sha256")
    metrics = "\n".join(f"| {split} | {k} | {v:.4f} |" for split in ("val", "test")
                        for k, v in (rec.get(split) or {}).items()
                        if isinstance(v, (int, float)))
    return f"""# {rec['task']}: {rec['stage']}{' ' + rec['submodel'] if rec['submodel'] else ''}

Written by lmcompress (`{rec['stage']}` stage).

- task: `{rec['task']}` (main metric `{rec['main_metric']}`)
- labels: {', '.join(map(str, rec['labels'])) or 'see config.json id2label'}
- compression: {rec['compression']}
- parameters: {rec['parameters']}
- teacher: {teacher.get('name_or_path') or teacher.get('reference') or teacher or 'none'}
- teacher weights sha256: {digest or 'n/a'}

| split | metric | value |
|---|---|---|
{metrics or '| - | - | - |'}

## Load

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(folder)
```

`trust_remote_code=True` is needed only for head-sliced sub-networks (their modeling file sits
in this folder); serve it with `python -m lmcompress.deploy <this folder>`.
"""


def write_cards(result: dict[str, Any], cfg: DictConfig) -> list[str]:
    """Write ``lmcompress_export.json`` and ``README.md`` into each export folder; their paths."""
    written = []
    for name, entry in export_entries(result).items():
        folder = Path(entry["export_dir"])
        rec = record(result, cfg, name, entry)
        write_json_atomic(folder / RECORD, rec)
        (folder / "README.md").write_text(card_text(rec))
        written.append(str(folder))
    return written


def read_record(folder: Path) -> dict[str, Any]:
    """The export record of ``folder``; refused (naming the path) when it is not an export."""
    path = Path(folder) / RECORD
    if not (Path(folder) / "config.json").is_file() or not path.is_file():
        raise ValueError(f"{folder}: not an lmcompress export folder (needs config.json and "
                         f"{RECORD}; re-export it with this version of lmcompress)")
    return json.loads(path.read_text())
