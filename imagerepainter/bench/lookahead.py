"""Describing ahead: the next references are described while the current cases render.

Every case of a reference starts from its shared description (:class:`~imagerepainter.bench.describer.Describer`),
and the scheduler keeps the models in step, so all of them reach a new reference at about the
same time. Described only when the first of those cases asks, the reference would hold every
model's render slot idle for the length of one description. :class:`DescribeAhead` keeps the
descriptions of the next few references in progress on a background thread instead, so a case
finds its description ready (or in flight, and waits only for the rest of it).

Nothing is paid twice: the describer computes each description once, whoever asks first, and
stores it; a description that failed fails the cases of its reference as before. A budgeted
evaluation does not describe ahead (``ahead=0``): it pays only for the references its started
cases need.

Example:
    >>> from types import SimpleNamespace as Ref
    >>> jobs = [Ref(reference=Ref(sha256=s, path=None, problem=None), describer="default") for s in "aabbc"]
    >>> ahead = DescribeAhead(jobs, describers=None, ahead=1)
    >>> [(ref.sha256, describer) for ref, describer in ahead.advance(jobs[0])]  # a's first case: b is due
    [('b', 'default')]
    >>> ahead.advance(jobs[1]), [ref.sha256 for ref, _ in ahead.advance(jobs[2])]  # b's first case: c is due
    ([], ['c'])
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Sequence
from typing import Any

from ..images import load_image

__all__ = ["DEFAULT_AHEAD", "DescribeAhead"]

DEFAULT_AHEAD = 2
"""References described ahead of the furthest one a case has started."""


class DescribeAhead:
    """Describes the references after the ones whose cases have started, in the cases' order.

    Args:
        jobs: The evaluation's cases in the order they start (a ``reference`` and a ``describer`` each).
        describers: The evaluation's :class:`~imagerepainter.bench.describer.Describers`.
        ahead: References to keep described ahead of the furthest started one (0: none).
    """

    def __init__(self, jobs: Sequence[Any], describers: Any, *, ahead: int = DEFAULT_AHEAD) -> None:
        self.describers, self.ahead = describers, max(0, ahead)
        order: dict[str, list[tuple[Any, str]]] = {}
        for job in jobs:
            ref = job.reference
            pairs = order.setdefault(ref.sha256, [])
            if ref.problem is None and all(d != job.describer for _, d in pairs):
                pairs.append((ref, job.describer))
        self._order = list(order.values())
        self._position = {sha: i for i, sha in enumerate(order)}
        self._next = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Any, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def advance(self, job: Any) -> list[tuple[Any, str]]:
        """Say that ``job`` started; return the ``(reference, describer)`` pairs now due to be
        described ahead (those up to ``ahead`` references after its own not yet due)."""
        position = self._position.get(job.reference.sha256, -1)
        due: list[tuple[Any, str]] = []
        with self._lock:
            self._next = max(self._next, position + 1)  # its own reference: its case asks for it now
            while self.ahead and self._next <= position + self.ahead and self._next < len(self._order):
                due += self._order[self._next]
                self._next += 1
        return due

    def started(self, job: Any) -> None:
        """Say that ``job`` started: describe what is now due (:meth:`advance`) on the background thread."""
        for pair in self.advance(job):
            self._queue.put(pair)
            self._start()

    def close(self) -> None:
        """Stop describing ahead (a description in progress finishes on its daemon thread)."""
        self._queue.put(None)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="imagerepainter-describe-ahead", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            ref, describer = item
            # a failure is kept by the describer: the reference's cases report it when they ask
            with contextlib.suppress(Exception):
                self.describers.get(ref.sha256, load_image(ref.path), describer)
