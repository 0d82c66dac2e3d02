"""One home for the ignored-label value: ``lmcompress.labels.IGNORE_INDEX`` (docs/data.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import lmcompress
from lmcompress.labels import IGNORE_INDEX

SRC = Path(lmcompress.__file__).parent


def _minus_100(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and node.operand.value == 100]


def test_no_module_but_labels_spells_the_ignored_label():
    """A second ``IGNORE_INDEX = -100`` (or a bare ``ignore_index=-100``) would drift alone."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "labels.py" and path.parent == SRC:
            continue
        found += [f"{path.relative_to(SRC)}:{line}" for line in _minus_100(ast.parse(
            path.read_text()))]
    assert not found, f"-100 spelled outside lmcompress/labels.py: {found}"
    assert IGNORE_INDEX == -100  # transformers' token collator pads labels with -100

