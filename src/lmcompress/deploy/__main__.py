"""``python -m lmcompress.deploy <export dir>... [--baseline DIR] [--out DIR]``.

Builds each export's runtime variants (fp32 eager, TorchScript, ONNX fp32/int8, torch int8,
bf16), checks them against eager, evaluates the task's dev metric, times them interleaved and
writes ``deploy.json`` and ``deploy.md``. With ``--budget-ms X --batch B`` and one DynaBERT run
folder it instead picks the most accurate sub-network whose measured latency meets the budget
(docs/deploy.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lmcompress.deploy.budget import budget_text, choose
from lmcompress.deploy.pipeline import deploy
from lmcompress.deploy.report import fastest, markdown
from lmcompress.deploy.variants import VARIANTS
from lmcompress.utils.io import write_json_atomic


def summary(result: dict) -> dict:
    """``metrics.json`` of a deploy run: the fastest variant per batch and thread count."""
    fast = {f"b{b}_t{t}": fastest(result["rows"], b, t)
            for t in result["threads"] for b in result["batches"]}
    return {"status": "ok", "stage": "deploy", "main_metric": "fastest", "val": {"fastest": fast},
            "deploy_json": "deploy.json"}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m lmcompress.deploy", description=__doc__)
    p.add_argument("exports", nargs="+", type=Path, help="export folders (or a DynaBERT run)")
    p.add_argument("--baseline", type=Path, help="the uncompressed teacher's export folder")
    p.add_argument("--out", type=Path, default=Path("outputs/deploy"))
    p.add_argument("--batches", type=_ints, default=[1, 32])
    p.add_argument("--threads", type=_ints, default=[1, 2])
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-eval", action="store_true", help="skip the dev metric")
    p.add_argument("--budget-ms", type=float, help="latency budget (DynaBERT grid mode)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the budget")
    args = p.parse_args(argv)
    wanted = tuple(args.variants.split(","))
    bad = [v for v in wanted if v not in VARIANTS]
    if bad:
        p.error(f"--variants: unknown {bad}; choose from {list(VARIANTS)}")
    try:
        if args.budget_ms is not None:
            if len(args.exports) != 1:
                p.error("--budget-ms takes one DynaBERT run folder")
            res = choose(args.exports[0], args.budget_ms, args.batch, args.seq, args.repeats,
                         args.threads[0])
            args.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.out / "budget.json", res)
            print(budget_text(res))
            return 0 if res["chosen"] else 1
        result = deploy(args.exports, args.out, args.baseline, args.batches, args.threads,
                        args.seq, args.repeats, not args.no_eval, wanted)
    except (ValueError, FileNotFoundError) as err:
        print(f"lmcompress.deploy: {err}", file=sys.stderr)
        return 2
    write_json_atomic(args.out / "deploy.json", result)
    table = markdown(result)
    (args.out / "deploy.md").write_text(table)
    write_json_atomic(args.out / "metrics.json", summary(result))  # what a recipe step reads
    print(table)
    print(f"wrote {args.out / 'deploy.json'} and {args.out / 'deploy.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
