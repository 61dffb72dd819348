"""Stand-ins with known costs, to measure and test how an evaluation schedules its work.

* :class:`StandInT2I` — a text-to-image backend whose every call costs ``a + b * batch``
  seconds (a fixed cost per pipeline call plus a cost per image, the shape of a GPU pipeline)
  and renders sandbox images; it records when it was busy and the size of each batch, so the
  busy share of the wall and the images per second can be read back. With ``fail`` set, every
  call fails instead (after the same time), like a dead API; with ``fail_after`` too, only once
  that many calls have succeeded (a model that worked, then died).
* :class:`DelayedMLLM` — the sandbox MLLM answering after ``delay`` seconds.

Both are plain objects that pickle (they travel to Ray actors; what an actor records stays in
the actor's copy).

Example:
    >>> from imagerepainter.backends.base import GenerationRequest
    >>> t2i = StandInT2I(a=0.0, b=0.0, max_batch_size=4)
    >>> images = t2i.generate([GenerationRequest(prompt="a red circle", seed=s, width=16, height=16) for s in (1, 2)])
    >>> len(images), t2i.batch_sizes, t2i.best_images_per_second() == float("inf")
    (2, [2], True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ..backends.base import GeneratedImage, GenerationRequest, MLLMMessage, MLLMReply, SchemaT, T2ICapabilities
from ..errors import GenerationError
from ..sandbox import SandboxMLLM, SandboxT2I

__all__ = ["DelayedMLLM", "StandInT2I", "busy_seconds"]


class StandInT2I:
    """A text-to-image backend costing ``a + b * batch`` seconds a call, rendering sandbox images.

    Args:
        a: Seconds every call costs, whatever its size.
        b: Seconds each image of a call adds.
        max_batch_size: Most images per call (its ``T2ICapabilities.max_batch_size``).
        name: The backend's name.
        fail: When set, every call raises :class:`~imagerepainter.errors.GenerationError` with this
            text after costing its time (a dead model).
        status: The HTTP status a failure carries (``status_code``; 500 by default, retryable in
            principle; 401, 403 or 404 say retrying cannot help).
        fail_after: Calls that succeed before the failures begin (with ``fail``).
    """

    def __init__(
        self,
        *,
        a: float = 0.05,
        b: float = 0.01,
        max_batch_size: int = 8,
        name: str = "stand-in",
        fail: str | None = None,
        status: int = 500,
        fail_after: int = 0,
    ) -> None:
        self.a, self.b, self.name, self.fail, self.status, self.fail_after = a, b, name, fail, status, fail_after
        self.capabilities = T2ICapabilities(max_batch_size=max_batch_size, size_multiple=1)
        self._sandbox = SandboxT2I()
        self._lock = threading.Lock()
        self.intervals: list[tuple[float, float]] = []
        """``(start, end)`` of every call, in ``time.perf_counter`` seconds."""
        self.batch_sizes: list[int] = []
        """The number of images of every call."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def cost(self, batch: int) -> float:
        """Seconds a call of ``batch`` images costs."""
        return self.a + self.b * batch

    def best_images_per_second(self) -> float:
        """What the device can do at best: full batches back to back, ``B / (a + b B)``."""
        batch = self.capabilities.max_batch_size
        seconds = self.cost(batch)
        return batch / seconds if seconds > 0 else float("inf")

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render the requests (or fail) in ``a + b * len(requests)`` seconds.

        The images are made *within* the call's cost, as a pipeline's are: the call sleeps
        whatever of its cost the rendering left (a render slower than the cost makes the call
        longer). A failing call costs its time and renders nothing.
        """
        start = time.perf_counter()
        with self._lock:
            self.batch_sizes.append(len(requests))
            failing = self.fail is not None and len(self.batch_sizes) > self.fail_after
        images = [] if failing else self._sandbox.generate(requests)
        time.sleep(max(0.0, start + self.cost(len(requests)) - time.perf_counter()))
        with self._lock:
            self.intervals.append((start, time.perf_counter()))
        if failing:
            error = GenerationError(f"{self.name}: {self.fail}", backend=self.name)
            error.status_code = self.status  # type: ignore[attr-defined]
            raise error
        return images

    @property
    def images(self) -> int:
        """Images rendered (or attempted) so far."""
        return sum(self.batch_sizes)


def busy_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``intervals`` (overlapping calls counted once).

    Example:
        >>> busy_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)])
        4.0
    """
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


class DelayedMLLM(SandboxMLLM):
    """The sandbox MLLM, answering every request after ``delay`` seconds (a hosted model's latency)."""

    def __init__(self, delay: float = 0.05, **options: Any) -> None:
        super().__init__(**options)
        self.delay = delay
        self.name = f"sandbox-delayed-{delay:g}s"

    def structured(self, messages: Sequence[MLLMMessage], schema: type[SchemaT]) -> MLLMReply[SchemaT]:
        time.sleep(self.delay)
        return super().structured(messages, schema)
