"""The embedded offline default task: generated multi-domain sentiment sentences.

A seeded generator writes short English reviews from four domains (restaurant, electronics,
movies, travel) out of this module's own word lists; no dataset text is involved. The binary label
(negative / positive) is *learnable but not trivial*: it is the polarity of the sentiment word,
flipped by a negation ("not", "never", "hardly"), and in contrastive sentences ("X, but Y") only
the clause after "but" counts. Intensifiers and neutral distractor clauses add noise words, and a
``noise`` fraction of *training* labels is flipped. It lets a new user run every stage offline in
minutes; it says nothing about real tasks: **real results need real data** (GLUE, Amazon, EWT).
"""

from __future__ import annotations

import random

from lmcompress.data.base import DataSourceError, Example, Source

DOMAINS: dict[str, dict[str, list[str]]] = {
    "restaurant": {
        "nouns": ["pasta", "service", "dessert", "waiter", "soup", "menu", "steak", "coffee"],
        "pos": ["delicious", "fresh", "friendly", "tasty", "generous", "attentive"],
        "neg": ["bland", "stale", "rude", "greasy", "cold", "overpriced"],
    },
    "electronics": {
        "nouns": ["battery", "screen", "charger", "keyboard", "speaker", "camera", "router"],
        "pos": ["reliable", "fast", "sharp", "sturdy", "responsive", "bright"],
        "neg": ["flimsy", "slow", "buggy", "noisy", "faulty", "dim"],
    },
    "movies": {
        "nouns": ["plot", "acting", "soundtrack", "ending", "script", "cast", "director"],
        "pos": ["gripping", "moving", "clever", "brilliant", "charming", "witty"],
        "neg": ["boring", "clumsy", "predictable", "dull", "confusing", "shallow"],
    },
    "travel": {
        "nouns": ["hotel", "flight", "room", "guide", "beach", "staff", "tour"],
        "pos": ["spotless", "relaxing", "punctual", "helpful", "scenic", "comfortable"],
        "neg": ["dirty", "crowded", "delayed", "unhelpful", "cramped", "noisy"],
    },
}
SHARED = {"pos": ["great", "excellent", "wonderful", "good", "pleasant"],
          "neg": ["terrible", "awful", "poor", "bad", "disappointing"]}
NEGATIONS = ["not", "never", "hardly"]
INTENSIFIERS = ["", "", "very", "really", "quite", "extremely", "somewhat"]
OPENERS = ["", "", "honestly ,", "overall ,", "to be fair ,", "i think", "my friend said"]
COPULAS = [("the", "was"), ("the", "is"), ("this", "was"), ("our", "was")]
DISTRACTORS = ["", "", "", "and we went on a tuesday", "which i expected", "as usual",
               "according to my sister", "after a long week"]


def _clause(rng: random.Random, domain: str) -> tuple[str, int]:
    """One evaluative clause and its polarity (1 positive, 0 negative)."""
    words = DOMAINS[domain]
    polarity = rng.randint(0, 1)
    pool = (words["pos"] + SHARED["pos"]) if polarity else (words["neg"] + SHARED["neg"])
    det, cop = rng.choice(COPULAS)
    negated = rng.random() < 0.3
    neg = f" {rng.choice(NEGATIONS)}" if negated else ""
    intens = rng.choice(INTENSIFIERS)
    adj = f"{intens} {rng.choice(pool)}".strip()
    text = f"{det} {rng.choice(words['nouns'])} {cop}{neg} {adj}"
    return text, polarity ^ int(negated)


def generate(rng: random.Random, domain: str) -> tuple[str, int]:
    """A sentence and its gold label."""
    first, label = _clause(rng, domain)
    if rng.random() < 0.25:  # contrast: only the clause after "but" decides
        second, label = _clause(rng, domain)
        first = f"{first} , but {second}"
    opener, tail = rng.choice(OPENERS), rng.choice(DISTRACTORS)
    return " ".join(p for p in (opener, first, tail) if p) + " .", label


class SyntheticSource(Source):
    """Seeded generated sentiment task (see module docstring); splits never share a sentence.

    Args:
        seed: generator seed (same seed, same data).
        n_train / n_validation / n_test: split sizes.
        noise: fraction of training labels flipped (validation and test stay clean).
        domains: restrict to these domains (default: all four).
    """

    kind = "classification"
    label_names = ["negative", "positive"]

    def __init__(self, seed: int = 0, n_train: int = 2000, n_validation: int = 400,
                 n_test: int = 400, noise: float = 0.05, domains: list[str] | None = None):
        unknown = sorted(set(domains or []) - set(DOMAINS))
        if unknown:
            raise DataSourceError(f"task.source.domains: unknown {unknown}; have {list(DOMAINS)}")
        if min(n_train, n_validation, n_test) < 1 or not 0 <= noise < 0.5:
            raise DataSourceError("task.source: split sizes must be >= 1 and 0 <= noise < 0.5")
        self.seed, self.noise = seed, noise
        self.n_train, self.n_validation, self.n_test = n_train, n_validation, n_test
        self.domains = list(domains) if domains else list(DOMAINS)
        self._cache: dict[str, list[Example]] | None = None

    def _generate(self) -> dict[str, list[Example]]:
        rng = random.Random(self.seed)
        sizes = {"train": self.n_train, "validation": self.n_validation, "test": self.n_test}
        seen: set[str] = set()
        rows: list[tuple[str, int]] = []
        while len(rows) < sum(sizes.values()):
            text, label = generate(rng, rng.choice(self.domains))
            if text not in seen:  # unique across splits by construction
                seen.add(text)
                rows.append((text, label))
        out, start = {}, 0
        noise_rng = random.Random(self.seed + 1)
        for split, size in sizes.items():
            part = rows[start:start + size]
            start += size
            out[split] = [
                Example(t, None, y ^ int(split == "train" and noise_rng.random() < self.noise),
                        f"generated {split} #{i}")
                for i, (t, y) in enumerate(part)
            ]
        return out

    def _load(self, split: str) -> list[Example]:
        if self._cache is None:
            self._cache = self._generate()
        return self._cache[split]
