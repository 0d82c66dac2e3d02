"""bf16 autocast vs fp32 per stage on CPU: the loss and the first step's gradient.

The same tiny models, batch and computation as tests/test_precision.py (dropout off):

    PYTHONPATH=$PWD/src OMP_NUM_THREADS=1 python benchmarks/bf16_agreement.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from lmcompress.utils.instantiate import instantiate_plain
from lmcompress.utils.paths import conf_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_precision as case  # noqa: E402


def main() -> None:
    """Print, per stage, the relative loss difference, gradient cosine and norm difference."""
    for stage in sorted(case.STAGES):
        GlobalHydra.instance().clear()
        with initialize_config_dir(str(conf_dir()), version_base="1.3"):
            base = ["model=tiny", "task=tiny"] if stage == "teacher" else ["task=tiny"]
            cfg = compose(stage, overrides=[*base, *case.STAGES[stage], *case.NO_DROPOUT[stage]])
        module = instantiate_plain(cfg.module).train()
        loss32, grad32 = case._loss_and_gradient(module, stage, bf16=False)
        loss16, grad16 = case._loss_and_gradient(module, stage, bf16=True)
        cosine = float(torch.nn.functional.cosine_similarity(grad16, grad32, dim=0))
        print(f"{stage}: loss rel diff {float(abs(loss16 - loss32) / abs(loss32)):.2e}, "
              f"gradient cosine {cosine:.6f}, "
              f"norm rel diff {float(abs(grad16.norm() - grad32.norm()) / grad32.norm()):.2e}")


if __name__ == "__main__":
    main()
