"""Numeric trainer/data settings are refused with their key and allowed range, before anything is
built (``utils/checks.check_plan``, called first by ``run.run_stage``)."""

from __future__ import annotations

import pytest
from omegaconf import open_dict

import lmcompress.run as run
from lmcompress.utils.checks import check_plan, check_seed


@pytest.mark.parametrize("key, value, allowed", [
    ("data.batch_size", 0, "an integer >= 1"), ("data.batch_size", -4, "an integer >= 1"),
    ("data.batch_size", 8.5, "an integer >= 1"), ("data.eval_batch_size", 0, "an integer >= 1"),
    ("trainer.max_epochs", 1.5, "an integer >= 1, or -1"),
    ("trainer.max_epochs", -3, "an integer >= 1, or -1"),
    ("trainer.max_epochs", True, "an integer >= 1, or -1"),
    ("trainer.min_epochs", 0.5, "an integer >= 0"),
    ("trainer.max_steps", 2.0, "an integer >= 1, or -1"),
    ("trainer.accumulate_grad_batches", 0, "an integer >= 1")])
def test_a_non_integer_or_out_of_range_setting_names_its_key_and_range(make_cfg, key, value,
                                                                        allowed):
    cfg = make_cfg("teacher")
    check_plan(cfg)  # the composed default passes
    section, name = key.split(".")
    with open_dict(cfg):
        cfg[section][name] = value
    with pytest.raises(ValueError, match=rf"{key}={value!r}: must be {allowed}"):
        check_plan(cfg)


def test_no_epoch_limit_and_no_step_limit_is_refused_by_both_keys(make_cfg):
    check_plan(make_cfg("teacher", "trainer.max_epochs=-1", "trainer.max_steps=5"))  # steps end it
    with pytest.raises(ValueError, match=r"trainer.max_epochs=-1 with trainer.max_steps=-1 plans "
                                         r"no end"):
        check_plan(make_cfg("teacher", "trainer.max_epochs=-1", "trainer.max_steps=-1"))


def test_the_refusal_comes_before_the_data_module_or_any_model_is_built(make_cfg, monkeypatch):
    built = []
    monkeypatch.setattr(run, "instantiate_plain", lambda *a, **k: built.append(a) or 1 / 0)
    with pytest.raises(ValueError, match=r"trainer.max_epochs=2.5: must be"):
        run.run_stage(make_cfg("teacher", "trainer.max_epochs=2.5"))
    assert built == []
    with pytest.raises(ZeroDivisionError):  # the same run with a valid value goes on to build
        run.run_stage(make_cfg("teacher", "trainer.max_epochs=2"))
    assert len(built) == 1


@pytest.mark.parametrize("seed", ["abc", 1.5, -1, 2**32, True])
def test_a_seed_that_is_not_an_integer_in_range_is_refused_by_key(make_cfg, seed):
    cfg = make_cfg("teacher")
    check_seed(cfg)  # the composed default passes
    with open_dict(cfg):
        cfg.seed = seed
    with pytest.raises(ValueError, match=r"seed=.*: must be an integer from 0 to 4294967295"):
        check_seed(cfg)


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_cpu_without_native_bf16_warns_naming_the_key(make_cfg, monkeypatch, caplog,
                                                                  native):
    import torch

    from lmcompress.utils import checks
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cfg = make_cfg("teacher", "hardware=bf16_mixed", "trainer.accelerator=cpu")
    with caplog.at_level("WARNING", logger=checks.__name__):
        checks.check_device(cfg)
    warned = [r.getMessage() for r in caplog.records if "without native bf16" in r.getMessage()]
    assert bool(warned) is (not native)
    if warned:
        assert "trainer.precision=bf16-mixed" in warned[0] and "hardware=cpu" in warned[0]


def test_a_config_group_set_in_a_configs_body_is_refused_by_its_key(tmp_path, monkeypatch):
    """``loss: kd_ckd`` in a sweep config's body replaces the loss settings with a string (Hydra
    selects a group only in the defaults list); the run names the key before building anything."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from helpers.cli import TINY

    def composed(body: str):
        folder = tmp_path / f"conf{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        (folder / "mine.yaml").write_text("defaults:\n  - /distill\n  - _self_\n" + body)
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(folder), version_base="1.3"):
            cfg = compose("mine", overrides=[o for o in TINY if not o.startswith("model=")],
                          return_hydra_config=True)
        GlobalHydra.instance().clear()
        with open_dict(cfg):
            cfg.paths.output_dir = cfg.hydra.runtime.output_dir = str(folder / "run")
        HydraConfig().set_config(cfg)
        return cfg

    built = []
    monkeypatch.setattr(run, "instantiate_plain", lambda *a, **k: built.append(a) or 1 / 0)
    with pytest.raises(ValueError, match=r"loss='kd_ckd': `loss` is a config group \(conf/loss/\)"
                                         r".*`- override /loss: kd_ckd`"):
        run.run_stage(composed("loss: kd_ckd\n"))
    assert built == []
    with pytest.raises(ZeroDivisionError):  # the same folder with the group left as it is goes on
        run.run_stage(composed("loss:\n  temperature: 2.0\n"))  # a key under the group: fine
    assert len(built) == 1
