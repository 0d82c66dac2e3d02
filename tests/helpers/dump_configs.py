"""Dump the composed config of every primary config x experiment preset (and every sweep).

``python tests/helpers/dump_configs.py <out_dir>`` writes one sorted YAML per composition, with
interpolations left unresolved, so two checkouts can be compared with ``diff -r``: it is how a
refactor of ``conf/`` (e.g. moving a default into its typed spec) shows that every stage and
every preset composes as before.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from lmcompress.utils.paths import conf_dir

CONF = conf_dir()
PRIMARIES = ("teacher", "distill", "dynabert", "amoc", "amoc_tiny")
EXTRA = {"dynabert_phase_width_depth": ("dynabert", ["phase=width_depth"]),
         "dynabert_loss_ckd": ("dynabert", ["loss=dynabert_ckd"])}


def _dump(config_dir: Path, name: str, overrides: list[str], out: Path) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir), version_base="1.3"):
        cfg = compose(name, overrides=overrides)
    plain = OmegaConf.to_container(cfg, resolve=False)
    out.write_text(OmegaConf.to_yaml(OmegaConf.create(plain), sort_keys=True))


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stage in PRIMARIES:
        _dump(CONF, stage, [], out / f"{stage}.yaml")
    for key, (stage, overrides) in EXTRA.items():
        _dump(CONF, stage, overrides, out / f"{key}.yaml")
    for preset in sorted((CONF / "experiment").glob("*.yaml")):
        for stage in PRIMARIES:
            if re.search(rf"-cn {stage} experiment={preset.stem}\b", preset.read_text()):
                _dump(CONF, stage, [f"experiment={preset.stem}"],
                      out / f"{stage}+{preset.stem}.yaml")
    for sweep in sorted((CONF.parent / "sweeps").glob("*/sweep*.yaml")):
        _dump(sweep.parent, sweep.stem, [], out / f"sweep+{sweep.parent.name}+{sweep.stem}.yaml")
    print(f"{len(list(out.glob('*.yaml')))} compositions in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
