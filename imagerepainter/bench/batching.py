"""Batched rendering across cases: one pipeline call for the renders of several concurrent cases.

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
while the device is free, and never longer than ``window`` seconds, nor once every case of
the model in flight (:meth:`RenderBatcher.case`) has handed its requests in. When a merged
call fails, every case in it gets the error (each its own copy).
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

from ..backends.base import GeneratedImage, GenerationRequest, check_generation_settings
from ..errors import GenerationError

__all__ = ["DEFAULT_WINDOW", "RenderBatcher"]

DEFAULT_WINDOW = 0.01
"""Seconds a free device waits for more cases' requests before it renders a batch that is not full."""


@dataclass
class _Ticket:
    """One ``generate`` call of one case, waiting for its images."""

    requests: list[GenerationRequest]
    done: threading.Event = field(default_factory=threading.Event)
    images: list[GeneratedImage] = field(default_factory=list)
    error: BaseException | None = None


class RenderBatcher:
    """A text-to-image backend that merges concurrent ``generate`` calls into batched ones.

    Args:
        t2i: The model's backend (resolved).
        slots: Pipeline calls that may run at once.
        window: Most seconds a free device waits to fill a batch (:data:`DEFAULT_WINDOW`).
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

    def __init__(
        self, t2i: Any, *, slots: int = 1, window: float = DEFAULT_WINDOW, max_batch_size: int | None = None
    ) -> None:
        self._t2i = t2i
        self.name = t2i.name
        self.capabilities = t2i.capabilities
        self.max_batch_size = max(1, int(max_batch_size or getattr(t2i.capabilities, "max_batch_size", 1) or 1))
        self.window = max(0.0, window)
        self.slots = max(1, slots)
        self.calls = 0
        """Backend calls made."""
        self.images = 0
        """Images rendered."""
        self._pending: deque[_Ticket] = deque()
        self._cond = threading.Condition()
        self._cases = 0
        self._workers: list[threading.Thread] = []
        self._closed = False

    # ------------------------------------------------------------------ the backend protocol

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render ``requests`` (in one of the merged calls); ``len(result) == len(requests)``."""
        if not requests:
            return []
        ticket = _Ticket(list(requests))
        with self._cond:
            if self._closed:
                raise GenerationError(f"{self.name}: the renderer was closed.", backend=self.name)
            self._pending.append(ticket)
            self._start_workers()
            self._cond.notify_all()
        ticket.done.wait()
        if ticket.error is not None:
            raise ticket.error
        return ticket.images

    def check_settings(self, settings: Any) -> None:
        check_generation_settings(self._t2i, settings)

    def describe(self) -> dict[str, Any]:
        describe = getattr(self._t2i, "describe", None)
        return dict(describe()) if callable(describe) else {}

    @contextmanager
    def case(self) -> Iterator[None]:
        """Count a case of this model as in flight while the block runs: a batch stops waiting
        once every case in flight has handed its requests in (no one else can come)."""
        with self._cond:
            self._cases += 1
        try:
            yield
        finally:
            with self._cond:
                self._cases -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the render threads once the requests handed in are rendered."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ the render threads

    def _start_workers(self) -> None:
        while len(self._workers) < self.slots:
            thread = threading.Thread(target=self._work, name=f"render-{self.name}", daemon=True)
            self._workers.append(thread)
            thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                self._fill()
                if not self._pending:  # another render thread took them while this one waited
                    continue
                batch = self._take()
            self._render(batch)

    def _fill(self) -> None:
        """Wait (holding the condition) until a batch is full, every case in flight is waiting,
        or the window is over."""
        deadline = time.monotonic() + self.window
        while not self._closed:
            waiting = sum(len(t.requests) for t in self._pending)
            if waiting >= self.max_batch_size or len(self._pending) >= self._cases:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _take(self) -> list[_Ticket]:
        """The oldest tickets that fit one call (at least one)."""
        batch = [self._pending.popleft()]
        size = len(batch[0].requests)
        while self._pending and size + len(self._pending[0].requests) <= self.max_batch_size:
            size += len(self._pending[0].requests)
            batch.append(self._pending.popleft())
        return batch

    def _render(self, batch: list[_Ticket]) -> None:
        requests = [r for ticket in batch for r in ticket.requests]
        try:
            images = list(self._t2i.generate(requests))
            if len(images) != len(requests):
                raise GenerationError(
                    f"{self.name} returned {len(images)} images for {len(requests)} requests.", backend=self.name
                )
        except BaseException as exc:
            for ticket in batch:
                ticket.error = _own_copy(exc) if len(batch) > 1 else exc
                ticket.done.set()
            return
        finally:
            with self._cond:
                self.calls += 1
        with self._cond:
            self.images += len(requests)
        start = 0
        for ticket in batch:
            ticket.images = images[start : start + len(ticket.requests)]
            start += len(ticket.requests)
            ticket.done.set()


def _own_copy(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for one case: the loop records where and with what a case failed on
    its error (``BackendError.at``, ``partial_result``), so cases must not share one."""
    try:
        return copy.copy(exc)
    except Exception:
        return exc
