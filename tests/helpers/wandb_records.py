"""Read an offline wandb run's transaction log (``run-<id>.wandb``): run record, summary, history.

The log is a LevelDB-style record file: a 7-byte file header (":W&B", magic, version), then
32 KiB blocks of records, each a 7-byte header (crc32 uint32, length uint16, type uint8) and a
payload; a payload that crosses a block is split into first/middle/last pieces. Each payload is a
protobuf ``Record``. (wandb >= 0.2x reads it in its Go core; this is our own minimal reader.)
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: Path) -> Iterator[bytes]:
    """The record payloads of a ``.wandb`` file, pieces joined."""
    data, pos, pending = path.read_bytes(), HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:
            break
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """``{"group", "job_type", "tags", "config": {...}, "summary": {...}, "history_keys": set}``."""
    out: dict[str, Any] = {"config": {}, "summary": {}, "history_keys": set()}
    for data in payloads(next(run_dir.glob("*.wandb"))):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.update(group=record.run.run_group, job_type=record.run.job_type,
                       tags=list(record.run.tags))
            out["config"].update(_items(record.run.config.update))
        elif kind == "config":
            out["config"].update(_items(record.config.update))
        elif kind == "summary":
            out["summary"].update(_items(record.summary.update))
        elif kind == "history":
            out["history_keys"] |= {item.key or "/".join(item.nested_key)
                                    for item in record.history.item}
    return out


def _items(items) -> dict[str, Any]:
    return {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in items}
