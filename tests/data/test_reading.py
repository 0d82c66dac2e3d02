"""Data is read as written, or refused with its file and line (docs/data.md, "Reading files").

Each case writes a small file in tmp_path and reads it through the source a config would build.
"""

from __future__ import annotations

import json
import re

import pytest

from lmcompress.data.amazon import AmazonSource
from lmcompress.data.conllu import ConlluSource
from lmcompress.data.datamodule import TextDataModule
from lmcompress.data.local import LocalFileSource
from lmcompress.data.readers import DataSourceError

TOKENIZER = "embedded:minilm-l6"


def _jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("value, shown", [(None, "null"), (["a", "b"], "a list"), (3, "an? int")])
def test_a_text_cell_that_is_not_a_string_is_refused_with_file_line_and_column(
        tmp_path, value, shown):
    path = _jsonl(tmp_path / "train.jsonl", [{"text": "fine", "label": "pos"},
                                              {"text": value, "label": "neg"}])
    source = LocalFileSource(train=path)
    with pytest.raises(DataSourceError, match=rf"train.jsonl, line 2: column 'text' is {shown}"):
        source.load("train")


def test_a_text_pair_that_is_not_a_string_is_refused(tmp_path):
    path = _jsonl(tmp_path / "train.jsonl", [{"a": "x", "b": None, "label": "pos"}])
    source = LocalFileSource(train=path, text_column="a", text_pair_column="b")
    with pytest.raises(DataSourceError, match=r"line 1: column 'b' is null"):
        source.load("train")


def test_a_column_header_given_twice_is_refused_not_last_wins(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label,text\nkeep me,pos,not me\n")
    with pytest.raises(DataSourceError, match=r"train.csv, line 1: column header 'text' appears "
                                              r"twice \(columns 1 and 3\)"):
        LocalFileSource(train=str(path))


def test_a_json_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "keep me", "label": "pos", "text": "not me"}\n')
    with pytest.raises(DataSourceError, match=r"train.jsonl, line 1: key 'text' appears twice"):
        LocalFileSource(train=str(path))


def test_a_non_utf8_file_names_its_line_and_the_encoding_key(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("text\tlabel\nplain\tpos\ncaf\xe9 au lait\tneg\n".encode("latin-1"))
    with pytest.raises(DataSourceError, match=r"train.tsv, line 3: byte b'\\xe9' at offset \d+ "
                                              r"is not valid utf-8; set task.source.encoding"):
        LocalFileSource(train=str(path))
    source = LocalFileSource(train=str(path), encoding="latin-1")
    assert [e.text for e in source.load("train")] == ["plain", "café au lait"]
    with pytest.raises(DataSourceError, match="task.source.encoding='latin-42' is not a known"):
        LocalFileSource(train=str(path), encoding="latin-42")


def test_non_utf8_review_and_conllu_files_are_refused_not_replaced(tmp_path):
    domain = tmp_path / "amazon" / "toys"
    domain.mkdir(parents=True)
    review = "<review><title>ok</title><review_text>fine</review_text></review>\n"
    (domain / "positive.review").write_text(review)
    (domain / "negative.review").write_bytes((review + "<review><title>caf\xe9</title>"
                                              "</review>\n").encode("latin-1"))
    with pytest.raises(DataSourceError, match=r"negative.review, line 2: .*task.source.encoding"):
        AmazonSource("toys", str(tmp_path / "amazon")).load("all")
    texts = AmazonSource("toys", str(tmp_path / "amazon"), encoding="latin-1").load("all")
    assert [e.text for e in texts] == ["ok. fine", "café", "ok. fine"]  # negatives first
    (tmp_path / "ud" / "train").mkdir(parents=True)
    word = "1\tcaf\xe9\tcafé\tNOUN\tNN\t_\t0\troot\t_\t_\n"
    (tmp_path / "ud" / "train" / "email.conllu").write_bytes(("# c\n" + word).encode("latin-1"))
    with pytest.raises(DataSourceError, match=r"email.conllu, line 2: .*not valid utf-8"):
        ConlluSource("email", str(tmp_path / "ud")).load("train")


@pytest.mark.parametrize("name, content, says", [
    ("train.csv", "", "no rows"), ("train.csv", "text,label\n\n", "only a header line"),
    ("train.jsonl", "\n\n", "no JSON objects")])
def test_an_empty_or_header_only_file_is_refused_as_empty(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataSourceError, match=rf"{re.escape(str(path))}: empty \({says}\)"):
        LocalFileSource(train=str(path), label_names=["neg", "pos"]).load("train")


def test_an_empty_conllu_file_is_refused_as_empty(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "email.conllu").write_text("# only a comment\n\n")
    with pytest.raises(DataSourceError, match=r"email.conllu: empty \(no sentences\)"):
        ConlluSource("email", str(tmp_path)).load("train")


def test_labels_spelled_as_names_in_one_split_and_numbers_in_another_are_refused(tmp_path):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    train.write_text("text,label\ngood,positive\nbad,negative\n")
    dev.write_text("text,label\nfine,1\n")  # today: index 1 = 'positive' by alphabetical order
    source = LocalFileSource(train=str(train), validation=str(dev))
    assert [e.label for e in source.load("train")] == [1, 0]
    with pytest.raises(DataSourceError, match=r"dev.csv, line 2: label '1' is spelled as one of "
                                              r"the indices, but the labels at .*train.csv, "
                                              r"line 2 are names"):
        source.load("validation")
    numbers = LocalFileSource(train=str(dev), validation=str(dev),
                              label_names=["negative", "positive"])
    assert [e.label for e in numbers.load("validation")] == [1]  # indices throughout: fine


def test_inferred_integer_labels_keep_their_numeric_order(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{i}\n" for i in (10, 2, 0, 1, 9)))
    source = LocalFileSource(train=str(path))
    assert source.label_names == ["0", "1", "2", "9", "10"]  # not '10' before '2'
    assert [e.label for e in source.load("train")] == [4, 2, 0, 1, 3]


@pytest.mark.parametrize("score", ["nan", "inf", "-Infinity"])
def test_a_non_finite_regression_target_names_its_row(tmp_path, score):
    path = tmp_path / "train.tsv"
    path.write_text(f"text\tscore\na\t0.5\nb\t{score}\n")
    source = LocalFileSource(train=str(path), label_column="score", kind="regression")
    with pytest.raises(DataSourceError, match=r"train.tsv, line 3: regression target .* is not "
                                              r"a finite number"):
        source.load("train")


@pytest.mark.parametrize("key", ["train_limit", "eval_limit"])
@pytest.mark.parametrize("limit", [-5, 0, 2.5])
def test_a_limit_that_is_not_a_positive_integer_is_refused(tmp_path, key, limit):
    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{'pos' if i % 2 else 'neg'}\n"
                                             for i in range(8)))
    source = LocalFileSource(train=str(path), validation=str(path))
    with pytest.raises(ValueError, match=rf"data.{key}={limit}: must be an integer >= 1"):
        TextDataModule(source, tokenizer=TOKENIZER, cache_dir=None, test_split=None,
                       **{key: limit})
    dm = TextDataModule(source, tokenizer=TOKENIZER, cache_dir=None, test_split=None,
                        **{key: 2})
    assert dm.validate() == {"train": 2 if key == "train_limit" else 8,
                             "validation": 2 if key == "eval_limit" else 8}
