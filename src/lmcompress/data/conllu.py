"""UD English EWT (CoNLL-U) POS tagging, one genre per source."""

from __future__ import annotations

from pathlib import Path

from lmcompress.data.base import DataSourceError, Example, Source
from lmcompress.data.readers import check_encoding, read_lines, require_file

UPOS_TAGS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X"]
EWT_GENRES = ("answers", "email", "newsgroup", "reviews", "weblog")


def read_conllu(path: Path, column: int,
                encoding: str = "utf-8") -> list[tuple[list[str], list[str]]]:
    """Sentences as (words, tags); multiword ranges (3-4) and empty nodes (3.1) are skipped."""
    sentences, words, tags = [], [], []
    for line_no, line in read_lines(path, encoding):
        line = line.rstrip("\n")
        if not line.strip():
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataSourceError(f"{path}, line {line_no}: expected 10 tab-separated "
                                  f"CoNLL-U columns, found {len(cols)}")
        if "-" in cols[0] or "." in cols[0]:
            continue
        words.append(cols[1])
        tags.append(cols[column])
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise DataSourceError(f"{path}: empty (no sentences)")
    return sentences


class ConlluSource(Source):
    """POS tagging for one UD English EWT genre (``all`` = the five genres); dev = validation."""

    def __init__(self, genre: str, data_dir: str, tag_column: str = "upos",
                 encoding: str = "utf-8"):
        root = Path(data_dir)
        if not root.is_dir():
            raise DataSourceError(f"UD EWT directory '{root}' not found (expected "
                                  "{train,dev,test}/<genre>.conllu); set task.source.data_dir")
        if genre not in (*EWT_GENRES, "all"):
            raise DataSourceError(f"EWT genre '{genre}' unknown; choose from {EWT_GENRES} or all")
        if tag_column not in ("upos", "xpos"):
            raise DataSourceError(f"task.source.tag_column='{tag_column}': use upos or xpos")
        self.genre, self.data_dir, self.tag_column = genre, str(root), tag_column
        self.encoding = check_encoding(encoding)
        self.kind = "token_classification"
        self.label_names = UPOS_TAGS if tag_column == "upos" else sorted(
            {t for _, tags in self._read("train") for t in tags})

    def _read(self, split: str) -> list[tuple[list[str], list[str]]]:
        folder = {"validation": "dev"}.get(split, split)
        genres = EWT_GENRES if self.genre == "all" else (self.genre,)
        out = []
        for genre in genres:
            path = require_file(Path(self.data_dir) / folder / f"{genre}.conllu",
                                f"UD EWT {split}")
            out += read_conllu(path, 3 if self.tag_column == "upos" else 4, self.encoding)
        return out

    def _load(self, split: str) -> list[Example]:
        index = {t: i for i, t in enumerate(self.label_names)}
        examples = []
        for n, (words, tags) in enumerate(self._read(split)):
            unknown = [t for t in tags if t not in index]
            if unknown:
                raise DataSourceError(f"UD EWT {split} sentence {n + 1}: tag {unknown[0]!r} is "
                                      f"not in the label set {self.label_names}")
            examples.append(Example(words, None, [index[t] for t in tags],
                                    f"UD EWT {self.genre} {split} sentence {n + 1}"))
        return examples
