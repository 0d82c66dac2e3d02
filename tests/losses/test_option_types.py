"""Loss options are refused by key when their type is wrong, as Objective.from_config promises:
a weight that is not a number, and a switch given anything but true/false ("no" is truthy)."""

from __future__ import annotations

import pytest

from lmcompress.losses import Objective


@pytest.mark.parametrize("loss, message", [
    ({"weights": {"kd": "heavy"}}, r"loss.weights.kd='heavy': weights must be numbers"),
    ({"weights": {"kd": True}}, r"loss.weights.kd=True: weights must be numbers"),
    ({"weights": {"kd": 1.0}, "kd_t2": "yes"}, r"loss.kd_t2='yes': must be true or false"),
    ({"weights": {"hidden_mse": 1.0}, "hidden": {"mask_padding": "no"}},
     r"loss.hidden.mask_padding='no': must be true or false"),
    ({"weights": {"wr_pair": 1.0}, "ckd": {"centre": 0}}, r"loss.ckd.centre=0: must be true"),
])
def test_a_mistyped_loss_option_is_refused_by_key(loss, message):
    with pytest.raises(ValueError, match=message):
        Objective.from_config(loss)


def test_well_typed_options_are_kept():
    objective = Objective.from_config({"weights": {"kd": 2, "hidden_mse": 1.0}, "kd_t2": False,
                                       "hidden": {"mask_padding": True}})
    assert objective.weights == {"kd": 2.0, "hidden_mse": 1.0}
    assert objective.options == {"hidden_mse": {"mask_padding": True}, "kd": {"kd_t2": False}}
