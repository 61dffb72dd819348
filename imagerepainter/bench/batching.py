"""Batching across cases: one pipeline call for several concurrent cases' renders, one scorer call for their metrics.

A GPU renders a batch of prompts in one diffusers call much faster per image than one at a
time, but each case of an evaluation asks for its own few images (one, in ``single`` mode).
:class:`RenderBatcher` sits between a model's cases and its backend: the requests that
concurrent cases hand in while the device is busy, or within a short ``window`` of each
other, are merged into one :meth:`~imagerepainter.backends.base.TextToImage.generate` call of
up to the backend's ``T2ICapabilities.max_batch_size`` images (diffusers: its ``batch_size``
option; the OpenAI images API: ``n`` for one prompt where the model allows it, concurrent
calls otherwise), and each case gets its own images back.

Every request keeps its own seed, and backends draw each image from a generator seeded with
it (diffusers: one ``torch.Generator`` per image), so an image does not depend on the batch it
landed in: the sandbox renders identical pixels, a diffusers pipeline equal ones up to the
float rounding of batched kernels (see ``docs/performance.md`` for the measured difference).

At most ``slots`` calls run at once (1 protects a GPU). A batch waits for more requests only
while the device is free, nor once every case of the model in flight
(:meth:`RenderBatcher.case`) has handed its requests in, and no request waits for companions
longer than ``window`` seconds after it was handed in (like a serving batcher's queue delay):
a request handed in while the device was busy has been waiting during the call, so a device
that frees with requests waiting does not idle a whole window before the next call. When a merged
call fails, every case in it gets the error (each its own copy).

:class:`ScoreBatcher` does the same for the metrics: the final scoring of concurrent cases'
best images is merged into one ``score_groups`` call per metric (CLIP and DINOv2 embed all of
them in one forward pass). Both are a :class:`MergeBatcher`, the generic merge window.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..backends.base import (
    GeneratedImage,
    GenerationRequest,
    check_generation_settings,
    check_scorer_reference,
    score_groups,
)
from ..errors import ConfigurationError, GenerationError

__all__ = ["DEFAULT_WINDOW", "CompositeScoreBatcher", "MergeBatcher", "RenderBatcher", "ScoreBatcher"]

DEFAULT_WINDOW = 0.01
"""Most seconds a request waits, from when it was handed in, for more cases' requests to fill its batch."""

_IDLE_SECONDS = 5.0
"""Seconds a worker thread waits for work before it ends (a batcher nobody closes leaves no thread behind)."""


@dataclass
class _Ticket:
    """One call of one case, waiting for its results."""

    items: list[Any]
    size: int
    arrived: float = field(default_factory=time.monotonic)
    """When the case handed it in: the merge window runs from here."""
    done: threading.Event = field(default_factory=threading.Event)
    results: list[Any] = field(default_factory=list)
    error: BaseException | None = None


