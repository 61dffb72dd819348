"""Text-to-image through the OpenAI images API (``client.images.generate``).

:class:`OpenAIImagesT2I` renders :class:`~imagerepainter.backends.base.GenerationRequest` s
with OpenAI's GPT image and DALL·E models, or with any server that implements
``POST /v1/images/generations`` (pass ``base_url``).

Things to know before evaluating a model this way:

* **No seeds.** The API cannot be seeded, so ``capabilities.supports_seed`` is False and
  results are not reproducible: the same prompt gives a different image on every call.
  The loop still records the seed it asked for with each candidate; the service ignores it.
* **No negative prompts**, and ``num_inference_steps`` / ``guidance_scale`` are ignored.
* **Batching.** One API call renders ``n`` images of *one* prompt. Requests in a batch that
  share a prompt and size are sent as one call with ``n`` set (DALL·E 3 only allows
  ``n=1``); different prompts are separate calls, run concurrently.
* **Blocked prompts.** When the provider's safety system refuses a prompt (HTTP 400 with
  code ``content_policy_violation`` or ``moderation_blocked``), the request is *not* an
  error: it comes back as a black :class:`GeneratedImage` with ``blocked=True``, so the
  loop records it, never scores it, and carries on with the other candidates.
* **Retries and timeouts.** Each HTTP request may take ``timeout`` seconds (120 by
  default; ``openai:gpt-image-1?timeout=300`` in a spec). Transient failures (429 honouring
  ``retry-after``, 5xx, timeouts, dropped connections, bodies that are not JSON) are retried
  by one layer: :class:`~imagerepainter.backends.retry.RetryPolicy` (10 attempts within 180 s
  by default) when the client is built here (``max_retries=0``); with a client that retries
  by itself (``max_retries`` > 0, or a ``client`` passed in), the policy leaves to it what it
  retries and handles only the rest, so attempts never multiply.
* **Errors.** Every other failure (network, timeout after the retries, HTTP
  errors, a malformed answer) raises :class:`~imagerepainter.errors.GenerationError`
  whose message never contains the API key. The ``openai`` exception is deliberately *not*
  chained as ``__cause__`` (its message and body may echo the key, and tracebacks print
  causes); the error's message keeps its redacted description and HTTP status.

Example:
    Against an OpenAI-compatible test server on 127.0.0.1:

    >>> from imagerepainter.backends.base import GenerationRequest
    >>> from imagerepainter.testing.openai_server import OpenAICompatibleServer
    >>> with OpenAICompatibleServer() as srv:
    ...     t2i = OpenAIImagesT2I("gpt-image-1", base_url=srv.base_url, api_key="sk-test")
    ...     [out] = t2i.generate([GenerationRequest(prompt="a red cat", seed=1, width=64, height=32)])
    >>> t2i.name, out.image.size, out.blocked
    ('openai-images:gpt-image-1', (64, 32), False)
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from PIL import Image, UnidentifiedImageError

from .._imports import require
from .._secrets import redact, register_secret
from ..errors import ConfigurationError, GenerationError
from .base import GeneratedImage, GenerationRequest, T2ICapabilities
from .retry import DEFAULT_REQUEST_TIMEOUT, RetryPolicy, is_transient, retried_by_http_client, status_code

if TYPE_CHECKING:
    from ..config import GenerationConfig

__all__ = ["BLOCKED_ERROR_CODES", "OpenAIImagesT2I"]

logger = logging.getLogger(__name__)

BLOCKED_ERROR_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
"""``error.code`` values with which the images API refuses a prompt on safety grounds."""

_MAX_N = 10
"""The most images one ``images.generate`` call may return (the API's limit on ``n``)."""

_GPT_IMAGE_PREFIXES = ("gpt-image", "chatgpt-image")
"""GPT image models always answer base64 and reject ``response_format``."""


_OPENAI_SIZES: tuple[tuple[str, frozenset[str]], ...] = (
    ("dall-e-2", frozenset({"256x256", "512x512", "1024x1024"})),
    ("dall-e-3", frozenset({"1024x1024", "1792x1024", "1024x1792"})),
    ("gpt-image-1", frozenset({"1024x1024", "1536x1024", "1024x1536"})),  # also gpt-image-1-mini, gpt-image-1.5
)
"""Sizes OpenAI's own API accepts, by model-name prefix. Other models are not checked."""


def _single_image_model(model: str) -> bool:
    return model.startswith("dall-e-3")


def _openai_sizes(model: str) -> frozenset[str] | None:
    return next((sizes for prefix, sizes in _OPENAI_SIZES if model.startswith(prefix)), None)


class OpenAIImagesT2I:
    """A :class:`~imagerepainter.backends.base.TextToImage` backend on the OpenAI images API.

    Args:
        model: The image model, e.g. ``"gpt-image-1"`` or ``"dall-e-3"``; any name a
            compatible server knows.
        client: A ready ``openai.OpenAI`` client; when given, ``api_key``, ``base_url``,
            ``timeout`` and ``max_retries`` are not used.
        api_key: The API key; defaults to the ``OPENAI_API_KEY`` environment variable.
        base_url: An OpenAI-compatible server, e.g. ``"http://127.0.0.1:8000/v1"``.
        size: Default ``"WIDTHxHEIGHT"`` when a request has no width and height; None lets
            the service choose.
        quality: Passed through as ``quality`` (e.g. ``"low"``, ``"high"``, ``"hd"``).
        timeout: Seconds before one HTTP attempt times out (a transient failure, retried).
        max_retries: Retries the ``openai`` client makes by itself on 429, 5xx, timeouts and
            connection errors. 0 (the default) leaves retrying to ``retry``.
        retry: The retry policy for transient failures (default: :class:`RetryPolicy`'s
            defaults); it never retries what the client already retried.
        max_concurrency: Most API calls in flight at once for a batch of different prompts.

    Raises:
        MissingDependencyError: the ``openai`` package is not installed
            (``pip install "imagerepainter[openai]"``).
        ConfigurationError: no API key was given or found, or an argument is invalid.
    """

    def __init__(
        self,
        model: str = "gpt-image-2",
        *,
        client: Any | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_retries: int = 0,
        max_concurrency: int = 4,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not model:
            raise ConfigurationError("model must be a non-empty image model name, e.g. 'gpt-image-1'.")
        if size is not None and _parse_size(size) is None:
            raise ConfigurationError(f"size must look like '1024x1024' (WIDTHxHEIGHT), got {size!r}.")
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}.")
        openai = require("openai", extra="openai", purpose="the OpenAI images backend")
        if client is None:
            try:
                client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)
            except openai.OpenAIError as exc:
                raise ConfigurationError(
                    "No API key for the OpenAI images backend: pass api_key=... or set OPENAI_API_KEY "
                    "(a local server without authentication accepts any value, e.g. api_key='none')."
                ) from exc
        self.model = model
        self.size = size
        self.quality = quality
        self.max_concurrency = max_concurrency
        self.name = f"openai-images:{model}"
        self.capabilities = T2ICapabilities(
            max_batch_size=1 if _single_image_model(model) else _MAX_N,
            supports_negative_prompt=False,
            supports_seed=False,
        )
        self._client = client
        self._openai = openai
        self.retry = retry or RetryPolicy()
        client_retries = getattr(client, "max_retries", 0)
        self.client_retries = client_retries if isinstance(client_retries, int) and client_retries > 0 else 0
        """Retries the client makes by itself; the policy leaves the failures it retries alone."""
        self._secret = str(getattr(client, "api_key", "") or "")
        register_secret(self._secret)  # masked in every message, whatever its shape
        self._warned_negative = threading.Event()

    def __repr__(self) -> str:
        base_url = getattr(self._client, "base_url", None)
        return f"OpenAIImagesT2I(model={self.model!r}, base_url={str(base_url)!r})"

    # ------------------------------------------------------------------ settings

    def check_settings(self, settings: GenerationConfig) -> None:
        """Refuse settings this backend would reject, before any paid call.

        ``height`` and ``width`` become the API's ``size`` (``"WIDTHxHEIGHT"``), so they must
        be given together (or neither, for the ``size`` given at construction). Against
        OpenAI's own API (``api.openai.com``) the size must also be one the model offers:
        ``dall-e-2`` 256, 512 or 1024 square; ``dall-e-3`` 1024x1024, 1792x1024, 1024x1792;
        ``gpt-image-1*`` 1024x1024, 1536x1024, 1024x1536. Other models, and compatible
        servers (any other ``base_url``), choose their own sizes and are not checked.

        Raises:
            ConfigurationError: only one of height and width is given, or the size is not one
                the model offers.
        """
        if (settings.height is None) != (settings.width is None):
            raise ConfigurationError(
                f"{self.name} needs both width and height (or neither), got width={settings.width}, "
                f"height={settings.height}."
            )
        size = f"{settings.width}x{settings.height}" if settings.width is not None else self.size
        sizes = _openai_sizes(self.model) if self._official_api() else None
        if size is not None and sizes is not None and size not in sizes:
            raise ConfigurationError(
                f"{self.name} cannot render {size} (width x height): the OpenAI API offers "
                f"{', '.join(sorted(sizes))} for {self.model}. Set width and height to one of them."
            )

    def _official_api(self) -> bool:
        host = getattr(getattr(self._client, "base_url", None), "host", None)
        return isinstance(host, str) and host.lower() == "api.openai.com"

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render every request, in order; ``len(result) == len(requests)``.

        Requests with the same prompt and size share one API call (``n`` images); the
        calls for different prompts run concurrently. Seeds are ignored by the service.

        Raises:
            GenerationError: an API call failed after the client's retries, or answered
                something that is not the images it was asked for.
            ConfigurationError: a request gives only one of ``width`` and ``height``.
        """
        groups: dict[tuple[str, str | None], list[int]] = {}
        for index, request in enumerate(requests):
            if request.negative_prompt and not self._warned_negative.is_set():
                self._warned_negative.set()
                logger.warning("%s ignores negative prompts (the images API has none).", self.name)
            groups.setdefault((request.prompt, self._size_of(request)), []).append(index)

        per_call = 1 if _single_image_model(self.model) else _MAX_N
        calls: list[tuple[str, str | None, list[int]]] = []
        for (prompt, size), indices in groups.items():
            for start in range(0, len(indices), per_call):
                calls.append((prompt, size, indices[start : start + per_call]))

        results: list[GeneratedImage | None] = [None] * len(requests)

        def run(call: tuple[str, str | None, list[int]]) -> None:
            prompt, size, indices = call
            for index, image in zip(indices, self._call(prompt, size, len(indices)), strict=True):
                results[index] = image

        if len(calls) <= 1 or self.max_concurrency == 1:
            for call in calls:
                run(call)
        else:
            with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(calls))) as pool:
                for future in [pool.submit(run, call) for call in calls]:
                    future.result()  # re-raises the first GenerationError
        return [image for image in results if image is not None]

    def _size_of(self, request: GenerationRequest) -> str | None:
        if request.width is None and request.height is None:
            return self.size
        if request.width is None or request.height is None:
            raise ConfigurationError(
                f"{self.name} needs both width and height (or neither), got width={request.width}, "
                f"height={request.height}."
            )
        return f"{request.width}x{request.height}"

    def _call(self, prompt: str, size: str | None, n: int) -> list[GeneratedImage]:
        params: dict[str, Any] = {"model": self.model, "prompt": prompt, "n": n}
        if size is not None:
            params["size"] = size
        if self.quality is not None:
            params["quality"] = self.quality
        if not self.model.startswith(_GPT_IMAGE_PREFIXES):
            params["response_format"] = "b64_json"  # DALL·E and most compatible servers default to URLs

        attempts, start = [0], time.perf_counter()

        def attempt(**kwargs: Any) -> Any:
            attempts[0] += 1
            return self._client.images.generate(**kwargs)

        try:
            response = self.retry.call(attempt, retry_on=self._worth_retrying, **params)
        except Exception as exc:
            outcome = self._failure(exc, size, n)
            if isinstance(outcome, GenerationError):  # say what was tried: attempts (the client's too) and time
                made = attempts[0] + (self.client_retries if self.client_retries and retried_by_http_client(exc) else 0)
                outcome = self._error(f"{outcome} ({_attempts(made)} over {time.perf_counter() - start:.1f} s)")
                outcome.status_code = status_code(exc)  # type: ignore[attr-defined]
        else:
            return self._decode(response, n)
        # Raised here, outside the except block and unchained: the openai exception's message and
        # body may echo the API key, and a __cause__ or __context__ would print it in tracebacks.
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _worth_retrying(self, exc: BaseException) -> bool:
        """Retry transient failures, except those the client has already retried itself."""
        return is_transient(exc) and not (self.client_retries and retried_by_http_client(exc))

    def _failure(self, exc: BaseException, size: str | None, n: int) -> list[GeneratedImage] | BaseException:
        """Blocked images for a safety refusal, else the redacted error to raise for ``exc``."""
        openai = self._openai
        if isinstance(exc, openai.APIStatusError):
            code = _error_code(exc)
            if exc.status_code == 400 and code in BLOCKED_ERROR_CODES:
                logger.warning("%s: the safety system refused a prompt (%s); marked blocked.", self.name, code)
                return [_blocked(size or self.size) for _ in range(n)]
            hint = {
                401: " Check the API key.",
                403: " The key may lack access to this model.",
                404: " Check the model name and base_url.",
                429: " The rate limit or quota is exhausted; retry later or lower the concurrency.",
            }.get(exc.status_code, "")
            return self._error(
                f"{self.name}: the images API answered HTTP {exc.status_code}"
                f"{f' ({code})' if code else ''}: {_error_message(exc)}.{hint}"
            )
        if isinstance(exc, openai.APITimeoutError):
            return self._error(
                f"{self.name}: the images request timed out (after the retries). Check that the server answers, "
                "or allow more time (timeout=SECONDS; in a spec ?timeout=SECONDS)."
            )
        if isinstance(exc, openai.APIConnectionError):
            return self._error(f"{self.name}: could not reach the images API at {self._client.base_url} ({exc}).")
        if isinstance(exc, (openai.OpenAIError, ValueError)):  # ValueError: a body that is not JSON
            return self._error(f"{self.name}: the images API answered something unreadable ({exc}).")
        return exc  # not a failure of the API (a bug): re-raised as it is

    def _decode(self, response: Any, n: int) -> list[GeneratedImage]:
        data = list(getattr(response, "data", None) or [])
        if len(data) != n:
            raise GenerationError(f"{self.name}: asked for {n} images, got {len(data)}.", backend=self.name)
        images: list[GeneratedImage] = []
        for item in data:
            b64 = getattr(item, "b64_json", None)
            if not b64:
                raise GenerationError(
                    f"{self.name}: the answer has no b64_json image"
                    f"{' (only a URL)' if getattr(item, 'url', None) else ''}; this backend needs base64 images.",
                    backend=self.name,
                )
            try:
                image = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
                image.load()
            except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
                raise GenerationError(
                    f"{self.name}: an image in the answer could not be decoded ({exc}).", backend=self.name
                ) from exc
            images.append(GeneratedImage(image.convert("RGB")))
        return images

    def _error(self, message: str) -> GenerationError:
        if self._secret:
            message = message.replace(self._secret, "***")
        return GenerationError(redact(message), backend=self.name)


def _attempts(count: int) -> str:
    """How many attempts a failed call made, in words.

    Example:
        >>> _attempts(1), _attempts(10)
        ('1 attempt', '10 attempts')
    """
    return f"{count} attempt{'s' if count != 1 else ''}"


def _parse_size(size: str) -> tuple[int, int] | None:
    width, sep, height = size.partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        return None
    return int(width), int(height)


def _blocked(size: str | None) -> GeneratedImage:
    width, height = (_parse_size(size) if size else None) or (1024, 1024)
    return GeneratedImage(Image.new("RGB", (width, height)), blocked=True)


def _error_detail(exc: Any) -> dict[str, Any]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        return inner if isinstance(inner, dict) else body
    return {}


def _error_code(exc: Any) -> str | None:
    code = getattr(exc, "code", None) or _error_detail(exc).get("code")
    return str(code) if code else None


def _error_message(exc: Any) -> str:
    message = _error_detail(exc).get("message") or getattr(exc, "message", None) or str(exc)
    return str(message).rstrip(".")
