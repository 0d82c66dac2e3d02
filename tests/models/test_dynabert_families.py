"""DynaBERT on every encoder family (tiny random configs, no download; docs/dynabert.md §11).

Per family: importance and rewiring keep the function; a few width and width x depth training
steps; every exported sub-network equals the dynamic one (1e-5) with the predicted parameter
count, saves, and reloads (with lmcompress imported here, and in a subprocess where lmcompress
cannot be imported, through the folder's own modeling file and ``trust_remote_code``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import lmcompress  # noqa: F401  (registers the twins: reload without trust_remote_code)
from helpers.families import NAMES, batch, family_model
from lmcompress.models.dynabert import (
    compute_importance,
    extract_subnetwork,
    param_count,
    rewire,
    set_subnet,
    subnet,
)
from lmcompress.models.dynabert.parity import parity_record

GRID = [(w, d) for d in (1.0, 0.5) for w in (1.0, 0.75, 0.5, 0.25)]  # 4 heads: 4, 3, 2, 1
TWIN_FAMILIES = NAMES  # every family exports head-sliced twins


def _labelled(seed: int = 0) -> dict[str, torch.Tensor]:
    return {**batch(seed), "labels": torch.tensor([0, 1, 0])}


def _model(family: str) -> torch.nn.Module:
    """The tiny model, its shared per-head position table (MPNet) made large enough to matter
    (at init it moves the logits by ~1e-6, below the tolerance)."""
    model = family_model(family)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("relative_attention_bias.weight"):
                param.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(0))
    return model


def _trained(family: str) -> torch.nn.Module:
    """A rewired, dynamic tiny model after two width x depth steps over the whole grid."""
    model = _model(family)
    rewire(model, *compute_importance(model, [_labelled(0), _labelled(1)], "classification"))
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(2):
        for width, depth in GRID:
            set_subnet(model, width, depth)
            model(**_labelled(step)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    set_subnet(model, 1.0, 1.0)
    return model.eval()


@pytest.mark.parametrize("family", NAMES)
def test_rewiring_keeps_the_function(family):
    model = _model(family)
    before = model(**batch()).logits
    heads, neurons = compute_importance(model, [_labelled()], "classification")
    assert heads.shape == (4, 4) and neurons.shape == (4, 64) and heads.sum() > 0
    rewire(model, heads, neurons)
    torch.testing.assert_close(model(**batch()).logits, before, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", NAMES)
def test_every_exported_sub_network_equals_the_dynamic_one_and_reloads(family, tmp_path):
    model = _trained(family)
    for width, depth in GRID:
        with torch.no_grad(), subnet(model, width, depth):
            dynamic = model(**batch(3)).logits
        small = extract_subnetwork(model, width, depth)
        assert sum(p.numel() for p in small.parameters()) == param_count(model, width, depth)
        torch.testing.assert_close(small(**batch(3)).logits, dynamic, atol=1e-5, rtol=0)
        assert small.config.num_hidden_layers == 4 * depth
        sliced = width < 1.0
        assert type(small).__name__.startswith("Sliced") == sliced
        folder = tmp_path / f"w{width}_d{depth}"
        small.save_pretrained(folder)
        config = json.loads((folder / "config.json").read_text())
        assert ("auto_map" in config) == sliced
        assert (folder / "modeling_lmcompress_sliced.py").exists() == sliced
        reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        torch.testing.assert_close(reloaded(**batch(3)).logits, dynamic, atol=1e-5, rtol=0)
        record = parity_record(model, folder, width, depth)
        assert record["max_abs_diff_logits"] <= 1e-5
    assert model.dynabert_subnet == (1.0, 1.0)


def test_mpnet_shares_one_head_order_for_its_shared_position_bias():
    model = family_model("mpnet")
    heads = torch.tensor([[0.0, 1, 2, 3], [3, 2, 1, 0], [0, 0, 5, 0], [0, 0, 5, 0]])
    head_order, _ = rewire(model, heads, torch.rand(4, 64))
    assert (head_order == torch.tensor([2, 0, 1, 3])).all()  # summed: 3, 3, 13, 3 (stable)


_CHILD = textwrap.dedent("""
    import json, sys
    sys.modules["lmcompress"] = None  # as if lmcompress were not installed
    try:
        import lmcompress  # noqa: F401
        raise SystemExit("lmcompress importable")
    except ImportError:
        pass
    import torch
    from transformers import AutoModelForSequenceClassification
    out = {}
    for folder in sys.argv[1:]:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, trust_remote_code=True).eval()
        inputs = torch.load(folder + "/inputs.pt")
        with torch.no_grad():
            out[folder] = [type(model).__module__, model(**inputs).logits.tolist()]
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_head_sliced_exports_load_and_predict_without_lmcompress(tmp_path):
    folders, expected = [], {}
    for family in TWIN_FAMILIES:
        model = _trained(family)
        small = extract_subnetwork(model, 0.5, 0.5)
        folder = tmp_path / family
        small.save_pretrained(folder)
        torch.save(batch(4), folder / "inputs.pt")
        with torch.no_grad(), subnet(model, 0.5, 0.5):
            expected[str(folder)] = model(**batch(4)).logits
        folders.append(str(folder))
    env = {"PATH": "/usr/bin:/bin", "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # -I: no PYTHONPATH, no user site, no script directory on sys.path
    done = subprocess.run([sys.executable, "-I", "-c", _CHILD, *folders], env=env,
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    for folder, (module, logits) in got.items():
        assert module.startswith("transformers_modules")  # the folder's own file ran
        torch.testing.assert_close(torch.tensor(logits), expected[folder], atol=1e-5, rtol=0)
