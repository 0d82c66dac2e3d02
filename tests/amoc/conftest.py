"""AMoC tests run tiny models: one intra-op thread is faster than two (and far faster when the
CPU is shared: two spinning threads per tiny op made the cache tests 80x slower)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
