"""CI (``.ci/run``) runs exactly the README's install and test commands, the linter first."""

from __future__ import annotations

import re
import shlex

from helpers.cli import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Tests\s+```bash\n(.+?)\n```", text, re.S)
    assert block, "README.md: a ## Tests section with one bash block"
    return [" ".join(shlex.split(c)) for c in block.group(1).split("&&")]


def _ci_commands() -> list[str]:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    commands = [" ".join(shlex.split(line)) for line in lines
                if line.strip() and not line.lstrip().startswith(("#", "set ", "export ", "cd "))]
    return [c.replace("python -m pip ", "pip ") for c in commands]


def test_ci_runs_the_readme_commands_in_order():
    ci = _ci_commands()
    positions = [ci.index(c) if c in ci else -1 for c in _readme_commands()]
    assert -1 not in positions, f"README command(s) CI does not run: {_readme_commands()} vs {ci}"
    assert positions == sorted(positions)


def test_the_linter_runs_before_the_tests():
    readme = _readme_commands()
    lint = [i for i, c in enumerate(readme) if c.startswith("ruff check")]
    tests = [i for i, c in enumerate(readme) if c.startswith("python -m pytest")]
    assert lint and tests and lint[0] < tests[0]