class MergeBatcher:
    """Merges the calls concurrent cases make into fewer, larger calls of one backend.

    The generic part of :class:`RenderBatcher` and :class:`ScoreBatcher`: a case hands in a
    list of items (:meth:`submit`) and waits; a worker thread takes the oldest calls that fit
    ``max_batch_size`` (counted by :meth:`_size`) once the batch is full, every case in flight
    (:meth:`case`) is waiting, or the oldest has waited ``window`` seconds, makes one :meth:`_call` for all of
    their items, and hands each case its own slice of the results. A failed call fails every
    case in it, each with its own copy of the error. Subclasses define :meth:`_call` and
    :meth:`_closed_error` (and :meth:`_size` when an item is more than one unit of work).

    Args:
        name: Named in errors and thread names.
        slots: Calls that may run at once (1 protects a GPU).
        window: Most seconds a request waits for others to fill its batch, from when it was
            handed in (:data:`DEFAULT_WINDOW`).
        max_batch_size: Most units of work per call.
    """

    _thread_prefix = "batch"

    def __init__(self, name: str, *, slots: int = 1, window: float = DEFAULT_WINDOW, max_batch_size: int = 1) -> None:
        self.name = name
        self.max_batch_size = max(1, int(max_batch_size))
        self.window = max(0.0, window)
        self.slots = max(1, slots)
        self.calls = 0
        """Backend calls made."""
        self._pending: deque[_Ticket] = deque()
        self._cond = threading.Condition()
        self._cases = 0
        self._workers: list[threading.Thread] = []
        self._closed = False

    # ------------------------------------------------------------------ what subclasses define

    def _call(self, items: list[Any]) -> list[Any]:
        """One backend call for ``items`` (of several cases); one result per item, in order."""
        raise NotImplementedError

    def _closed_error(self) -> BaseException:
        raise NotImplementedError

    def _size(self, item: Any) -> int:
        """Units of work of one item, counted against ``max_batch_size``."""
        return 1

    @property
    def waiting(self) -> int:
        """Calls handed in and not yet taken into a batch."""
        with self._cond:
            return len(self._pending)

    # ------------------------------------------------------------------ the cases

    def submit(self, items: Sequence[Any]) -> list[Any]:
        """Run ``items`` in one of the merged calls; returns their results, in order."""
        if not items:
            return []
        ticket = _Ticket(list(items), sum(self._size(item) for item in items))
        with self._cond:
            if self._closed:
                raise self._closed_error()
            self._pending.append(ticket)
            self._start_workers()
            self._cond.notify_all()
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        return ticket.results

    @contextmanager
    def case(self) -> Iterator[None]:
        """Count a case as in flight while the block runs: a batch stops waiting
        once every case in flight has handed its call in (no one else can come)."""
        with self._cond:
            self._cases += 1
        try:
            yield
        finally:
            with self._cond:
                self._cases -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the worker threads once the calls handed in are done."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ the worker threads

    def _start_workers(self) -> None:
        self._workers = [thread for thread in self._workers if thread.is_alive()]
        while len(self._workers) < self.slots:
            thread = threading.Thread(target=self._work, name=f"{self._thread_prefix}-{self.name}", daemon=True)
            self._workers.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    if not self._cond.wait(_IDLE_SECONDS):  # idle: end; the next call starts a new one
                        self._workers.remove(threading.current_thread())
                        return
                if not self._pending:
                    return
                self._fill()
                if not self._pending:  # another worker took them while this one waited
                    continue
                batch = self._take()
            self._run(batch)

    def _fill(self) -> None:
        """Wait (holding the condition) until a batch is full, every case in flight is waiting,
        or the oldest request has waited its window."""
        deadline = self._pending[0].arrived + self.window
        while not self._closed:
            waiting = sum(t.size for t in self._pending)
            if waiting >= self.max_batch_size or len(self._pending) >= self._cases:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _take(self) -> list[_Ticket]:
        """The oldest tickets that fit one call (at least one)."""
        batch = [self._pending.popleft()]
        size = batch[0].size
        while self._pending and size + self._pending[0].size <= self.max_batch_size:
            size += self._pending[0].size
            batch.append(self._pending.popleft())
        return batch

    def _run(self, batch: list[_Ticket]) -> None:
        items = [item for ticket in batch for item in ticket.items]
        try:
            results = list(self._call(items))
        except BaseException as exc:
            for ticket in batch:
                ticket.error = _own_copy(exc) if len(batch) > 1 else exc
                ticket.done.set()
            return
        finally:
            with self._cond:
                self.calls += 1
        start = 0
        for ticket in batch:
            ticket.results = results[start : start + len(ticket.items)]
            start += len(ticket.items)
            ticket.done.set()


class RenderBatcher(MergeBatcher):
    """A text-to-image backend that merges concurrent ``generate`` calls into batched ones.

    Args:
        t2i: The model's backend (resolved).
        slots: Pipeline calls that may run at once.
        window: Most seconds a request waits for others to fill its batch (:data:`DEFAULT_WINDOW`).
        max_batch_size: Most images per call; default the backend's ``capabilities.max_batch_size``.

    Example:
        >>> from imagerepainter.sandbox import SandboxT2I
        >>> batcher = RenderBatcher(SandboxT2I())
        >>> images = batcher.generate([GenerationRequest(prompt="a red cat", seed=1, width=32, height=32)])
        >>> len(images), images[0].image.size
        (1, (32, 32))
        >>> batcher.calls, batcher.images
        (1, 1)
        >>> batcher.close()
    """

    _thread_prefix = "render"

    def __init__(
        self, t2i: Any, *, slots: int = 1, window: float = DEFAULT_WINDOW, max_batch_size: int | None = None
    ) -> None:
        size = max_batch_size or getattr(t2i.capabilities, "max_batch_size", 1) or 1
        super().__init__(t2i.name, slots=slots, window=window, max_batch_size=size)
        self._t2i = t2i
        self.capabilities = t2i.capabilities
        self.images = 0
        """Images rendered."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render ``requests`` (in one of the merged calls); ``len(result) == len(requests)``."""
        return self.submit(requests)

    def check_settings(self, settings: Any) -> None:
        check_generation_settings(self._t2i, settings)

    def describe(self) -> dict[str, Any]:
        describe = getattr(self._t2i, "describe", None)
        return dict(describe()) if callable(describe) else {}

    def _closed_error(self) -> BaseException:
        return GenerationError(f"{self.name}: the renderer was closed.", backend=self.name)

    def _call(self, items: list[Any]) -> list[Any]:
        images = list(self._t2i.generate(items))
        if len(images) != len(items):
            raise GenerationError(
                f"{self.name} returned {len(images)} images for {len(items)} requests.", backend=self.name
            )
        with self._cond:
            self.images += len(items)
        return images


