"""The stage interface run.py drives (modules/protocol.py): every stage provides it, with
TaskModule's defaults where a stage has nothing of its own; anything else is refused by name
before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl

from lmcompress.modules.protocol import STAGE_PARTS, Stage, check_stage
from lmcompress.run import run_stage
from lmcompress.utils.instantiate import instantiate_plain

TINY_TEACHER = {"distill": ["teacher=tiny", "student=tiny"],
                "dynabert": ["teacher=tiny", "teacher.config.num_attention_heads=4"]}


class NotAStage(pl.LightningModule):
    """A LightningModule that is no stage: no task, sub-models, exports or provenance."""

    def __init__(self, **_):
        super().__init__()


def test_finetune_gets_every_optional_part_from_task_module(make_cfg):
    module = check_stage(instantiate_plain(make_cfg("teacher").module), "finetune")
    assert module.provenance() == {} and module.published_submodel == ""
    assert module.subnets() == [""] and set(module.export_models()) == {""}


@pytest.mark.parametrize(("stage", "published"), [("distill", ""), ("dynabert", "w1.00_d1.00")])
def test_teacher_stages_report_their_teacher_and_what_they_publish(make_cfg, stage, published):
    module = instantiate_plain(make_cfg(stage, *TINY_TEACHER[stage]).module)
    assert isinstance(module, Stage)
    assert module.published_submodel == published
    assert set(module.provenance()) == {"teacher"}
    assert published in module.export_models()


def test_a_target_that_is_not_a_stage_is_refused_by_name_before_training(make_cfg):
    with pytest.raises(TypeError) as err:
        check_stage(NotAStage(), "my.Module")
    assert ("module._target_=my.Module: NotAStage is not a stage; it lacks "
            f"{list(STAGE_PARTS)}") in str(err.value)
    cfg = make_cfg("teacher", f"module._target_={__name__}.NotAStage")
    with pytest.raises(TypeError, match=rf"module._target_={__name__}.NotAStage"):
        run_stage(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()
