"""Bad-input and fault probes across every entry point (issue #16's acceptance table).

``python benchmarks/bad_inputs.py --out DIR [--only ID,...] [--jobs N] [--label before]`` runs
each probe of ``bad_inputs_probes.py`` in its own sandbox and writes ``DIR/<label>.json`` and
``DIR/<label>.md``; ``python benchmarks/bad_inputs.py --compare before.json after.json`` prints
the before/after table. Run it from the checkout root with ``PYTHONPATH=$PWD/src``.

Each sandbox has ``work/`` (the probe's current directory: its data files, recipes, fake sweeps
written by its setup), ``outputs/`` (``LMCOMPRESS_OUTPUT_DIR``, the only output root) and
``canary/`` (where probes try to escape to). Before and after the probe's command the harness
snapshots the checkout minus ``outputs/``, and the sandbox minus ``outputs/``: any file created,
changed or deleted there is "written outside the output roots".

Verdicts: ``handled`` (the probe's expectation holds: a non-zero exit naming the culprit and no
new ``metrics.json`` / ``export/``, or for a tolerated fault exit 0 with the right result);
``NOT handled`` (non-zero exit but the message or the leftovers are wrong, or a tolerated fault
that fails); ``silent-wrong`` (exit 0 with a wrong or missing result, or files written outside
the roots while exiting 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bad_inputs_probes import KILLED, PROBES, Probe  # noqa: E402

SKIP_PARTS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".benchmarks"}
ENV = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false",
       "CI": "1", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Sandbox:
    """One probe's folders and the way to run a command in them."""

    root: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def canary(self) -> Path:
        return self.root / "canary"

    def fill(self, args: list[str]) -> list[str]:
        """Replace {work}, {out}, {canary}, {python} in each argument (nothing else)."""
        subs = {"{work}": str(self.work), "{out}": str(self.outputs),
                "{canary}": str(self.canary), "{python}": sys.executable}
        filled = []
        for arg in args:
            for key, value in subs.items():
                arg = arg.replace(key, value)
            filled.append(arg)
        return filled

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
        return {**os.environ, **ENV, "PYTHONPATH": path.rstrip(os.pathsep),
                "LMCOMPRESS_OUTPUT_DIR": str(self.outputs)}

    def spawn(self, args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
        """Start ``python <args>`` in ``work/`` (umask 022), output to ``<root>/<name>.log``."""
        log = self.root / f"{name}.log"
        handle = log.open("w")
        proc = subprocess.Popen([sys.executable, *self.fill(args)], cwd=self.work, env=self.env(),
                                stdout=handle, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: os.umask(0o022), start_new_session=True)
        handle.close()
        self.procs.append(proc)
        return proc, log

    def reap(self) -> None:
        """Kill whatever a command left running (a recipe's step after its parent died)."""
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.poll()

    def run(self, args: list[str], name: str = "cmd", timeout: int = 300) -> tuple[int, str]:
        """Run to completion; returns (exit code, output). A timeout kills it (code -9)."""
        proc, log = self.spawn(args, name)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = -9
            with log.open("a") as handle:
                handle.write(f"\n{KILLED} after its {timeout}s timeout\n")
        return code, log.read_text(errors="replace")


def snapshot(root: Path, skip: set[Path]) -> dict[str, tuple]:
    """Every file / symlink under ``root`` (not following links) -> (mtime, size, mode)."""
    out = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in SKIP_PARTS and here / d not in skip]
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            path = here / name
            st = path.lstat()
            out[str(path)] = (st.st_mtime_ns, st.st_size, st.st_mode)
    return out


def diff(before: dict, after: dict) -> list[str]:
    """Paths created (+), changed (~) or deleted (-) between two snapshots."""
    out = [f"+{p}" for p in after if p not in before]
    out += [f"~{p}" for p in after if p in before and after[p] != before[p]]
    out += [f"-{p}" for p in before if p not in after]
    return sorted(out)


