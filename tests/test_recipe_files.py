"""Every recipe file (recipes/*.yaml, sweeps/*/recipe.yaml) composes step by step: a renamed
preset, group or key fails here, not an hour into a real-data chain. Placeholders
(``{step:key}``) stand for a path; composition only (no data is read)."""

from __future__ import annotations

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from helpers.cli import REPO
from lmcompress.recipe import PLACEHOLDER
from lmcompress.utils.paths import conf_dir, register_resolvers

register_resolvers()
RECIPES = sorted([*REPO.glob("recipes/*.yaml"), *REPO.glob("sweeps/*/recipe.yaml")])


def test_the_real_data_chain_is_among_them():
    assert REPO / "sweeps" / "deploy_sst2" / "recipe.yaml" in RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO)) for p in RECIPES])
def test_every_stage_step_composes(path, tmp_path):
    recipe = yaml.safe_load(path.read_text())
    stages = 0
    for name, step in recipe["steps"].items():
        if step["config"] == "deploy":
            continue
        overrides = [PLACEHOLDER.sub(str(tmp_path / "from_an_earlier_step"), o)
                     for o in [*recipe.get("overrides", []), *step.get("overrides", [])]]
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(str(conf_dir()), version_base="1.3"):
                cfg = compose(step["config"], overrides=[*overrides,
                                                         f"paths.log_dir={tmp_path}"])
        finally:
            GlobalHydra.instance().clear()
        assert cfg.task_name == step["config"], (path.name, name)
        stages += 1
    assert stages >= 1, path
