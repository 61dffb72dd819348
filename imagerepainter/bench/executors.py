"""Running a benchmark's cases in this process: :class:`LocalExecutor` (threads, models
interleaved, one :class:`~imagerepainter.bench.engine.Workbench` for all) and what every executor
shares, :func:`prepare_case` (the Ray executor uses it on its driver).

:func:`imagerepainter.bench.evaluate` picks the executor; any callable of the :data:`Executor`
shape runs cases its own way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import ModelLoadError
from ..images import load_image
from .breaker import BREAKER_THRESHOLD, CircuitBreaker
from .describer import Describer, Describers
from .engine import CaseJob, CaseOutcome, Workbench, WorkerSpec, failed_case
from .lookahead import DEFAULT_AHEAD, DescribeAhead
from .scheduler import schedule

__all__ = ["Executor", "LocalExecutor", "describe_ahead", "prepare_case"]

Executor = Callable[[Sequence[CaseJob], WorkerSpec, Describers], Iterator[CaseOutcome]]
"""Runs jobs and yields their outcomes in any order (in the calling thread). An executor that takes a
``budget`` keyword (a :class:`~imagerepainter.bench.budget.Budget`) can run a budgeted evaluation: it
passes it to :func:`~imagerepainter.bench.scheduler.schedule`."""


def prepare_case(job: CaseJob, describer: Describer | Describers) -> tuple[Any, Any] | CaseOutcome:
    """Read the job's reference and get its shared description by the job's describer, or the
    failed outcome saying why."""
    ref = job.reference
    if ref.problem:
        return CaseOutcome(failed_case(job, ref.problem), model_failure=False)
    try:
        image = load_image(ref.path)
        return image, Describers.of(describer).get(ref.sha256, image, job.describer)
    except Exception as exc:  # the reference or the MLLM, not the model: its breaker does not count it
        return CaseOutcome(failed_case(job, exc), model_failure=False)


def describe_ahead(jobs: Sequence[CaseJob], describer: Describer | Describers, budget: Any = None) -> DescribeAhead:
    """The executor's :class:`~imagerepainter.bench.lookahead.DescribeAhead` for ``jobs``: the next
    references described while cases render; none ahead under a ``budget`` (it pays only for
    what started cases need)."""
    return DescribeAhead(jobs, Describers.of(describer), ahead=0 if budget is not None else DEFAULT_AHEAD)


class LocalExecutor:
    """Runs cases on threads of this process: ``max_concurrency`` cases at once, models interleaved
    (:func:`~imagerepainter.bench.scheduler.schedule`), one
    :class:`~imagerepainter.bench.engine.Workbench` (one loaded backend per model) for all.

    Every model is loaded before the first case starts; a model that fails to load fails its
    first case with the load error and its breaker skips the rest, as under Ray."""

    def __init__(self, *, max_concurrency: int = 4, breaker_threshold: int = BREAKER_THRESHOLD) -> None:
        self.max_concurrency = max_concurrency
        self.breaker_threshold = breaker_threshold

    def __call__(
        self, jobs: Sequence[CaseJob], worker: WorkerSpec, describer: Describers, budget: Any = None
    ) -> Iterator[CaseOutcome]:
        bench = Workbench(worker)
        for model in dict.fromkeys(j.model for j in jobs):  # load every model first, not in a case's time
            with contextlib.suppress(ModelLoadError):  # kept by the workbench: the model's cases fail with it
                bench.engine(model)

        ahead = describe_ahead(jobs, describer, budget)

        def task(job: CaseJob) -> CaseOutcome:
            ahead.started(job)
            prepared = prepare_case(job, describer)
            if isinstance(prepared, CaseOutcome):
                return prepared
            return bench.run_case(job, *prepared)

        breaker = CircuitBreaker(self.breaker_threshold)
        try:
            yield from schedule(task, jobs, max_concurrency=self.max_concurrency, breaker=breaker, budget=budget)
        finally:
            ahead.close()
            bench.close()
