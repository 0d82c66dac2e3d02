"""The AMoC report's sections read from each run's ``selection.json``: search cost, fine-tunes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lmcompress.amoc.select import METHODS


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table of ``rows`` under ``headers``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(value: float | None) -> str:
    """A score as a percentage with two decimals (``n/a`` when missing or not finite)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.2f}"


def run_selections(files: Sequence[str]) -> list[dict[str, Any]]:
    """The ``selection.json`` beside each candidates table (runs without one are skipped)."""
    paths = [Path(f).with_name("selection.json") for f in files]
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def cost_section(selections: Sequence[dict[str, Any]]) -> str:
    """Search time per run from its ``selection.json``, and the cached/independent ratio.

    ``independent`` re-ran some candidates without the cache, each right after its cached fit
    was timed again (``independent_subset``). The
    whole-search estimate scales the candidate fits by that ratio and charges the independent
    search nothing for the base model's passes (which it would need for the ATE): a lower bound
    of the whole search's saving.
    """
    rows = []
    for selection in selections:
        timing = selection.get("timing", {})
        fits = timing.get("search_s", 0.0) - timing.get("cache_s", 0.0)
        independent = timing.get("independent") or {}
        ratio = independent.get("ratio")
        whole = ratio * fits / timing["search_s"] if ratio and timing.get("search_s") else None
        rows.append([selection.get("source", "?"), timing.get("candidates"),
                     f"{timing.get('cache_s', 0):.0f}", f"{timing.get('search_s', 0):.0f}",
                     f"{timing.get('per_candidate_s', 0):.1f}",
                     f"{independent.get('candidates', 0)}: {independent.get('cached_s', 0):.0f}"
                     f" vs {independent.get('independent_s', 0):.0f} s"
                     if independent else "not measured",
                     f"{ratio:.2f}×" if ratio else "–", _bound(independent.get("bound")),
                     f"{whole:.2f}×" if whole else "–"])
    if not rows:
        return "## Search cost\n\nNo selection.json with timing next to the candidates tables."
    headers = ["source", "candidates", "cache s", "search s", "s per candidate",
               "uncached re-run: cached vs independent", "fit ratio",
               "the cache's bound (training–prediction)", "whole search (lower bound)"]
    return "## Search cost\n\n" + markdown_table(headers, rows) + (
        "\n\nWhole search: the candidate fits scaled by the re-run's ratio over the cached "
        "search time including its base-model passes (an independent search is charged none of "
        "them, so this is a lower bound of the saving). The cache's bound is the most it can save "
        "on the re-run candidates, counted in layer passes (docs/amoc.md §10).")


def finetune_section(selections: Sequence[dict[str, Any]]) -> str | None:
    """The fully fine-tuned choices of each run (``callbacks.amoc.finetune``), if any.

    These are the choices the run made with its own regression (its other targets held out),
    read from its ``selection.json``; the tables above come from the fit across all runs.
    """
    rows, means = [], {}
    for selection in selections:
        for e in selection.get("selections", []):
            for method in METHODS:
                choice = e.get(method) or {}
                if "finetuned_score" not in choice:
                    continue
                rows.append([f"{e['source']} → {e['target']}", e["k"], method,
                             choice["removed"], pct(choice["target_score"]),
                             pct(choice["finetuned_score"])])
                means.setdefault(method, []).append(
                    (choice["target_score"], choice["finetuned_score"]))
    if not rows:
        return None
    summary = [[m, len(v), pct(np.mean([a for a, _ in v])), pct(np.mean([b for _, b in v]))]
               for m, v in means.items()]
    return ("## Chosen candidates, fully fine-tuned\n\nEach run's own choices (its regression "
            "held out each of its targets), re-trained whole on the source "
            "(`callbacks.amoc.finetune`), target score after the brief search fine-tune and "
            "after the full one.\n\n"
            + markdown_table(["pair", "k", "method", "removed", "search", "fine-tuned"], rows)
            + "\n\n" + markdown_table(["method", "groups", "mean search", "mean fine-tuned"],
                                   summary))


def _bound(bound: dict[str, float] | None) -> str:
    return f"{bound['train']:.2f}–{bound['eval']:.2f}×" if bound else "–"
