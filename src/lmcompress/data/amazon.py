"""Blitzer et al. (2007) multi-domain Amazon reviews: one domain per source, seeded splits."""

from __future__ import annotations

import html
import random
import re
from pathlib import Path

from lmcompress.data.base import DataSourceError, Example, Source
from lmcompress.data.readers import check_encoding, read_lines, require_file

_REVIEW = re.compile(r"<review>(.*?)</review>", re.S)


def _field(block: str, name: str) -> str:
    match = re.search(rf"<{name}>(.*?)</{name}>", block, re.S)
    return " ".join(html.unescape(match.group(1)).split()) if match else ""


class AmazonSource(Source):
    """One Blitzer et al. (2007) Amazon domain: 1,000 positive + 1,000 negative raw reviews.

    A seeded, stratified split (same seed, same split on any platform): ``test_fraction`` and
    ``val_fraction`` of each class go to test and validation, the rest to train. ``unlabeled=True``
    yields the same texts with ``label=None`` (unlabelled target-domain data); split ``all`` has
    every review. Text = title + ". " + review text. ``encoding``: the files' text encoding
    (``task.source.encoding``); an undecodable byte is refused with its line, never replaced.
    """

    def __init__(self, domain: str, data_dir: str, seed: int = 42, val_fraction: float = 0.1,
                 test_fraction: float = 0.2, unlabeled: bool = False,
                 max_chars: int | None = None, encoding: str = "utf-8"):
        root = Path(data_dir)
        if not root.is_dir():
            raise DataSourceError(f"Amazon data directory '{root}' not found (expected "
                                  "<domain>/positive.review); set task.source.data_dir")
        domains = sorted(p.name for p in root.iterdir() if (p / "positive.review").is_file())
        if domain not in domains:
            raise DataSourceError(f"Amazon domain '{domain}' not in {root}; available: {domains}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
                and val_fraction + test_fraction <= 1):
            raise DataSourceError("task.source.val_fraction + test_fraction must be in [0, 1] "
                                  "(1: no train split, e.g. an AMoC target's test + ATE text)")
        self.domain, self.data_dir, self.seed = domain, str(root), seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.unlabeled, self.max_chars = unlabeled, max_chars
        self.encoding = check_encoding(encoding)
        self.label_names = ["negative", "positive"]
        self._splits = ("train", "validation", "test", "all")

    def _reviews(self) -> list[tuple[str, int]]:
        out = []
        for label, name in enumerate(self.label_names):
            path = require_file(Path(self.data_dir) / self.domain / f"{name}.review",
                                f"Amazon {self.domain}")
            blocks = _REVIEW.findall("".join(t for _, t in read_lines(path, self.encoding)))
            if not blocks:
                raise DataSourceError(f"{path}: no <review> blocks found")
            for block in blocks:
                text = f"{_field(block, 'title')}. {_field(block, 'review_text')}".strip(". ")
                out.append((text[: self.max_chars] if self.max_chars else text, label))
        return out

    def _load(self, split: str) -> list[Example]:
        reviews = self._reviews()
        if split == "all":
            chosen = list(range(len(reviews)))
        else:
            rng = random.Random(self.seed)
            chosen = []
            for label in (0, 1):
                ids = [i for i, (_, y) in enumerate(reviews) if y == label]
                rng.shuffle(ids)
                n_test, n_val = round(len(ids) * self.test_fraction), round(
                    len(ids) * self.val_fraction)
                part = {"test": ids[:n_test], "validation": ids[n_test:n_test + n_val],
                        "train": ids[n_test + n_val:]}[split]
                chosen += part
            chosen.sort()
        return [Example(reviews[i][0], None, None if self.unlabeled else reviews[i][1],
                        f"Amazon {self.domain} review {i}") for i in chosen]
