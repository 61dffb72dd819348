"""Holding a merge batcher's batch open until the concurrent cases of a test have handed their calls in.

A test that checks how calls merge must not depend on how fast its threads start: on a loaded
machine a short window can close a batch before the last case arrives.
"""

from __future__ import annotations

import time
from typing import Any


def wait_until_waiting(batcher: Any, n: int, timeout: float = 60.0) -> None:
    """Return once ``n`` calls wait in ``batcher`` (``MergeBatcher.waiting``), or after ``timeout``
    seconds (the test then fails on its counts)."""
    deadline = time.monotonic() + timeout
    while batcher.waiting < n and time.monotonic() < deadline:
        time.sleep(0.01)