def last_error(text: str) -> str:
    """The last line that looks like an error message (else the last non-empty line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marks = ("error", "Error", "refus", "failed", "Exception", "must", "killed")
    for line in reversed(lines):
        if any(m in line for m in marks) and not line.startswith(("File ", "raise ")):
            return line[:300]
    return lines[-1][:300] if lines else ""


def message(text: str, tail: int = 40) -> str:
    """What the user is told: the last ``tail`` lines minus indented ones (traceback frames and
    their source lines) and Hydra's echo of the overrides. Needles are looked for here only, so
    an echoed override or a source line that contains the key does not name the culprit."""
    lines = text.splitlines()[-tail:]
    return "\n".join(line for line in lines if line[:1] not in (" ", "\t")
                     and not line.startswith("Error executing job with overrides"))


def outputs_state(outputs: Path) -> dict[str, list[str]]:
    """metrics.json files, export folders and checkpoints under the output root."""
    found: dict[str, list[str]] = {"metrics": [], "export": [], "ckpt": []}
    if outputs.exists():
        found["metrics"] = sorted(str(p) for p in outputs.rglob("metrics.json"))
        found["export"] = sorted(str(p) for p in outputs.rglob("export") if p.is_dir())
        found["ckpt"] = sorted(str(p) for p in outputs.rglob("*.ckpt"))
    return found


def modes(outputs: Path, since: dict) -> list[str]:
    """Distinct octal modes of regular files under the output root new or changed since."""
    now = snapshot(outputs, set())
    return sorted({oct(v[2] & 0o777) for p, v in now.items()
                   if since.get(p) != v and not Path(p).is_symlink()})


def verdict(probe: Probe, code: int, text: str, new: dict[str, list[str]], outside: list[str],
            problem: str | None) -> tuple[str, str]:
    """(verdict, why) from the probe's expectation and what happened."""
    if KILLED in text:
        return "NOT handled", "did not end by itself: the harness killed it"
    if outside:
        return ("silent-wrong" if code == 0 else "NOT handled",
                f"wrote outside the output roots: {outside[:3]}")
    if probe.expect == "ok" or (probe.expect == "either" and code == 0):
        if code != 0:
            return "NOT handled", f"a tolerated fault ended with exit {code}"
        if problem:
            return "silent-wrong", problem
        return "handled", "exit 0 with the right result"
    if code == 0:
        return "silent-wrong", problem or "exit 0 where a refusal was expected"
    lower = message(text).lower()
    missing = [n if isinstance(n, str) else "|".join(n) for n in probe.needles
               if not any(alt.lower() in lower for alt in ((n,) if isinstance(n, str) else n))]
    if missing:
        return "NOT handled", f"exit {code} but the output does not name {missing}"
    if new["metrics"] or new["export"]:
        return "NOT handled", f"exit {code} but left {(new['metrics'] + new['export'])[:2]}"
    if probe.before_work and new["ckpt"]:
        return "NOT handled", f"exit {code} only after training ({new['ckpt'][0]})"
    if problem:
        return "NOT handled", problem
    return "handled", f"exit {code}, names the culprit"


