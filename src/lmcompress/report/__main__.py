"""``python -m lmcompress.report <sweep dir>... [--config report.yaml] [--out DIR]``.

Prints the Markdown report and writes it, the LaTeX table, the plots and ``failures.md`` into
``--out`` (default ``<first sweep dir>/report/``). Without ``--config`` it uses the
``report.yaml`` next to the sweep's ``sweep.yaml`` (the ``-cd`` folder recorded in
``multirun.yaml``) when there is one, else the defaults: group by the swept keys, main metric.
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


def find_config(sweep: Path) -> Path | None:
    """``report.yaml`` in the folder the sweep was launched from (``-cd``), if it exists."""
    config_dir = sweep_config_dir(sweep)
    path = config_dir / "report.yaml" if config_dir else None
    return path if path is not None and path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    """Build the report of the sweep folders given on the command line."""
    parser = argparse.ArgumentParser(prog="python -m lmcompress.report",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("sweep_dirs", nargs="+", type=Path, help="multirun folders")
    parser.add_argument("--config", type=Path, help="report.yaml (sweeps/<id>/report.yaml)")
    parser.add_argument("--out", type=Path, help="output folder (default: <first sweep>/report)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = args.config or find_config(args.sweep_dirs[0])
    log.info("report config: %s", config or "defaults (no report.yaml found)")
    try:
        report = build_report(args.sweep_dirs, load_config(config),
                              args.out or args.sweep_dirs[0] / "report")
    except (FileNotFoundError, KeyError, ValueError) as err:  # bad folder or report.yaml
        parser.exit(2, f"error: {err}\n")
    print(report.markdown)
    log.info("wrote %s", ", ".join(str(path) for path in report.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