class ScoreBatcher(MergeBatcher):
    """A scorer whose concurrent cases' ``score`` calls are merged into one ``score_groups`` call.

    Each case hands in its own ``(prepared reference, candidates)`` group; a merged call scores
    up to ``max_batch_size`` candidates of several cases at once through
    :func:`~imagerepainter.backends.base.score_groups` (CLIP and DINOv2: one embedding pass for
    all of them), and each case gets its own scores, equal to what its own ``score`` call would
    have given. A weighted scorer's children are scored per group too
    (:meth:`score_parts`), so a metric keeps its parts.

    Args:
        scorer: The scorer (resolved); :meth:`prepare` is its own, not merged (once per reference).
        slots: Scorer calls that may run at once.
        window: Most seconds a request waits for others to fill its batch (:data:`DEFAULT_WINDOW`).
        max_batch_size: Most candidates per call; default 64.

    Example:
        >>> from PIL import Image
        >>> from imagerepainter.scorers import PSNRScorer
        >>> batcher = ScoreBatcher(PSNRScorer(max_db=40.0))
        >>> gray = Image.new("RGB", (8, 8), "gray")
        >>> batcher.score(batcher.prepare(gray), [gray]), batcher.calls
        ([40.0], 1)
        >>> batcher.close()
    """

    _thread_prefix = "score"

    def __init__(
        self, scorer: Any, *, slots: int = 1, window: float = DEFAULT_WINDOW, max_batch_size: int = 64
    ) -> None:
        super().__init__(scorer.name, slots=slots, window=window, max_batch_size=max_batch_size)
        self.scorer = scorer
        self.higher_is_better = scorer.higher_is_better
        self.bounds = scorer.bounds
        self._composite = callable(getattr(scorer, "score_components_groups", None))

    @classmethod
    def wrap(cls, scorer: Any, **options: Any) -> ScoreBatcher:
        """A batcher that stands in for ``scorer`` as the loop's scorer: a weighted scorer's
        gets ``score_components`` and ``combine`` too (the loop records the parts)."""
        return (CompositeScoreBatcher if hasattr(scorer, "component_names") else cls)(scorer, **options)

    @property
    def spec(self) -> str:
        return str(getattr(self.scorer, "spec", self.name))

    def describe(self) -> dict[str, Any]:
        describe = getattr(self.scorer, "describe", None)
        return dict(describe()) if callable(describe) else {"name": self.name}

    def check_reference(self, reference: Image.Image) -> None:
        check_scorer_reference(self.scorer, reference)

    def load(self) -> ScoreBatcher:
        load = getattr(self.scorer, "load", None)
        if callable(load):
            load()
        return self

    def prepare(self, reference: Image.Image) -> Any:
        """The scorer's own ``prepare`` (per reference, never merged)."""
        return self.scorer.prepare(reference)

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """Score ``candidates`` against ``prepared`` in one of the merged calls."""
        return self.score_parts(prepared, candidates)[""]

    def score_parts(self, prepared: Any, candidates: Sequence[Image.Image]) -> dict[str, list[float]]:
        """The scores (part ``""``) and, for a weighted scorer, each child's (keyed by its
        ``component_names``), from one of the merged calls."""
        if not candidates:
            return {"": []}
        return dict(self.submit([(prepared, list(candidates))])[0])

    def _size(self, item: Any) -> int:
        return max(1, len(item[1]))

    def _closed_error(self) -> BaseException:
        return ConfigurationError(f"{self.name}: the scorer's batcher was closed; score with a new one.")

    def _call(self, items: list[Any]) -> list[Any]:
        if self._composite:
            return [{"": self.scorer.combine(parts), **parts} for parts in self.scorer.score_components_groups(items)]
        return [{"": values} for values in score_groups(self.scorer, items)]


class CompositeScoreBatcher(ScoreBatcher):
    """A :class:`ScoreBatcher` of a weighted scorer, with its children's scores as the loop reads them."""

    def __init__(self, scorer: Any, **options: Any) -> None:
        super().__init__(scorer, **options)
        self.component_names = scorer.component_names
        self.scorers = scorer.scorers

    def score_components(self, prepared: Any, candidates: Sequence[Image.Image]) -> dict[str, list[float]]:
        """Each child's scores, keyed by ``component_names``, from one of the merged calls."""
        parts = self.score_parts(prepared, candidates)
        return {key: parts.get(key, []) for key in self.component_names}

    def combine(self, components: Any) -> list[float]:
        return list(self.scorer.combine(components))


def _own_copy(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for one case: the loop records where and with what a case failed on
    its error (``BackendError.at``, ``partial_result``), so cases must not share one."""
    try:
        return copy.copy(exc)
    except Exception:
        return exc
