"""Tables as text: our rows (mean ± std), trivial baselines, the paper's numbers; Markdown, LaTeX.

Every builder returns a DataFrame of strings, ready for :func:`to_markdown` or :func:`to_latex`,
plus the notes to print under it (scale, baseline sources, the paper's source).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lmcompress.report.config import Baseline, Metric, PaperRef, paper_table

DASH = "–"
LATEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
         "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
         "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "×": r"$\times$", "–": "--", ">": r"$>$"}


def results_table(stats: pd.DataFrame, metrics: Sequence[Metric],
                  baselines: Sequence[Baseline] = (), paper: PaperRef | None = None,
                  params: pd.Series | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Our groups (n, mean ± std), the paper's number and Δ beside ours, then baseline rows.

    Args:
        stats: :func:`lmcompress.report.stats.aggregate` output.
        metrics: the metric columns, in order.
        baselines: trivial-predictor rows appended below ours.
        paper: the published table our rows reproduce.
        params: parameter count per group (index as ``stats``), shown in millions.
    """
    groups = stats.index.to_frame(index=False)
    table = groups.map(_text)
    counts = stats.xs("n", axis=1, level=1)
    table["n"] = counts.max(axis=1).astype(int).to_numpy()
    if params is not None:
        millions = params.reindex(stats.index).to_numpy(dtype=float) / 1e6
        table["params (M)"] = [DASH if math.isnan(p) else f"{p:.1f}" for p in millions]
    for m in metrics:
        table[m.label] = [mean_std(mean, std, n, n_all, m) for mean, std, n, n_all in zip(
            stats[(m.key, "mean")], stats[(m.key, "std")], counts[m.key], table["n"], strict=True)]
    notes = ["Mean ± sample std over seeds; n = seeds (jobs) per row."]
    scaled = sorted({f"{m.label} ×{m.scale:g}" for m in metrics if m.scale != 1})
    if scaled:
        notes.append("Scaled: " + ", ".join(scaled) + ".")
    if paper is not None:
        notes.append(add_paper_columns(table, groups, stats, metrics, paper))
    for baseline in baselines:
        table = pd.concat([table, baseline_row(baseline, metrics, list(groups.columns))])
        notes.append(f"Baseline '{baseline.name}': {baseline.source}")
    return table.fillna("").astype(str).reset_index(drop=True), notes


def grid_tables(jobs: pd.DataFrame, rows: str, columns: str, by: Sequence[str],
                metric: Metric) -> list[tuple[str, pd.DataFrame]]:
    """Per ``by`` group, ``metric`` as mean ± std in a ``rows`` x ``columns`` matrix.

    Rows and columns run from the largest value down (width 1.0 first); a missing cell is a dash.
    """
    out = []
    parts = jobs.groupby(list(by), sort=False, dropna=False) if by else [((), jobs)]
    for values, part in parts:
        stats = part.groupby([rows, columns])[metric.key].agg(["mean", "std", "count"])
        n_all = int(stats["count"].max())
        cells = pd.Series([mean_std(r.mean, r.std, int(r.count), n_all, metric)
                           for r in stats.itertuples()], index=stats.index)
        matrix = cells.unstack(columns).sort_index(ascending=False)
        matrix = matrix[sorted(matrix.columns, reverse=True)].fillna(DASH)
        matrix.insert(0, f"{rows} \\ {columns}", [_text(v) for v in matrix.index])
        matrix.columns = [matrix.columns[0], *(f"{columns} {_text(c)}" for c in matrix.columns[1:])]
        name = " ".join(map(str, values if isinstance(values, tuple) else (values,)))
        out.append((f"{name} (n = {n_all})".strip(), matrix.reset_index(drop=True)))
    return out


def mean_std(mean: float, std: float, n: int, n_row: int, metric: Metric) -> str:
    """``"83.67 ± 0.50"`` (scaled), ``"83.67"`` for one seed, ``(n=k)`` when seeds are missing."""
    if n == 0 or math.isnan(mean):
        return DASH
    text = _number(mean * metric.scale, metric)
    if n > 1:
        text += f" ± {_number(std * metric.scale, metric)}"
    return text if n == n_row else f"{text} (n={n})"


