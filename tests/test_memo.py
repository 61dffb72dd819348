"""The package's one bounded memo (``imagerepainter._memo.LRU``): least recently used entries go
first, work is started once by whoever asks first, and failed work is not remembered."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from imagerepainter._memo import LRU


def test_the_least_recently_used_entry_goes_first() -> None:
    memo = LRU[str, int](2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "a" is now the most recently used
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("b"), memo.get("c"), len(memo)) == (1, None, 3, 2)
    with pytest.raises(ValueError, match="at least one"):
        LRU[str, int](0)


def test_work_is_started_once_however_many_ask_at_once() -> None:
    memo = LRU[str, Future[int]](4)
    started = []
    gate = threading.Barrier(8)

    def ask(_: int) -> int:
        gate.wait()
        work, mine = memo.future("k", lambda: _started(started))
        if mine:
            work.set_result(42)
        return work.result(timeout=5)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(ask, range(8))) == [42] * 8
    assert len(started) == 1


def _started(log: list[int]) -> Future[int]:
    log.append(1)
    return Future()


def test_failed_or_cancelled_work_is_started_again() -> None:
    memo = LRU[str, Future[int]](4)
    failed, mine = memo.future("k", Future)
    assert mine
    failed.set_exception(RuntimeError("out of memory"))
    again, mine = memo.future("k", Future)
    assert mine and again is not failed
    again.cancel()
    third, mine = memo.future("k", Future)
    assert mine and third is not again
    third.set_result(1)
    assert memo.future("k", Future) == (third, False)
