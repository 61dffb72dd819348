"""Adapt a plain Python callable into a :class:`~imagerepainter.backends.base.TextToImage` backend.

Handy for wrapping a web API client, a ComfyUI workflow or a test double without
writing a class. The callable receives only the keyword arguments it declares, so a
minimal ``fn(prompt, *, seed)`` works as well as one that also takes ``negative_prompt``,
``height``, ``width``, ``num_inference_steps`` or ``guidance_scale``.

Example:
    >>> from PIL import Image
    >>> from imagerepainter.backends.base import GenerationRequest
    >>> def solid(prompt, *, seed, width=64, height=64):
    ...     return Image.new("RGB", (width, height), (seed % 256, len(prompt), 0))
    >>> t2i = FunctionT2I(solid)
    >>> out = t2i.generate([GenerationRequest(prompt="a cat", seed=7, width=16, height=8)])
    >>> out[0].image.size, out[0].image.getpixel((0, 0)), t2i.name
    ((16, 8), (7, 5, 0), 'function:solid')
    >>> t2i.capabilities.supports_negative_prompt
    False
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from .._secrets import redact
from ..errors import ConfigurationError, GenerationError
from .base import GENERATION_FIELDS, GeneratedImage, GenerationRequest, T2ICapabilities

__all__ = ["FunctionT2I"]

_OPTIONAL_FIELDS = GENERATION_FIELDS


class FunctionT2I:
    """A text-to-image backend that calls ``fn``.

    Args:
        fn: With ``batch=False``: ``fn(prompt, *, seed, **options) -> PIL.Image`` (or a
            :class:`GeneratedImage`), called once per request. ``seed`` and the options
            (``negative_prompt``, ``height``, ``width``, ``num_inference_steps``,
            ``guidance_scale``) are passed only if ``fn`` declares them (or ``**kwargs``),
            and options only when the request sets them. With ``batch=True``:
            ``fn(list_of_requests) -> list`` of images, one per request, in order.
        name: Backend name recorded in results; default ``"function:<fn name>"``.
        batch: Whether ``fn`` takes the whole list of :class:`GenerationRequest` s.
        max_batch_size: Most requests per call when ``batch=True`` (1 otherwise).

    Raises:
        ConfigurationError: ``fn`` is not callable, or ``max_batch_size`` is below 1.

    Any exception from ``fn`` is raised as :class:`~imagerepainter.errors.GenerationError`
    with the original as ``__cause__``.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        batch: bool = False,
        max_batch_size: int = 16,
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"FunctionT2I needs a callable, got {type(fn).__name__}.")
        if max_batch_size < 1:
            raise ConfigurationError(f"max_batch_size must be at least 1, got {max_batch_size!r}.")
        self.fn = fn
        self.batch = batch
        self.name: str = name or f"function:{getattr(fn, '__name__', type(fn).__name__)}"
        self._parameters, self._accepts_any = keyword_parameters(fn)
        self.capabilities = T2ICapabilities(
            max_batch_size=max_batch_size if batch else 1,
            supports_negative_prompt=batch or self._accepts("negative_prompt"),
            supports_seed=batch or self._accepts("seed"),
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of this backend, for run results."""
        return {
            "name": self.name,
            "function": f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', repr(self.fn))}",
            "batch": self.batch,
            "max_batch_size": self.capabilities.max_batch_size,
        }

    def __repr__(self) -> str:
        return f"FunctionT2I({self.name!r}, batch={self.batch})"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render every request, in order.

        Raises:
            GenerationError: ``fn`` raised, or returned the wrong number or type of images.
        """
        requests = list(requests)
        if not requests:
            return []
        if self.batch:
            outputs = []
            size = self.capabilities.max_batch_size
            for start in range(0, len(requests), size):
                chunk = requests[start : start + size]
                produced = list(self._call(chunk) or [])
                if len(produced) != len(chunk):
                    raise GenerationError(
                        f"{self.name} returned {len(produced)} image(s) for {len(chunk)} request(s).",
                        backend=self.name,
                    )
                outputs.extend(produced)
        else:
            outputs = [self._call(request.prompt, **self._kwargs(request)) for request in requests]
        return [self._to_generated(output) for output in outputs]

    def _accepts(self, argument: str) -> bool:
        return self._accepts_any or argument in self._parameters

    def _kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self._accepts("seed"):
            kwargs["seed"] = request.seed
        for field in _OPTIONAL_FIELDS:
            value = getattr(request, field)
            if value is not None and self._accepts(field):
                kwargs[field] = value
        return kwargs

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except Exception as exc:
            message = redact(f"{self.name} failed: {type(exc).__name__}: {exc}")
            raise GenerationError(message, backend=self.name) from exc

    def _to_generated(self, output: Any) -> GeneratedImage:
        if isinstance(output, GeneratedImage):
            return output
        if isinstance(output, Image.Image):
            return GeneratedImage(image=output if output.mode == "RGB" else output.convert("RGB"))
        raise GenerationError(
            f"{self.name} returned {type(output).__name__}; it must return a PIL image or a GeneratedImage.",
            backend=self.name,
        )


def keyword_parameters(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    """Names ``fn`` accepts as keywords, and whether it takes ``**kwargs``."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: pass everything
        return frozenset(), True
    names = frozenset(
        name
        for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return names, accepts_any
