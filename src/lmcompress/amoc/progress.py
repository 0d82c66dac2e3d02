"""Finished candidates on disk, so a search killed mid-way resumes where it stopped (docs/amoc.md).

After its brief fine-tune, each candidate is stored as ``<dir>/<removed>.pt``: its features,
statistics and re-trained parameters, plus a **key**: the SHA-256 of everything that shapes that
candidate's result (the removed layers, its first changed layer, the trainable rule, the
fine-tune settings, the metric, the evaluation batch size, the run's identity and a digest of
the base model's weights). A re-run reuses a stored candidate only if its key equals the one
computed now; anything else (another base model, another ``train`` setting) is fitted again and
overwrites it. The budget list is not part of the key: adding a budget keeps the finished ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch

from lmcompress.amoc.candidates import Candidate

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A candidate after its brief fine-tune, with its label-free features."""

    candidate: Candidate
    start: int
    params: int
    stats: dict[str, float]
    features: dict[str, float]
    ate_target: dict[str, float]
    state: dict[str, Any]


def weights_digest(model: Any) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def candidate_key(context: dict[str, Any], removed: tuple[int, ...], start: int) -> str:
    """The hash that must match for a stored candidate to be reused."""
    settings = {k: asdict(v) if is_dataclass(v) else v for k, v in context.items()}
    text = json.dumps({**settings, "removed": list(removed), "start": start}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class CandidateStore:
    """One file per finished candidate under ``folder`` (written atomically)."""

    def __init__(self, folder: Path, context: dict[str, Any]):
        self.folder, self.context = Path(folder), context
        self.reused = 0

    def path(self, name: str) -> Path:
        """Where the candidate named ``name`` (``"1+3"``) is stored."""
        return self.folder / f"{name}.pt"

    def load(self, candidate: Candidate, start: int) -> Trained | None:
        """A finished candidate as stored, or None (absent, unreadable, or with another key)."""
        path = self.path(candidate.name)
        if not path.is_file():
            return None
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a foreign or damaged file: fit the candidate again
            log.warning("amoc: %s unreadable (%s); fitting it again", path, err)
            return None
        if stored.get("key") != candidate_key(self.context, candidate.removed, start):
            log.info("amoc: %s was fitted with another config; fitting it again", path)
            return None
        self.reused += 1
        return Trained(candidate, start, **stored["fields"])

    def save(self, item: Trained) -> None:
        """Store a finished candidate (temporary file, then ``os.replace``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(item.candidate.name)
        kept = {f.name: getattr(item, f.name) for f in fields(Trained)
                if f.name not in ("candidate", "start")}
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({"key": candidate_key(self.context, item.candidate.removed,
                                                 item.start), "fields": kept}, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Delete the stored candidates (once the search's results are written)."""
        for path in self.folder.glob("*.pt"):
            path.unlink()
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
