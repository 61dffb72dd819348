"""Which case runs next: every model kept busy, no model waiting behind another.

An evaluation's cases form one *lane* per model (the model's cases in reference order, modes
of a reference together, so every model asks for the same references at about the same time
and each shared description is computed once; the executors describe the next references ahead,
:mod:`~imagerepainter.bench.lookahead`). ``max_concurrency``
threads take cases; a free thread takes the next case of the model with the **fewest cases in
flight** (ties: the model served least recently). So with ``M`` models and at least ``2 M``
threads, each model always has two or more cases running: while one case of a model renders,
another is at its MLLM calls and is ready to render next, and each model's render slot stays
full whatever the other models do. A slow model holds at most its share of the threads, never
the others' cases; once the others are done, it gets every thread.

Each finished case goes to the :class:`~imagerepainter.bench.breaker.CircuitBreaker`. While a
model's breaker is half-open (its last finished case failed), its lane runs one case at a time
(a probe) and the threads it leaves go to the other models; when a model's breaker opens, its
cases not yet started are recorded at once as ``skipped`` with the reason, and its lane is
closed.

With a ``budget`` (see :class:`~imagerepainter.bench.budget.Budget`), each finished case's cost
is added to it before its thread takes another case; once the budget is reached no case
starts any more: the cases in flight finish and are yielded, the others are not (the next
evaluation computes them).

The threads are daemons: when the caller stops iterating (Ctrl-C, an error), no new case
starts and the process can exit at once; a case in flight is not recorded, and the next run
computes it.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .breaker import CircuitBreaker
from .engine import CaseJob, CaseOutcome, failed_case

__all__ = ["Lanes", "schedule"]


class Lanes:
    """The cases still to start, one queue per model; picks the next case fairly (thread-safe).

    Args:
        jobs: The cases, each with a ``model``.
        probing: Says whether a model is to run one case at a time for now (a half-open
            breaker's probe: :meth:`~imagerepainter.bench.breaker.CircuitBreaker.probing`).

    Example:
        >>> from types import SimpleNamespace as Job
        >>> lanes = Lanes([Job(model="a", n=1), Job(model="a", n=2), Job(model="b", n=3)])
        >>> first, second = lanes.take(), lanes.take()  # one of each model before a's second case
        >>> sorted(j.model for j in (first, second))
        ['a', 'b']
        >>> lanes.done(first); lanes.take().n, lanes.take()
        (2, None)
    """

    def __init__(self, jobs: Sequence[Any], *, probing: Callable[[str], bool] | None = None) -> None:
        self._lanes: dict[str, deque[Any]] = {}
        for job in jobs:
            self._lanes.setdefault(job.model, deque()).append(job)
        self._running = dict.fromkeys(self._lanes, 0)
        self._served = dict.fromkeys(self._lanes, 0)
        self._tick = itertools.count(1)
        self._probing = probing or (lambda model: False)
        self._changed = threading.Condition()
        self._stopped = False

    def take(self) -> Any | None:
        """The next case to start (``None`` when none is left): the head of the lane whose model
        has the fewest cases running, the least recently served first. A probing model with a
        case running is passed over; when only such models have cases left, this waits for one
        of their cases to finish."""
        with self._changed:
            while True:
                ready = [model for model, lane in self._lanes.items() if lane]
                if self._stopped or not ready:
                    return None
                free = [m for m in ready if not (self._running[m] and self._probing(m))]
                if free:
                    break
                self._changed.wait()
            model = min(free, key=lambda m: (self._running[m], self._served[m]))
            self._running[model] += 1
            self._served[model] = next(self._tick)
            return self._lanes[model].popleft()

    def done(self, job: Any) -> None:
        """Say that ``job`` (from :meth:`take`) finished."""
        with self._changed:
            self._running[job.model] -= 1
            self._changed.notify_all()

    def close_all(self) -> int:
        """Remove every case not yet started; return how many there were."""
        with self._changed:
            left = sum(len(lane) for lane in self._lanes.values())
            for lane in self._lanes.values():
                lane.clear()
            self._changed.notify_all()
            return left

    def close(self, model: str) -> list[Any]:
        """Remove and return the cases of ``model`` not yet started."""
        with self._changed:
            lane = self._lanes.get(model)
            left = list(lane or ())
            if lane is not None:
                lane.clear()
            self._changed.notify_all()
            return left

    def stop(self) -> None:
        """Start no more cases: every :meth:`take`, waiting or later, returns ``None``."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def schedule(
    task: Callable[[CaseJob], CaseOutcome],
    jobs: Sequence[CaseJob],
    *,
    max_concurrency: int,
    breaker: CircuitBreaker | None = None,
    budget: Any = None,
) -> Iterator[CaseOutcome]:
    """Run ``task`` on each job on ``max_concurrency`` threads, models interleaved (see the module
    docstring); yield every job's outcome as it finishes, skipped ones included.

    ``task`` returns a failed outcome for a failed case; an exception it raises is a bug, and is
    raised here. ``budget``: an object with ``add(case)`` and ``reached``; once reached, no case
    starts (the ones not started are not yielded).
    """
    breaker = breaker or CircuitBreaker()
    lanes = Lanes(jobs, probing=breaker.probing)
    outcomes: queue.Queue[tuple[bool, Any]] = queue.Queue()
    stop = threading.Event()

    def finish(job: CaseJob, outcome: CaseOutcome) -> None:
        case = outcome.case
        error = case.error if case.status == "failed" else None
        counted = error is None or outcome.model_failure
        failure = {"permanent": outcome.permanent, "outlasted_retries": outcome.outlasted_retries}
        if counted and breaker.record(job.model, error=error, **failure):
            reason = breaker.reason(job.model)
            for left in lanes.close(job.model):
                outcomes.put((True, CaseOutcome(failed_case(left, reason, status="skipped"))))
        if budget is not None:
            budget.add(case)
        lanes.done(job)
        outcomes.put((True, outcome))

    def worker() -> None:
        while not stop.is_set():
            if budget is not None and budget.reached:
                for _ in range(lanes.close_all()):
                    outcomes.put((True, None))  # not started: counted here, never yielded
                return
            job = lanes.take()
            if job is None:
                return
            try:
                finish(job, task(job))
            except BaseException as exc:  # a bug, not a case failure (those are outcomes)
                outcomes.put((False, exc))
                return

    for i in range(min(max_concurrency, len(jobs))):
        threading.Thread(target=worker, name=f"imagerepainter-bench-{i}", daemon=True).start()
    try:
        for _ in range(len(jobs)):
            ok, value = outcomes.get()
            if not ok:
                raise value
            if value is not None:
                yield value
    finally:
        stop.set()
        lanes.stop()
