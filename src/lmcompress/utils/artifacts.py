"""What a stage leaves behind: exported models, predictions, and published teachers.

Exports are ``save_pretrained`` folders (model + tokenizer) reloadable with ``AutoModelFor...``;
a stage with several sub-models writes one folder each (``export/<name>/``). Publishing copies an
export to ``<artifact_dir>/teachers/<name>``, which ``conf/teacher/*`` reads; an existing
published teacher is never replaced unless ``publish_overwrite=true`` (runs distilled from it
record its weights digest, which would then no longer match), and even then only a folder that
holds the marker ``publish`` writes (:data:`MARKER`), never an arbitrary one. ``publish_as`` and
sub-model names must stay inside their folder (``utils.safe_paths.inside``).
"""

from __future__ import annotations

import csv
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from lmcompress.utils.checkpoints import read_checkpoint
from lmcompress.utils.io import apply_umask, copy_tree, write_json_atomic
from lmcompress.utils.safe_paths import inside

log = logging.getLogger("lmcompress")
MARKER = "lmcompress_publication.json"  # written by publish(); overwrite requires it


def load_weights(module: Any, checkpoint: str) -> None:
    """Load a checkpoint's weights into ``module`` strictly (frozen prefixes excepted)."""
    state = read_checkpoint(Path(checkpoint))["state_dict"]
    module.check_state_keys(state)
    module.load_state_dict(state, strict=False)


def export(module: Any, tokenizer: Any, out: Path) -> dict[str, str]:
    """``save_pretrained`` each of ``module.export_models()``; returns ``{name: folder}``."""
    folders = {}
    for name, model in module.export_models().items():
        folder = inside(out / "export", name, "sub-model name") if name else out / "export"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        parity = getattr(module, "parity", None)
        if parity is not None:  # DynaBERT: the reloaded export against the dynamic model
            write_json_atomic(folder / "parity.json", parity(name, folder))
        folders[name] = str(apply_umask(folder))
    return folders


def write_predictions(batches: list[dict[str, Any]], label_names: list[str] | None,
                      path: Path) -> str:
    """A TSV of ``index<TAB>prediction`` (class names when known) from predict batches."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted((int(i), p) for b in batches for i, p in zip(
        b["index"].tolist(), b["prediction"].tolist(), strict=True))
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["index", "prediction"])
        for index, pred in rows:
            writer.writerow([index, label_names[pred] if label_names and isinstance(
                pred, int) else pred])
    return str(path)


def publish_target(artifact_dir: str, name: str, overwrite: bool) -> Path:
    """Where ``publish_as=name`` will write, checked before training.

    Refuses a name outside ``<artifact_dir>/teachers``, an existing teacher unless
    ``overwrite``, and, with ``overwrite``, a folder that is not an earlier publication.
    """
    target = inside(Path(artifact_dir) / "teachers", name, "publish_as")
    if not (target.exists() or target.is_symlink()):
        return target
    if not overwrite:
        raise FileExistsError(
            f"publish_as={name}: {target} already holds a published teacher (runs distilled "
            "from it record its weights digest); choose another name, or set "
            "publish_overwrite=true to replace it")
    if target.is_symlink() or not (target / MARKER).is_file():
        raise FileExistsError(
            f"publish_as={name} publish_overwrite=true: {target} was not published by "
            f"lmcompress (no {MARKER} in it), so it is not replaced; move it away yourself, "
            "or choose another publish_as")
    return target


def publish(export_dir: str, target: Path) -> str:
    """Copy an export to ``target`` (the old one is replaced only once the copy is complete)."""
    staging = target.with_name(f".{target.name}.staging")
    if staging.is_symlink():  # never copy into (or delete) what a planted link points to
        staging.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    copy_tree(export_dir, staging)  # modes from the umask (copytree would copy the export's)
    write_json_atomic(staging / MARKER, {"source": str(export_dir),
                                         "published": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("published %s -> %s", export_dir, target)
    return str(target)


def delete_checkpoints(out: Path) -> int:
    """Remove ``out/checkpoints`` (``delete_checkpoints=true``, after a successful export)."""
    folder = out / "checkpoints"
    freed = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    log.info("deleted %s (%.0f MB; delete_checkpoints=true)", folder, freed / 2**20)
    return freed
