"""Student config keys decide which teacher layers the student starts from (stage distill).

The expected indices are written here from the rule in conf/student/teacher_layers.yaml
(skip: 6 -> 3 keeps 1, 3, 5; first: 0, 1, 2; ``layers`` overrides both), and each student
layer is compared with the teacher layer it must copy.
"""

from __future__ import annotations

import pytest
import torch

from lmcompress.utils.instantiate import instantiate_plain


@pytest.mark.parametrize(("overrides", "expected"), [
    (["student.num_layers=2", "student.strategy=skip"], [1, 3]),
    (["student.num_layers=2", "student.strategy=first"], [0, 1]),
    (["student.num_layers=3", "student.strategy=first"], [0, 1, 2]),
    (["student.layers=[0,3]"], [0, 3]),
    (["student.layers=[2]", "student.num_layers=3"], [2]),
])
def test_teacher_layers_student_copies_the_configured_layers(make_cfg, overrides, expected):
    cfg = make_cfg("distill", "teacher=tiny", "teacher.config.num_hidden_layers=4",
                   "student=teacher_layers", "loss=kd", *overrides)
    module = instantiate_plain(cfg.module)
    teacher = module.teacher.bert.encoder.layer
    student = module.model.bert.encoder.layer
    assert len(student) == len(expected)
    for i, j in enumerate(expected):
        for key, value in teacher[j].state_dict().items():
            torch.testing.assert_close(student[i].state_dict()[key], value, msg=f"{i}<-{j} {key}")
    # random-init teacher layers differ, so a wrong index would fail the comparison
    assert not torch.equal(teacher[0].output.dense.weight, teacher[1].output.dense.weight)
