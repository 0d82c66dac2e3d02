"""What every data source gives: raw examples per split, validated eagerly (no tokenisation).

A source has ``kind`` (classification | regression | token_classification), ``label_names``
(None for regression), ``splits()`` and ``load(split) -> list[Example]``. Bad input raises
:class:`DataSourceError` naming the file and line, the value, or the config key. A label that is
absent or a placeholder (``""``, ``-``, ``-1``) is ``label=None`` with ``where`` saying where it
came from; the data module decides per split whether that is allowed (docs/data.md).
"""

from __future__ import annotations

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

    def splits(self) -> list[str]:
        """The splits this source can load."""
        return list(self._splits)

    def load(self, split: str) -> list[Example]:
        """Examples of ``split`` (a DataSourceError for an unknown or empty split)."""
        if split not in self.splits():
            raise DataSourceError(f"{type(self).__name__}: unknown split '{split}'; "
                                  f"available: {self.splits()}")
        examples = self._load(split)
        if not examples:
            raise DataSourceError(f"{type(self).__name__}: split '{split}' has no examples")
        return examples

    def _load(self, split: str) -> list[Example]:
        raise NotImplementedError
