"""Running a benchmark's cases in this process: :class:`LocalExecutor` (threads, one
:class:`~imagerepainter.bench.engine.Workbench` for all) and the pieces every executor shares,
:func:`prepare_case` and :func:`bounded_map` (the Ray executor uses them on its driver).

:func:`imagerepainter.bench.evaluate` picks the executor; any callable of the :data:`Executor`
shape runs cases its own way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..images import load_image
from .describer import Describer
from .engine import CaseJob, CaseOutcome, Workbench, WorkerSpec, failed_case

__all__ = ["Executor", "LocalExecutor", "bounded_map", "prepare_case"]

Executor = Callable[[Sequence[CaseJob], WorkerSpec, Describer], Iterator[CaseOutcome]]
"""Runs jobs and yields their outcomes in any order (in the calling thread)."""


def prepare_case(job: CaseJob, describer: Describer) -> tuple[Any, Any] | CaseOutcome:
    """Read the job's reference and get its shared description, or the failed outcome saying why."""
    ref = job.reference
    if ref.problem:
        return CaseOutcome(failed_case(job, ref.problem))
    try:
        image = load_image(ref.path)
        return image, describer.get(ref.sha256, image)
    except Exception as exc:
        return CaseOutcome(failed_case(job, exc))


class LocalExecutor:
    """Runs cases on threads of this process: ``max_concurrency`` cases at once, one
    :class:`~imagerepainter.bench.engine.Workbench` (one loaded backend per model) for all."""

    def __init__(self, *, max_concurrency: int = 4) -> None:
        self.max_concurrency = max_concurrency

    def __call__(self, jobs: Sequence[CaseJob], worker: WorkerSpec, describer: Describer) -> Iterator[CaseOutcome]:
        bench = Workbench(worker)
        for model in dict.fromkeys(j.model for j in jobs):  # load every model first: a bad spec fails up front
            bench.engine(model)

        def task(job: CaseJob) -> CaseOutcome:
            prepared = prepare_case(job, describer)
            if isinstance(prepared, CaseOutcome):
                return prepared
            return bench.run_case(job, *prepared)

        try:
            yield from bounded_map(task, jobs, max_concurrency=self.max_concurrency)
        finally:
            bench.close()


def bounded_map(
    task: Callable[[CaseJob], CaseOutcome], jobs: Sequence[CaseJob], *, max_concurrency: int
) -> Iterator[CaseOutcome]:
    """Run ``task`` on each job on ``max_concurrency`` threads; yield outcomes as they finish.

    The threads take jobs one at a time and are daemons: when the caller stops (Ctrl-C, an
    error), no new job starts and the process can exit at once; a case in flight is simply
    not recorded, and the next run computes it.
    """
    outcomes: queue.Queue[tuple[bool, Any]] = queue.Queue()
    remaining = iter(jobs)
    lock, stop = threading.Lock(), threading.Event()

    def worker() -> None:
        while not stop.is_set():
            with lock:
                job = next(remaining, None)
            if job is None:
                return
            try:
                outcomes.put((True, task(job)))
            except BaseException as exc:  # a bug, not a case failure (those are outcomes): the caller raises it
                outcomes.put((False, exc))

    for i in range(min(max_concurrency, len(jobs))):
        threading.Thread(target=worker, name=f"imagerepainter-bench-{i}", daemon=True).start()
    try:
        for _ in range(len(jobs)):
            ok, value = outcomes.get()
            if not ok:
                raise value
            yield value
    finally:
        stop.set()
