"""A training loader whose saved position is the last batch training *consumed*.

Lightning prefetches the next batch before running the current one, so a checkpoint written
at the end of step k finds the loader already past batch k + 1; resuming from that position
would skip batches. This loader records its state before yielding each batch, and
:meth:`mark_consumed` (called by ``callbacks.exact_resume.ExactResume`` at each batch start)
says which of those states a checkpoint should hold.
"""

from __future__ import annotations

from typing import Any

from torchdata.stateful_dataloader import StatefulDataLoader


class ResumableDataLoader(StatefulDataLoader):
    """``StatefulDataLoader`` reporting the state after the last consumed batch."""

    _consumed: int | None = None

    def __iter__(self):
        self._snapshots: dict[int, dict[str, Any]] = {}
        return _Recorder(super().__iter__(), self._snapshots)

    def mark_consumed(self, batches: int) -> None:
        """``batches`` batches of the current epoch have been (or are being) trained on."""
        self._consumed = batches
        for old in [k for k in getattr(self, "_snapshots", {}) if k < batches]:
            del self._snapshots[old]

    def state_dict(self) -> dict[str, Any]:
        snapshot = getattr(self, "_snapshots", {}).get(self._consumed)
        return snapshot if snapshot is not None else super().state_dict()


class _Recorder:
    """Iterator wrapper: snapshot the loader state (keyed by batches yielded) before each batch."""

    def __init__(self, iterator: Any, snapshots: dict[int, dict[str, Any]]):
        self.iterator, self.snapshots = iterator, snapshots

    def __iter__(self) -> _Recorder:
        return self

    def __next__(self) -> Any:
        self.snapshots[self.iterator._num_yielded] = self.iterator.state_dict()
        return next(self.iterator)
