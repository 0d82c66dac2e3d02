"""A teacher (or a pretrained student) trained for another kind of task than the task's (token vs
sequence classification) is refused in one plain sentence naming both kinds, when the module is
built (``models/student._check_trained_for``)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
)

from lmcompress.data.conllu import UPOS_TAGS
from lmcompress.models.hub import load_tokenizer
from lmcompress.utils.instantiate import instantiate_plain

TINY = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 64}
TOKEN = "token classification \\(one label per word\\)"
SEQUENCE = "sequence classification \\(one label per input\\)"


def _save(path, auto, labels: list[str]):
    config = BertConfig(**TINY, num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={n: i for i, n in enumerate(labels)})
    auto.from_config(config).save_pretrained(path)
    load_tokenizer("embedded:minilm-l6").save_pretrained(path)
    return path


def test_a_token_classification_teacher_for_a_sentence_task_is_refused(make_cfg, tmp_path):
    tagger = _save(tmp_path / "tagger", AutoModelForTokenClassification, UPOS_TAGS)
    cfg = make_cfg("distill", "teacher=path", f"teacher.name_or_path={tagger}",
                   "teacher.tokenizer=embedded:minilm-l6", "student=tiny", "loss=kd")
    with pytest.raises(ValueError, match=rf"^the teacher '{tagger}' is a {TOKEN} model "
                                         rf"\(BertForTokenClassification\), but task 'tiny' "
                                         rf"\(task.kind=classification\) is {SEQUENCE}\.$"):
        instantiate_plain(cfg.module)


def test_a_sentence_classification_teacher_for_a_tagging_task_is_refused(make_cfg, tmp_path):
    sentiment = _save(tmp_path / "sst", AutoModelForSequenceClassification, ["neg", "pos"])
    cfg = make_cfg("distill", "task=ud_ewt/email", "teacher=path",
                   f"teacher.name_or_path={sentiment}", "teacher.tokenizer=embedded:minilm-l6",
                   "student=tiny", "loss=kd")
    with pytest.raises(ValueError, match=rf"is a {SEQUENCE} model \(BertForSequence"
                                         rf"Classification\), but task 'ud_ewt_email' "
                                         rf"\(task.kind=token_classification\) is {TOKEN}"):
        instantiate_plain(cfg.module)


def test_a_teacher_stage_checkpoint_of_the_other_kind_is_refused(make_cfg, tmp_path):
    model = AutoModelForTokenClassification.from_config(BertConfig(**TINY, num_labels=2))
    torch.save({"hyper_parameters": {
        "model": {"config": {"model_type": "bert", **TINY}, "tokenizer": "embedded:minilm-l6"},
        "task": {"name": "tagger", "kind": "token_classification", "num_labels": 2,
                 "label_names": ["A", "B"], "metrics": ["token_accuracy"],
                 "main_metric": "token_accuracy"}},
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
        tmp_path / "teacher.ckpt")
    cfg = make_cfg("distill", "teacher=path", "teacher.name_or_path=null",
                   f"+teacher.checkpoint={tmp_path / 'teacher.ckpt'}", "student=tiny", "loss=kd")
    with pytest.raises(ValueError, match=rf"is a {TOKEN} model .* is {SEQUENCE}"):
        instantiate_plain(cfg.module)


def test_a_pretrained_student_of_the_other_kind_is_refused(make_cfg, tmp_path):
    tagger = _save(tmp_path / "tagger", AutoModelForTokenClassification, UPOS_TAGS)
    cfg = make_cfg("distill", "teacher=tiny", "student=pretrained",
                   f"student.name_or_path={tagger}", "loss=kd")
    with pytest.raises(ValueError, match=rf"^the student '{tagger}' is a {TOKEN} model"):
        instantiate_plain(cfg.module)
