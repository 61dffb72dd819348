"""Several runs at once, for :meth:`Repainter.batch <imagerepainter.Repainter.batch>` and ``abatch``.

The conventions are LangChain's ``Runnable.batch``: a list of inputs in, a list of outputs in
the same order out, and ``return_exceptions=True`` to get each failure in its place instead of
an error. Without it, a batch with failures still runs every reference to its end, then raises
one :class:`~imagerepainter.errors.BatchError` that names the references that failed and keeps
every finished result in ``error.results``: nothing paid for is thrown away.

Example:
    >>> from PIL import Image
    >>> references = reference_list(["a.png", Image.new("RGB", (4, 3))])
    >>> [describe_reference(r) for r in references]
    ["'a.png'", 'a 4x3 PIL image']
    >>> reference_list("a.png")
    Traceback (most recent call last):
    ...
    imagerepainter.errors.ConfigurationError: batch() takes a list of references, not one str: ...
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from PIL import Image

from ..errors import BatchError, ConfigurationError
from ..images import ImageInput

__all__ = ["describe_reference", "gather_runs", "reference_list", "run_batch", "settle"]

T = TypeVar("T")

_SINGLE = (str, os.PathLike, bytes, bytearray, Image.Image)
"""One reference: iterating it would run each character, byte or pixel row as a reference."""
_SHOWN_FAILURES = 3


def reference_list(references: Any) -> list[ImageInput]:
    """The references of a batch as a list, checked to be a collection of references.

    Raises:
        ConfigurationError: one reference (a path, bytes, a PIL image) or a mapping was given
            instead of a list of references, or something that is not iterable at all.
    """
    if isinstance(references, _SINGLE):
        raise ConfigurationError(
            f"batch() takes a list of references, not one {type(references).__name__}: pass [reference], "
            "or use run(reference) for a single image."
        )
    if isinstance(references, Mapping) or not isinstance(references, Iterable):
        raise ConfigurationError(
            f"batch() takes a list of references (paths, image bytes or PIL images), not {type(references).__name__}."
        )
    return list(references)


def describe_reference(reference: Any) -> str:
    """A reference as an error message names it: the path as given, or what kind of image it is."""
    if isinstance(reference, (str, os.PathLike)):
        text = os.fspath(reference)
        return repr(text if len(text) <= 80 else text[:77] + "...")  # a data URL is not worth quoting whole
    if isinstance(reference, (bytes, bytearray)):
        return f"{len(reference)} bytes of image data"
    if isinstance(reference, Image.Image):
        return f"a {reference.width}x{reference.height} PIL image"
    return f"a {type(reference).__name__}"


async def gather_runs(
    run_one: Callable[[ImageInput], Awaitable[T]], references: list[ImageInput], max_concurrency: int
) -> list[T | Exception]:
    """Run ``run_one`` on every reference, at most ``max_concurrency`` at a time; each outcome in order.

    A run that raises an ``Exception`` does not stop the others: its exception takes its place.
    A ``BaseException`` that is not an ``Exception`` (cancellation, ``KeyboardInterrupt``) is raised.
    """
    if not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency!r}.")
    gate = asyncio.Semaphore(max_concurrency)

    async def one(reference: ImageInput) -> T:
        async with gate:
            return await run_one(reference)

    outcomes = await asyncio.gather(*(one(r) for r in references), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
    return outcomes  # type: ignore[return-value]  # only results and Exceptions are left


def settle(outcomes: list[T | Exception], references: list[ImageInput], *, return_exceptions: bool) -> list[Any]:
    """The batch's answer: every outcome in order with ``return_exceptions``, else the results when
    all succeeded.

    Raises:
        BatchError: some runs failed and ``return_exceptions`` is off; it names them and keeps
            every outcome in ``results``.
    """
    failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
    if return_exceptions or not failed:
        return list(outcomes)
    shown = "; ".join(
        f"reference {i} ({describe_reference(references[i])}): {type(outcomes[i]).__name__}: {outcomes[i]}"
        for i in failed[:_SHOWN_FAILURES]
    )
    more = f"; and {len(failed) - _SHOWN_FAILURES} more" if len(failed) > _SHOWN_FAILURES else ""
    finished = len(outcomes) - len(failed)
    error = BatchError(
        f"{len(failed)} of {len(outcomes)} runs failed: {shown}{more}. The {finished} finished results are kept in "
        "error.results (each failure in its place); pass return_exceptions=True to get them returned instead.",
        results=list(outcomes),
        failed=failed,
    )
    first = outcomes[failed[0]]
    assert isinstance(first, Exception)
    raise error from first


async def run_batch(
    arun: Callable[..., Awaitable[Any]],
    config_for: Callable[..., Any],
    references: Iterable[ImageInput],
    max_concurrency: int,
    return_exceptions: bool,
    overrides: Mapping[str, Any],
) -> list[Any]:
    """``Repainter.abatch``: the settings checked once (``config_for``), then each reference run by
    ``arun`` without a progress display, at most ``max_concurrency`` at a time; outcomes settled in order."""
    refs = reference_list(references)
    config_for(**overrides)  # a bad setting is refused once, before any run

    async def one(reference: ImageInput) -> Any:
        return await arun(reference, progress=False, **overrides)

    outcomes = await gather_runs(one, refs, max_concurrency)
    return settle(outcomes, refs, return_exceptions=return_exceptions)
