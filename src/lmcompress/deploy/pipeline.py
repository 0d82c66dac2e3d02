"""Deploy one or more export folders: build variants, check parity, evaluate, time, write."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification

from lmcompress.deploy.card import read_record
from lmcompress.deploy.evaluate import datamodule, dev_metric
from lmcompress.deploy.measure import parity, summarize, timings
from lmcompress.deploy.variants import VARIANTS, build
from lmcompress.utils.latency import timing_batch


def load_export(folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The export's model in fp32 eval mode and its record (refused with the path if not one)."""
    rec = read_record(folder)
    import lmcompress.models.dynabert  # noqa: F401  (registers the head-sliced classes)

    model = AutoModelForSequenceClassification.from_pretrained(str(folder),
                                                               trust_remote_code=True)
    return model.float().eval(), rec


def machine_load() -> str:
    """The 1-, 5- and 15-minute load averages (the machine may be shared)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def deploy(folders: list[Path], out: Path, baseline: Path | None, batches: list[int],
           threads: list[int], seq: int, repeats: int, evaluate: bool = True,
           wanted: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """Every variant of every folder (+ the baseline's fp32 eager), measured; the result dict."""
    pairs = ([("baseline", baseline)] if baseline else []) + [(str(f), f) for f in folders]
    if len({label for label, _ in pairs}) < len(pairs):
        raise ValueError(f"{[str(f) for f in folders]}: an export folder is given twice")
    loaded = {label: (folder, *load_export(folder)) for label, folder in pairs}
    datas = {label: datamodule(rec, str(folder)) if evaluate else None  # all checked first
             for label, (folder, _, rec) in loaded.items()}
    models, rows, skipped = {}, [], {}
    for i, (label, (folder, model, rec)) in enumerate(loaded.items()):
        only = ("fp32_eager",) if label == "baseline" else wanted
        sample = timing_batch(min(batches), seq, model.config.vocab_size)
        variants, skip = build(model, Path(folder), out / "variants" / f"{i:02d}", sample,
                               max(threads), only)
        skipped.update(skip)
        models[label] = (model, variants)
        check = timing_batch(max(batches), seq, model.config.vocab_size)
        reference = variants["fp32_eager"].run(check)
        data = datas[label]
        for name, v in variants.items():
            rows.append({
                "model": label, "variant": name, "size_bytes": v.size_bytes(),
                "params": sum(p.numel() for p in model.parameters()),
                "parity_max_abs": parity(v, reference, check),
                "dev": (dev_metric(v.run, data, rec).get(rec["main_metric"]) if data else None),
                "latency": {}, "task": rec.get("task"),
            })
    base = ("baseline" if baseline else str(folders[0]), "fp32_eager")
    for t in threads:
        for b in batches:
            stats = summarize(timings(models, b, seq, repeats, t), base)
            for r in rows:
                r["latency"][f"b{b}_t{t}"] = stats[(r["model"], r["variant"])]
    metric = next(iter(loaded.values()))[2]["main_metric"]
    return {"rows": rows, "batches": batches, "threads": threads, "seq": seq, "repeats": repeats,
            "baseline": str(baseline) if baseline else None, "skipped": skipped,
            "metric_name": metric, "load": machine_load(),
            "cpu_bf16": torch.backends.mkldnn.is_available()}
