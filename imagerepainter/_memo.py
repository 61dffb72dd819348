"""Bounded, thread-safe memos: the package's one way to keep the last few things it computed.

:class:`LRU` keeps the ``size`` most recently used values; :meth:`LRU.future` keeps *work* (a
:class:`~concurrent.futures.Future`) so that a value is computed once by whoever asks first,
while the others wait for it, and computed again when it failed.

Models loaded from disk have their own process-wide cache (:mod:`imagerepainter._loading`); this
module is for small values and in-flight work.

Example:
    >>> memo = LRU[str, int](2)
    >>> memo.put("a", 1), memo.put("b", 2), memo.get("a"), memo.put("c", 3)
    (1, 2, 1, 3)
    >>> memo.get("b") is None, memo.get("a"), len(memo)  # "b" was the least recently used
    (True, 1, 2)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class LRU(Generic[K, V]):
    """A mapping that keeps its ``size`` most recently used entries (a lock guards every access)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"An LRU keeps at least one entry, got size={size}.")
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value kept for ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            return self._hit(key)

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` for ``key``, dropping the least recently used entries beyond ``size``; return it."""
        with self._lock:
            self._keep(key, value)
        return value

    def future(self: LRU[K, Future[T]], key: K, start: Callable[[], Future[T]]) -> tuple[Future[T], bool]:
        """The work kept for ``key`` and whether this call started it.

        ``start`` runs (under the lock, so keep it quick: submit to a pool, or make a bare
        ``Future`` that the caller then resolves because the second item is ``True``) when nothing
        is kept for ``key``, or the kept work failed or was cancelled: a failure is not remembered.
        """
        with self._lock:
            known = self._hit(key)
            if known is not None and not _failed(known):
                return known, False
            work = start()
            self._keep(key, work)
            return work, True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _hit(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def _keep(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def _failed(work: Future[Any]) -> bool:
    return work.done() and (work.cancelled() or work.exception() is not None)
