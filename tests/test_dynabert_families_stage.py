"""The dynabert stage (``-cn dynabert`` on ``task=tiny``) for every encoder family, through the
export and its parity record, and an unsupported family refused when the module is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.families import NAMES, save_family_teacher
from lmcompress.run import run_stage
from lmcompress.utils.instantiate import instantiate_plain


@pytest.mark.slow
@pytest.mark.parametrize("family", NAMES)
def test_dynabert_width_depth_stage_exports_every_family(make_cfg, family, tmp_path):
    teacher = save_family_teacher(family, tmp_path / "teacher")
    cfg = make_cfg("dynabert", "teacher=path", f"teacher.name_or_path={teacher}",
                   "teacher.tokenizer=embedded:minilm-l6", "data.batch_size=16",
                   "data.max_length=32",
                   "phase=width_depth", "module.widths=[1.0,0.5]", "module.depths=[1.0,0.5]")
    result = run_stage(cfg)
    assert len(result["submodels"]) == 4
    for name, entry in result["submodels"].items():
        parity = json.loads((Path(entry["export_dir"]) / "parity.json").read_text())
        assert parity["max_abs_diff_logits"] <= 1e-5, (name, parity)
        sliced = name.startswith("w0.50")
        assert parity["class"].startswith("Sliced") == sliced


def test_an_unsupported_family_is_refused_by_name_at_build(make_cfg, tmp_path):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from lmcompress.models.hub import load_tokenizer
    GPT2ForSequenceClassification(GPT2Config(vocab_size=30522, n_embd=32, n_layer=2, n_head=4,
                                             n_positions=64, pad_token_id=0)
                                  ).save_pretrained(tmp_path / "gpt2")
    load_tokenizer("embedded:minilm-l6").save_pretrained(tmp_path / "gpt2")
    cfg = make_cfg("dynabert", "teacher=path", f"teacher.name_or_path={tmp_path / 'gpt2'}",
                   "teacher.tokenizer=embedded:minilm-l6")
    with pytest.raises(ValueError, match=r"GPT2ForSequenceClassification.*supported model "
                                         r"types: bert"):
        instantiate_plain(cfg.module)