def run_probe(probe: Probe, base: Path) -> dict[str, Any]:
    """Set up, run and judge one probe in a fresh sandbox under ``base``."""
    sb = Sandbox(Path(tempfile.mkdtemp(prefix=f"{probe.id}.", dir=base)))
    for folder in (sb.work, sb.outputs, sb.canary):
        folder.mkdir()
    (sb.canary / "keep.txt").write_text("the probe must not touch this folder\n")
    start, problem = time.time(), None
    try:
        if probe.setup:
            probe.setup(sb)
        skip = {sb.outputs, base} | ({REPO / "outputs"})
        before_repo, before_sb = snapshot(REPO, skip), snapshot(sb.root, {sb.outputs})
        before_out = snapshot(sb.outputs, set())
        state0 = outputs_state(sb.outputs)
        start = time.time()
        if probe.action:
            code, text = probe.action(sb, probe)
        else:
            code, text = sb.run(probe.args, timeout=probe.timeout)
        seconds = time.time() - start
        state1 = outputs_state(sb.outputs)
        new = {k: [p for p in v if p not in state0[k]] for k, v in state1.items()}
        logs = {str(sb.root / n) for n in os.listdir(sb.root) if n.endswith(".log")}
        outside = [p for p in diff(before_repo, snapshot(REPO, skip))
                   + diff(before_sb, snapshot(sb.root, {sb.outputs})) if p[1:] not in logs]
        if probe.check:
            problem = probe.check(sb, code, text)
        file_modes = modes(sb.outputs, before_out)
    except Exception as err:  # a broken setup is a harness bug: report it, never a verdict
        sb.reap()
        return {"id": probe.id, "class": probe.cls, "entry": probe.entry, "what": probe.what,
                "verdict": "harness error", "why": f"{type(err).__name__}: {err}",
                "exit": None, "seconds": round(time.time() - start, 1)}
    sb.reap()
    result, why = verdict(probe, code, text, new, outside, problem)

    def scrub(value: str) -> str:  # the results name no machine's temporary folders
        return value.replace(str(sb.work), "<work>").replace(str(sb.root), "<sandbox>")

    return {"id": probe.id, "class": probe.cls, "entry": probe.entry, "what": probe.what,
            "command": " ".join(probe.args) if probe.args else probe.command,
            "expect": probe.expect, "exit": code, "seconds": round(seconds, 1),
            "metrics_json": bool(new["metrics"]), "export": bool(new["export"]),
            "last_error": scrub(last_error(text)),
            "outside_roots": [scrub(o) for o in outside[:10]], "modes": file_modes,
            "verdict": result, "why": scrub(why), "sandbox": str(sb.root)}


VERDICTS = ("handled", "NOT handled", "silent-wrong", "harness error", "not run")


