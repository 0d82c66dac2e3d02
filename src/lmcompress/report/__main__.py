"""``python -m lmcompress.report <sweep or run dir>... [--config report.yaml] [--out DIR]``.

One command for every report. Folders holding AMoC runs (``amoc/candidates.csv``) get the AMoC
report (``lmcompress.amoc.report``: ``results.md``, ``selection.json``, two plots; the
``--response``, ``--p-enter``, ``--p-remove``, ``--fit``, ``--seed`` and ``--n-boot``
options); other sweeps get the sweep report:
it prints the Markdown and writes it, the LaTeX table, the plots and ``failures.md``. ``--out``
defaults to ``<first folder>/report/``. Without ``--config`` a sweep report uses the
``report.yaml`` next to the sweep's ``sweep.yaml`` (the ``-cd`` folder recorded in
``multirun.yaml``) when there is one, else the defaults: rows split on every override the jobs
differ in but the seed, main metric. ``--kind sweep`` forces the sweep report on AMoC runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from lmcompress.report.build import build_report
from lmcompress.report.config import load_config
from lmcompress.report.load import sweep_config_dir

log = logging.getLogger("lmcompress.report")
KINDS = ("auto", "sweep", "amoc")


def find_config(sweep: Path) -> Path | None:
    """``report.yaml`` in the folder the sweep was launched from (``-cd``), if it exists."""
    config_dir = sweep_config_dir(sweep)
    path = config_dir / "report.yaml" if config_dir else None
    return path if path is not None and path.is_file() else None


def has_amoc_runs(folder: Path) -> bool:
    """Whether ``folder`` is, or holds, an AMoC run (an ``amoc/candidates.csv``)."""
    return (folder / "amoc" / "candidates.csv").is_file() or any(
        folder.rglob("amoc/candidates.csv"))


def report_kind(folders: Sequence[Path], kind: str) -> str:
    """``amoc`` when every folder holds AMoC runs, ``sweep`` when none does (or as asked).

    Raises:
        ValueError: some folders hold AMoC runs and others don't (names the latter).
    """
    if kind != "auto":
        return kind
    amoc = [has_amoc_runs(folder) for folder in folders]
    if all(amoc):
        return "amoc"
    if any(amoc):
        others = [str(f) for f, is_amoc in zip(folders, amoc, strict=True) if not is_amoc]
        raise ValueError(f"{others} hold no amoc/candidates.csv but the other folders do: "
                         "report AMoC runs and other sweeps separately (or pass --kind)")
    return "sweep"


def main(argv: Sequence[str] | None = None) -> int:
    """Build the report of the folders given on the command line."""
    parser = argparse.ArgumentParser(prog="python -m lmcompress.report",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun or run folders")
    parser.add_argument("--config", type=Path, help="report.yaml (sweeps/<id>/report.yaml)")
    parser.add_argument("--out", type=Path, help="output folder (default: <first sweep>/report)")
    parser.add_argument("--kind", choices=KINDS, default="auto",
                        help="auto: AMoC report for AMoC runs, else the sweep report")
    parser.add_argument("--response", default="target_score",
                        help="AMoC: target_score | target_drop")
    parser.add_argument("--p-enter", type=float, default=0.05, help="AMoC: stepwise entry p")
    parser.add_argument("--p-remove", type=float, default=0.10, help="AMoC: stepwise removal p")
    parser.add_argument("--fit", default="paper",
                        help="AMoC: paper | within_group (the ranking-focused fit)")
    parser.add_argument("--seed", type=int, default=0, help="AMoC: prediction ties, bootstrap")
    parser.add_argument("--n-boot", type=int, default=2000, help="AMoC: bootstrap resamples")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    out = args.out or args.sweep_dirs[0] / "report"
    try:
        if report_kind(args.sweep_dirs, args.kind) == "amoc":
            return amoc_report(args, out)
        config = args.config or find_config(args.sweep_dirs[0])
        log.info("report config: %s", config or "defaults (no report.yaml found)")
        report = build_report(args.sweep_dirs, load_config(config), out)
    except (FileNotFoundError, KeyError, ValueError) as err:  # bad folder, file or report.yaml
        parser.exit(2, f"error: {err}\n")
    print(report.markdown)
    log.info("wrote %s", ", ".join(str(path) for path in report.files))
    return 0


def amoc_report(args: argparse.Namespace, out: Path) -> int:
    """The AMoC report of ``args.sweep_dirs`` into ``out`` (``lmcompress.amoc.report``)."""
    from lmcompress.amoc.regression import RegressionSpec
    from lmcompress.amoc.report import report

    if args.config is not None:
        raise ValueError(f"--config {args.config}: the AMoC report takes --response, "
                         "--p-enter and --p-remove, not a report.yaml")
    spec = RegressionSpec(response=args.response, p_enter=args.p_enter, p_remove=args.p_remove,
                          fit=args.fit, seed=args.seed)
    spec.check("report")
    paths = report(args.sweep_dirs, out, spec, args.n_boot)
    print(paths["results"].read_text())
    log.info("wrote %s", ", ".join(str(path) for path in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
