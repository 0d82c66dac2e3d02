"""DynaBERT options refused when the module is built, before any training: a width whose export
needs a head-sliced class the model's family lacks (``export.check_exportable`` in ``_grid``),
and ``module.importance`` settings (checked in ``__init__``, not at setup)."""

from __future__ import annotations

import pytest

from lmcompress.utils.instantiate import instantiate_plain

TINY_DYNA = ["teacher=tiny", "teacher.config.num_attention_heads=4", "data.batch_size=16"]
ROBERTA = "teacher.config.model_type=roberta"


@pytest.mark.parametrize("family", [["teacher.head=scalar_mix_cnn",
                                     "+teacher.config.input_length=32"]])
def test_a_width_dropping_heads_on_a_family_without_a_sliced_export_is_refused_at_build(
        make_cfg, family):
    cfg = make_cfg("dynabert", *TINY_DYNA, *family, "module.widths=[1.0,0.5]")
    with pytest.raises(ValueError, match=r"module.widths/depths: \(0.5, 1.0\): \w+ForSequence"
                                         r"Classification: exporting 2 of 4 attention heads "
                                         r"needs a sliced twin class"):
        instantiate_plain(cfg.module)


def test_roberta_widths_that_drop_heads_build_and_export_its_sliced_twin(make_cfg):
    # RoBERTa has a head-sliced twin since the family adapters (docs/dynabert.md §11)
    cfg = make_cfg("dynabert", *TINY_DYNA, ROBERTA, "module.widths=[1.0,0.5]")
    module = instantiate_plain(cfg.module)
    assert type(module.export_models()["w0.50_d1.00"]).__name__ == \
        "SlicedRobertaForSequenceClassification"


def test_widths_that_keep_every_head_still_build_on_that_family(make_cfg):
    # 2 heads: width 0.75 keeps round(1.5) = 2 heads (only the FFN shrinks): a plain export
    cfg = make_cfg("dynabert", "teacher=tiny", ROBERTA, "module.widths=[1.0,0.75]",
                   "module.depths=[1.0,0.5]")
    module = instantiate_plain(cfg.module)
    assert type(module.model).__name__ == "RobertaForSequenceClassification"
    assert module.grid == [(1.0, 1.0), (0.75, 1.0), (1.0, 0.5), (0.75, 0.5)]
    assert set(module.export_models()) == {"w1.00_d1.00", "w0.75_d1.00", "w1.00_d0.50",
                                           "w0.75_d0.50"}


@pytest.mark.parametrize("override, message", [
    ("+module.importance.exmaples=64",
     r"module.importance: unknown key\(s\) \['module.importance.exmaples'\]"),
    ("module.importance.examples=0", r"module.importance.examples=0: must be an integer >= 1"),
    ("module.importance.examples=12.5", r"module.importance.examples=12.5: expected"),
    ("module.importance.mode=greedy", r"module.importance.mode='greedy': choose from"),
])
def test_bad_importance_settings_are_refused_at_build(make_cfg, override, message):
    cfg = make_cfg("dynabert", *TINY_DYNA, override)
    with pytest.raises(ValueError, match=message):
        instantiate_plain(cfg.module)
