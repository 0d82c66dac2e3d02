"""Data sources: seeded determinism on synthetic inputs; real-data counts from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmcompress.data.amazon import AmazonSource
from lmcompress.data.conllu import ConlluSource
from lmcompress.data.glue import GlueSource
from lmcompress.data.readers import DataSourceError
from lmcompress.data.synthetic import SyntheticSource


def test_synthetic_source_is_seeded_sized_and_disjoint():
    a, b = SyntheticSource(seed=3, n_train=50, n_validation=20, n_test=10), SyntheticSource(seed=3)
    other = SyntheticSource(seed=4, n_train=50, n_validation=20, n_test=10)
    assert [e.text for e in a.load("train")] == [e.text for e in b.load("train")[:50]]
    assert [e.text for e in a.load("train")] != [e.text for e in other.load("train")]
    sizes = {s: len(a.load(s)) for s in a.splits()}
    assert sizes == {"train": 50, "validation": 20, "test": 10}
    texts = [{e.text for e in a.load(s)} for s in a.splits()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    labels = {e.label for s in a.splits() for e in a.load(s)}
    assert labels == {0, 1}
    with pytest.raises(DataSourceError, match="unknown split 'dev'"):
        a.load("dev")


def _fake_blitzer(root: Path, n: int = 20) -> Path:
    for domain in ("kitchen", "toys"):
        for label in ("positive", "negative"):
            blocks = [f"<review>\n<title>\n{label} {domain} title {i}\n</title>\n<review_text>\n"
                      f"made-up {label} text number {i} &amp; more\n</review_text>\n</review>"
                      for i in range(n)]
            (root / domain).mkdir(parents=True, exist_ok=True)
            (root / domain / f"{label}.review").write_text("\n".join(blocks))
    return root


def test_amazon_split_is_seeded_stratified_disjoint_and_unlabelled_on_request(tmp_path):
    root = _fake_blitzer(tmp_path / "amazon")
    src = AmazonSource("kitchen", str(root), seed=7, val_fraction=0.1, test_fraction=0.2)
    again = AmazonSource("kitchen", str(root), seed=7, val_fraction=0.1, test_fraction=0.2)
    splits = {s: src.load(s) for s in ("train", "validation", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 28, "validation": 4, "test": 8}
    for split, examples in splits.items():
        assert [e.text for e in examples] == [e.text for e in again.load(split)]
        assert sum(e.label for e in examples) * 2 == len(examples)  # stratified
    texts = [{e.text for e in v} for v in splits.values()]
    assert sum(map(len, texts)) == len(set().union(*texts)) == 40
    assert "& more" in splits["train"][0].text  # HTML entities decoded
    other_seed = AmazonSource("kitchen", str(root), seed=8).load("test")
    assert {e.text for e in other_seed} != texts[2]
    unlabeled = AmazonSource("kitchen", str(root), seed=7, unlabeled=True)
    assert [e.text for e in unlabeled.load("train")] == [e.text for e in splits["train"]]
    assert all(e.label is None for e in unlabeled.load("all")) and len(unlabeled.load("all")) == 40
    with pytest.raises(DataSourceError, match=r"'books' not in .*\['kitchen', 'toys'\]"):
        AmazonSource("books", str(root))


# --- real data: counts documented in ../shared/data/*/SOURCE.md ----------------------------------
GLUE_COUNTS = [
    ("sst2", "sentence_level", {"train": 6920, "validation": 872, "test": 1821}),
    ("mrpc", "default", {"train": 3668, "validation": 408}),
    ("rte", "default", {"train": 2490, "validation": 277}),
    ("cola", "default", {"train": 8551, "validation": 1043, "validation_in_domain": 527,
                         "validation_out_of_domain": 516}),
    ("stsb", "default", {"train": 5749, "validation": 1500}),
]


@pytest.mark.data
@pytest.mark.parametrize(("task", "variant", "counts"), GLUE_COUNTS,
                         ids=[c[0] for c in GLUE_COUNTS])
def test_glue_counts(shared_data, task, variant, counts):
    src = GlueSource(task, str(shared_data / "glue"), variant=variant)
    assert {split: len(src.load(split)) for split in counts} == counts


@pytest.mark.data
@pytest.mark.parametrize("domain", ["books", "dvd", "electronics", "kitchen"])
def test_amazon_counts(shared_data, domain):
    src = AmazonSource(domain, str(shared_data / "amazon_blitzer2007"))
    sizes = [len(src.load(s)) for s in ("train", "validation", "test")]
    assert sizes == [1400, 200, 400]
    labels = [e.label for e in src.load("all")]
    assert len(labels) == 2000 and sum(labels) == 1000


@pytest.mark.data
def test_ewt_answers_counts(shared_data):
    src = ConlluSource("answers", str(shared_data / "ud_english_ewt"))
    train = src.load("train")
    assert len(train) == 2631
    assert all(len(e.text) == len(e.label) for e in train)