def summary(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Verdict counts per class and in total."""
    table: dict[str, dict[str, int]] = {}
    for row in results:
        for key in (row["class"], "all"):
            counts = table.setdefault(key, dict.fromkeys(VERDICTS, 0))
            counts[row["verdict"]] += 1
    order = sorted((k for k in table if k != "all"), key=lambda k: (not k.isdigit(), k))
    return {k: table[k] for k in [*order, "all"]}


def cell(text: Any, width: int = 120) -> str:
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


def markdown(label: str, results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The per-probe table and the per-class summary."""
    lines = [f"# Bad-input probes: {label}", "",
             f"checkout {meta['commit']} (src/ and conf/ as of {meta.get('code')}) on "
             f"{meta['date']}, {len(results)} probes, "
             f"`{meta['command']}` ({meta['seconds']:.0f} s)", "",
             "| class | " + " | ".join(VERDICTS) + " |", "|---|---|---|---|---|---|"]
    for key, counts in summary(results).items():
        lines.append(f"| {key} | " + " | ".join(str(counts[v]) for v in VERDICTS) + " |")
    lines += ["", "| id | class | entry | probe | exit | s | metrics/export | verdict | why | "
              "last error line |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        left = f"{'M' if r.get('metrics_json') else '-'}{'E' if r.get('export') else '-'}"
        lines.append(f"| {r['id']} | {r['class']} | {r['entry']} | {cell(r['what'], 90)} | "
                     f"{r['exit']} | {r['seconds']} | {left} | **{r['verdict']}** | "
                     f"{cell(r['why'], 100)} | {cell(r.get('last_error', ''), 120)} |")
    lines += ["", "Commands (`{work}` = the probe's folder of generated inputs, `{out}` = "
              "LMCOMPRESS_OUTPUT_DIR, `{canary}` = a folder outside the roots):", ""]
    lines += [f"- `{r['id']}`: `{cell(r.get('command', ''), 400)}`" for r in results]
    return "\n".join(lines) + "\n"


def compare(before_path: Path, after_path: Path) -> str:
    """Before/after table of two result files, by probe id."""
    before = {r["id"]: r for r in json.loads(before_path.read_text())["results"]}
    after = {r["id"]: r for r in json.loads(after_path.read_text())["results"]}
    lines = ["| id | class | probe | before | after |", "|---|---|---|---|---|"]
    for pid in [*before, *(p for p in after if p not in before)]:
        b, a = before.get(pid, {}), after.get(pid, {})
        row = a or b
        lines.append(f"| {pid} | {row['class']} | {cell(row['what'], 80)} | "
                     f"{b.get('verdict', '-')} (exit {b.get('exit', '-')}) | "
                     f"{a.get('verdict', '-')} (exit {a.get('exit', '-')}) |")
    for name, data in (("before", before), ("after", after)):
        counts = summary(list(data.values()))["all"]
        share = counts["handled"] / max(1, len(data))
        lines.append(f"\n{name}: {len(data)} probes, " + ", ".join(
            f"{v} {counts[v]}" for v in VERDICTS) + f" ({share:.0%} handled)")
    return "\n".join(lines)


def interleave(probes: list[Probe]) -> list[Probe]:
    """Round-robin over the classes, so a run cut short still covers every class."""
    by_class: dict[str, list[Probe]] = {}
    for probe in probes:
        by_class.setdefault(probe.cls, []).append(probe)
    queues = list(by_class.values())
    order = []
    while any(queues):
        order += [q.pop(0) for q in queues if q]
    return order


def main(argv: list[str] | None = None) -> int:
    """Run the probes (or compare two result files)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for <label>.json and <label>.md")
    parser.add_argument("--only", help="comma-separated probe ids")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--label", default="results")
    parser.add_argument("--keep", action="store_true", help="keep the sandboxes (printed)")
    parser.add_argument("--list", action="store_true", help="print the probe ids and exit")
    parser.add_argument("--reuse", type=Path, help="a .partial.jsonl: keep those probes' rows")
    parser.add_argument("--deadline", type=float, help="minutes: start no probe after that "
                        "(the rest are reported as 'not run')")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args(argv)
    if args.compare:
        print(compare(*args.compare))
        return 0
    if args.list:
        for p in PROBES:
            print(f"{p.id:32s} {p.cls:6s} {p.entry:12s} {p.what}")
        return 0
    if not args.out:
        parser.error("--out is required")
    wanted = set(args.only.split(",")) if args.only else None
    unknown = sorted(wanted - {p.id for p in PROBES}) if wanted else []
    if unknown:
        parser.error(f"unknown probe ids {unknown}")
    probes = [p for p in PROBES if wanted is None or p.id in wanted]
    base = Path(tempfile.mkdtemp(prefix="bad_inputs_"))
    start = time.time()

    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / f"{args.label}.partial.jsonl"
    partial.write_text("")

    reused = {}
    if args.reuse:
        reused = {r["id"]: r for r in map(json.loads, args.reuse.read_text().splitlines())
                  if r["verdict"] != "harness error"}

    def one(probe: Probe) -> dict[str, Any]:
        if probe.id in reused:
            row = reused[probe.id]
        elif args.deadline is not None and time.time() - start > 60 * args.deadline:
            return {"id": probe.id, "class": probe.cls, "entry": probe.entry, "what": probe.what,
                    "command": " ".join(probe.args), "exit": None, "seconds": 0,
                    "verdict": "not run", "why": f"--deadline {args.deadline} min reached"}
        else:
            row = run_probe(probe, base)
        with partial.open("a") as handle:  # kept if the run is interrupted
            handle.write(json.dumps(row) + "\n")
        print(f"{row['id']:32s} {row['verdict']:14s} exit={row['exit']} {row['seconds']}s "
              f"{row['why'][:90]}", flush=True)
        return row

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = dict(zip([p.id for p in interleave(probes)],
                        pool.map(one, interleave(probes)), strict=True))
    results = [done[p.id] for p in probes]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    code = subprocess.run(["git", "log", "-1", "--format=%h", "--", "src", "conf"], cwd=REPO,
                          capture_output=True, text=True).stdout.strip()
    meta = {"label": args.label, "commit": commit, "code": code, "seconds": time.time() - start,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python benchmarks/bad_inputs.py " + " ".join(argv or sys.argv[1:])}
    partial.unlink()
    for row in results:
        row.pop("sandbox", None) if not args.keep else None
    payload = {"meta": meta, "summary": summary(results), "results": results}
    (args.out / f"{args.label}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / f"{args.label}.md").write_text(markdown(args.label, results, meta))
    print(json.dumps(summary(results)["all"]))
    if args.keep:
        print(f"sandboxes kept under {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
