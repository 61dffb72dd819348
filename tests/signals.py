"""Children that a test stops with a signal, whatever the test runner's own signal dispositions.

A shell starts a background job (``pytest ... &`` in a script) with SIGINT ignored, and a child
inherits an ignored signal across ``exec``: Python then installs no Ctrl-C handler, and a SIGINT
the test sends does nothing. A test that sends a signal therefore sets the child's disposition
itself: :func:`spawn` starts every child with SIGINT and SIGTERM at their defaults, so Python
raises ``KeyboardInterrupt`` on SIGINT as in a terminal.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["as_a_background_job", "spawn"]


def _default_signals() -> None:
    """Run in the child between ``fork`` and ``exec``: only async-signal-safe work (two ``sigaction`` calls)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(argv, **kwargs)`` with the child's SIGINT and SIGTERM at their defaults."""
    return subprocess.Popen(argv, preexec_fn=_default_signals, **kwargs)  # two sigaction calls: fork-safe


@contextlib.contextmanager
def as_a_background_job() -> Iterator[None]:
    """Ignore SIGINT in this process for the block, as a non-interactive shell does for ``cmd &``:
    a child started inside it inherits the ignored signal unless it sets its own disposition."""
    assert threading.current_thread() is threading.main_thread(), "signal dispositions are set in the main thread"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
