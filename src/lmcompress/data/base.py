"""What every data source gives: raw examples per split, validated eagerly (no tokenisation).

A source has ``kind`` (classification | regression | token_classification), ``label_names``
(None for regression), ``splits()`` and ``load(split) -> list[Example]``. Bad input raises
:class:`DataSourceError` naming the file and line, the value, or the config key. A label that is
absent or a placeholder (``""``, ``-``, ``-1``) is ``label=None`` with ``where`` saying where it
came from; the data module decides per split whether that is allowed (docs/data.md).

:meth:`Source.load` checks every example of every source the same way: the text (and the text
pair) is a string as written (a tagging example: a list of strings), never a null or a list
turned into its repr, and a regression target is a finite number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lmcompress.data.readers import DataSourceError

__all__ = ["DataSourceError", "Example", "Source", "PLACEHOLDER_LABELS"]
PLACEHOLDER_LABELS = ("", "-", "-1")


@dataclass
class Example:
    """One example: a sentence (or word list), an optional second sentence, an optional label."""

    text: str | list[str]
    text_pair: str | None = None
    label: int | float | list[int] | None = None
    where: str | None = None
    """File and line (or another locator) for error messages."""


class Source:
    """Base class: split bookkeeping shared by every source; subclasses implement ``_load``."""

    kind: str = "classification"
    label_names: list[str] | None = None
    _splits: tuple[str, ...] = ("train", "validation", "test")
    text_fields: tuple[str, str] = ("the text", "the text pair")
    """How error messages name the two text fields (a file source names its columns)."""
    has_pairs: bool = False
    """True: every example has a second sentence (a null one is refused)."""

    def splits(self) -> list[str]:
        """The splits this source can load."""
        return list(self._splits)

    def load(self, split: str) -> list[Example]:
        """Examples of ``split`` (a DataSourceError for an unknown or empty split, bad fields)."""
        if split not in self.splits():
            raise DataSourceError(f"{type(self).__name__}: unknown split '{split}'; "
                                  f"available: {self.splits()}")
        examples = self._load(split)
        if not examples:
            raise DataSourceError(f"{type(self).__name__}: split '{split}' has no examples")
        for example in examples:
            self._check(example, split)
        return examples

    def _check(self, example: Example, split: str) -> None:
        where = example.where or f"{type(self).__name__} split '{split}'"
        if self.kind == "token_classification":
            text_ok, text_type = (isinstance(example.text, list)
                                  and all(isinstance(w, str) for w in example.text)), "a word list"
        else:
            text_ok, text_type = isinstance(example.text, str), "a string"
        pair_ok = isinstance(example.text_pair, str) or (example.text_pair is None
                                                          and not self.has_pairs)
        for name, value, ok, wanted in ((self.text_fields[0], example.text, text_ok, text_type),
                                        (self.text_fields[1], example.text_pair, pair_ok,
                                         "a string")):
            if not ok:
                raise DataSourceError(f"{where}: {name} is {_describe(value)}, not {wanted}; "
                                      "fix the file (it would train on the Python repr)")
        label = example.label
        if self.kind == "regression" and label is not None and not (
                isinstance(label, int | float) and math.isfinite(label)):
            raise DataSourceError(f"{where}: regression target {label!r} is not a finite "
                                  "number")

    def _load(self, split: str) -> list[Example]:
        raise NotImplementedError


def _describe(value: object) -> str:
    if value is None:
        return "null"
    return f"a {type(value).__name__} ({str(value)[:60]!r})"