def add_paper_columns(table: pd.DataFrame, groups: pd.DataFrame, stats: pd.DataFrame,
                      metrics: Sequence[Metric], ref: PaperRef) -> str:
    """Insert ``paper <metric>`` and ``Δ <metric>`` (ours − paper) after each metric it has.

    Only the rows selected by ``ref.rows`` get numbers. Returns the note naming the source.
    """
    source = paper_table(ref.table)
    keys = _paper_tasks(groups, ref)
    for key in {k for k in keys if k is not None}:
        if key not in source["numbers"]:
            raise KeyError(f"paper table {ref.table!r} has no task {key!r}: "
                           f"{sorted(source['numbers'])}")
    chosen = pd.Series(True, index=groups.index)
    for key, value in ref.rows.items():
        if key not in groups:
            raise KeyError(f"paper.rows key {key!r} is not a group_by column: {list(groups)}")
        chosen &= groups[key].astype(str) == str(value)
    for m in metrics:
        name = m.key.rsplit("/", 1)[-1]
        paper = [source["numbers"].get(k, {}).get(name) if k and pick else None
                 for k, pick in zip(keys, chosen, strict=True)]
        if all(v is None for v in paper):
            continue
        ours = stats[(m.key, "mean")].to_numpy() * m.scale
        column = table.columns.get_loc(m.label)
        table.insert(column + 1, f"paper {m.label}", ["" if v is None else f"{v:g}"
                                                       for v in paper])
        table.insert(column + 2, f"Δ {m.label}",
                     ["" if v is None else _number(o - v, m, sign=True)
                      for o, v in zip(ours, paper, strict=True)])
    status = "Verified" if source.get("verified") else "Not verified against the paper"
    tasks = ref.task or ", ".join(sorted(set(ref.tasks.values())))
    return (f"Paper: {source['title']}; task {tasks}. Source: {source['source']}. "
            f"{status}: {source.get('checked', 'no check recorded')}")


def _paper_tasks(groups: pd.DataFrame, ref: PaperRef) -> list[str | None]:
    """Each row's task key in the paper table: ``ref.task``, or ``ref.tasks`` of its task."""
    if ref.task is not None:
        return [ref.task] * len(groups)
    if "task" not in groups:
        raise KeyError("paper.tasks maps our task names: group_by must include 'task'")
    # the task column holds a swept override (glue/mrpc) or metrics.json's name (glue_mrpc)
    tasks = {name.replace("/", "_"): key for name, key in ref.tasks.items()}
    return [tasks.get(str(t).replace("/", "_")) for t in groups["task"]]


def baseline_row(baseline: Baseline, metrics: Sequence[Metric], group_by: list[str]
                 ) -> pd.DataFrame:
    """One row: the baseline's name in the first group column, its scaled scores."""
    row: dict[str, Any] = {column: "" for column in group_by}
    row[group_by[0]] = baseline.name
    row["n"] = DASH
    for m in metrics:
        value = baseline.values.get(m.key)
        row[m.label] = DASH if value is None else _number(value * m.scale, m)
    return pd.DataFrame([row])


def paired_table(results: pd.DataFrame, metrics: Sequence[Metric]) -> pd.DataFrame:
    """Paired-test rows (``paired_test`` output plus ``comparison`` and ``metric``) as text."""
    by_key = {m.key: m for m in metrics}
    fixed = ["comparison", "metric", "n", "mean_diff", "std_diff", "t", "p", "a_wins"]
    table = results[[c for c in results.columns if c not in fixed]].map(_text)
    table["A − B"] = results["comparison"]
    table["metric"] = [by_key[k].label for k in results["metric"]]
    table["seeds"] = results["n"]
    table["mean diff"] = [_number(d * by_key[k].scale, by_key[k], sign=True)
                          for d, k in zip(results["mean_diff"], results["metric"], strict=True)]
    table["sd diff"] = [_number(s * by_key[k].scale, by_key[k])
                        for s, k in zip(results["std_diff"], results["metric"], strict=True)]
    table["A > B"] = [f"{w}/{n}" for w, n in zip(results["a_wins"], results["n"], strict=True)]
    table["t"] = [DASH if math.isnan(t) else f"{t:.2f}" for t in results["t"]]
    table["p"] = [DASH if math.isnan(p) else f"{p:.3g}" for p in results["p"]]
    return table.astype(str)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", r"\|") for c in cells) + " |"

    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    return "\n".join([line(table.columns), rule, *(line(row) for row in table.itertuples(False))])


def to_latex(table: pd.DataFrame, left: int = 1, comment: str = "") -> str:
    """A booktabs ``tabular``: the first ``left`` columns left-aligned, the others right."""
    def line(cells: Sequence[Any]) -> str:
        return " & ".join("".join(LATEX.get(ch, ch) for ch in str(c)) for c in cells) + r" \\"

    spec = "l" * left + "r" * (len(table.columns) - left)
    head = [f"% {text}" for text in comment.splitlines()]
    return "\n".join([*head, rf"\begin{{tabular}}{{{spec}}}", r"\toprule", line(table.columns),
                      r"\midrule", *(line(row) for row in table.itertuples(False)),
                      r"\bottomrule", r"\end{tabular}", ""])


def _number(value: float, metric: Metric, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return DASH
    text = f"{value:{'+' if sign else ''}.{metric.decimals}f}"
    return text.replace("-", "−") if sign else text


def _text(value: Any) -> str:
    """A group value as shown: NaN / None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    return str(value)
