"""Packaged models (models/packaged.py): split parts assembled once, verified, atomically cached."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import zipfile
from pathlib import Path

import pytest

from lmcompress.models import hub, packaged

WEIGHTS = bytes(range(256)) * 300  # 76,800 bytes: several parts


def _spec(sha: str | None = None, dists=("fake-part-1", "fake-part-2", "fake-part-3")):
    return packaged.PackagedModel(
        extra="fakeextra", parts=tuple((d, f"{d}/model.zip.{i}") for i, d in enumerate(dists)),
        subdir="fake-model", weights="model.safetensors",
        sha256=sha or hashlib.sha256(WEIGHTS).hexdigest())


def _parts(tmp_path: Path, n: int = 3) -> list[Path]:
    """A zip holding fake-model/{config.json, model.safetensors}, cut into ``n`` files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("fake-model/config.json", '{"model_type": "bert"}')
        zf.writestr("fake-model/model.safetensors", WEIGHTS)
    data = buf.getvalue()
    size = -(-len(data) // n)
    paths = []
    for i in range(n):
        path = tmp_path / "parts" / f"model.zip.{i:03d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[i * size:(i + 1) * size])
        paths.append(path)
    return paths


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name] if parent.exists() else []


def test_assembles_parts_in_order_and_verifies(tmp_path):
    parts, entry = _parts(tmp_path), tmp_path / "cache" / "fake"
    model_dir = packaged.assemble(parts, _spec(), entry)
    assert model_dir == entry / "fake-model"
    assert (model_dir / "model.safetensors").read_bytes() == WEIGHTS
    assert (model_dir / "config.json").is_file()
    assert packaged.is_complete(entry, _spec())
    assert not (entry / "model.zip").exists() and not _leftovers(entry.parent)


def test_parts_out_of_order_are_refused(tmp_path):
    parts, entry = _parts(tmp_path), tmp_path / "cache" / "fake"
    with pytest.raises(packaged.PackagedModelError):
        packaged.assemble([parts[1], parts[0], parts[2]], _spec(), entry)
    assert not entry.exists() and not _leftovers(entry.parent)


def test_sha_mismatch_refused_naming_the_file(tmp_path):
    parts, entry = _parts(tmp_path), tmp_path / "cache" / "fake"
    with pytest.raises(packaged.PackagedModelError,
                       match=r"sha256 mismatch for fake-model/model.safetensors"):
        packaged.assemble(parts, _spec(sha="0" * 64), entry)
    assert not entry.exists() and not _leftovers(entry.parent)


def test_partial_cache_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "fake", _spec())
    monkeypatch.setattr(packaged, "installed_parts", lambda name, spec: _parts(tmp_path))
    entry = packaged.cache_root() / "models" / f"fake-{_spec().sha256[:12]}"
    (entry / "fake-model").mkdir(parents=True)  # an interrupted run: weights, no marker
    (entry / "fake-model" / "model.safetensors").write_bytes(WEIGHTS[:100])
    model_dir = packaged.packaged_model_dir("fake")
    assert (model_dir / "model.safetensors").read_bytes() == WEIGHTS
    assert packaged.is_complete(entry, _spec())


def test_second_use_reads_the_cache_without_the_parts(tmp_path, monkeypatch):
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "fake", _spec())
    monkeypatch.setattr(packaged, "installed_parts", lambda name, spec: _parts(tmp_path))
    first = packaged.packaged_model_dir("fake")
    stamp = (first / "model.safetensors").stat().st_mtime_ns

    def no_parts(name, spec):
        raise AssertionError("assembled twice")

    monkeypatch.setattr(packaged, "installed_parts", no_parts)
    assert packaged.packaged_model_dir("fake") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert packaged.assemble([], _spec(), first.parent) == first  # assemble() itself: no-op


def test_missing_extra_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv(packaged.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "fake",
                        _spec(dists=("lmcompress-no-such-part-1", "lmcompress-no-such-part-2")))
    hub.embedded_model_dir.cache_clear()
    with pytest.raises(hub.ModelResolutionError) as err:
        hub.resolve_model_path("embedded:fake")
    hub.embedded_model_dir.cache_clear()
    assert "pip install -e '.[fakeextra]'" in str(err.value)
    assert "lmcompress-no-such-part-1, lmcompress-no-such-part-2" in str(err.value)


def test_unknown_embedded_name_lists_packaged_ones():
    with pytest.raises(hub.ModelResolutionError, match="embedded:mpnet-base"):
        hub.resolve_model_path("embedded:nope")


def _mpnet_available() -> bool:
    spec = packaged.PACKAGED_MODELS["mpnet-base"]
    entry = packaged.cache_root() / "models" / f"mpnet-base-{spec.sha256[:12]}"
    if packaged.is_complete(entry, spec):
        return True
    try:
        importlib.metadata.distribution(spec.parts[0][0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _mpnet_available(), reason="the mpnet extra is not installed")
def test_real_mpnet_loads():
    from transformers import AutoConfig, AutoModel

    path = hub.resolve_model_path("embedded:mpnet-base")
    config = AutoConfig.from_pretrained(path)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("mpnet", 12, 768)
    model = AutoModel.from_pretrained(path)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 109.5
    tokens = hub.load_tokenizer("embedded:mpnet-base")("a great movie")["input_ids"]
    assert tokens[0] == config.bos_token_id and tokens[-1] == config.eos_token_id
