"""The OpenAI wire protocol as the local server reads it: parsed requests, token counts, error bodies.

:class:`ChatRequest` and :class:`ImageRequest` turn request bodies into what a responder needs
(``data:`` URL images decoded, the structured-output mode detected); :class:`RecordedRequest`
is what :class:`~imagerepainter._openai_wire.server.OpenAICompatibleServer` keeps of each
request. The server bills tokens with :func:`estimate_tokens` and answers errors with OpenAI's
error body. Users import these from :mod:`imagerepainter.testing.openai_server`, which re-exports them.

Example:
    >>> req = ChatRequest.from_body({"messages": [{"role": "user", "content": "a red cat"}]})
    >>> req.mode, estimate_tokens(req.text)
    ('text', 3)
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_TOKENS",
    "ChatMode",
    "ChatRequest",
    "ImageRequest",
    "RecordedRequest",
    "StructuredOutputSupport",
    "estimate_tokens",
]

ChatMode: TypeAlias = Literal["json_schema", "tools", "json_object", "text"]
"""How a chat request asks for its answer: a JSON schema, a forced tool call, any JSON, or free text."""

StructuredOutputSupport: TypeAlias = Literal["json_schema", "tools", "text"]
"""What a server supports: ``json_schema`` (and tools), tools only, or neither."""

IMAGE_TOKENS = 85
"""Prompt tokens counted for each input image (OpenAI's "low detail" price of an image)."""

_PNG_OUTPUT_TOKENS = 256
"""Output tokens counted for each generated image on the images endpoint."""


def estimate_tokens(text: str) -> int:
    """Count tokens the way this server does: one per whitespace-separated word.

    Example:
        >>> estimate_tokens("a red  cat\\n on a mat")
        6
    """
    return len(text.split())


# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True, eq=False)
class ChatRequest:
    """A chat-completions request body, parsed into what a responder needs.

    Build one with :meth:`from_body`; the server does this for every chat request.
    """

    model: str
    messages: list[dict[str, Any]]
    """The raw ``messages`` of the body."""
    text: str
    """All text parts of the user messages, joined with newlines."""
    system: str
    """All text of the system (and developer) messages, joined with newlines."""
    images: list[Image.Image]
    """Images decoded from ``image_url`` data URLs, in order across all messages."""
    schema_name: str | None
    """``response_format.json_schema.name``, or the forced tool's name; None otherwise."""
    schema: dict[str, Any] | None
    """The JSON schema of the requested answer (or of the forced tool's parameters)."""
    mode: ChatMode
    """How the request asks for its answer."""
    body: dict[str, Any]
    """The raw request body."""

    @property
    def stream(self) -> bool:
        """Whether the client asked for server-sent events."""
        return bool(self.body.get("stream"))

    @property
    def tool_names(self) -> list[str]:
        """Names of the function tools the request offers."""
        return [t.get("function", {}).get("name", "") for t in self.body.get("tools") or [] if isinstance(t, dict)]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ChatRequest:
        """Parse a chat-completions body.

        Raises:
            ValueError: the body is not a valid chat request (no messages, an image that is
                not a decodable ``data:`` URL, ...); the server answers it with HTTP 400.

        Example:
            >>> req = ChatRequest.from_body({"model": "m", "messages": [
            ...     {"role": "system", "content": "Be terse."},
            ...     {"role": "user", "content": [{"type": "text", "text": "Describe it."}]}],
            ...     "response_format": {"type": "json_schema", "json_schema": {"name": "Caption", "schema": {}}}})
            >>> req.system, req.text, req.mode, req.schema_name
            ('Be terse.', 'Describe it.', 'json_schema', 'Caption')
        """
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        user_texts: list[str] = []
        system_texts: list[str] = []
        images: list[Image.Image] = []
        for index, message in _objects(messages, "messages"):
            role = message.get("role")
            texts, message_images = _parse_content(message.get("content"), where=f"messages[{index}]")
            images.extend(message_images)
            if role == "user":
                user_texts.extend(texts)
            elif role in ("system", "developer"):
                system_texts.extend(texts)

        mode, schema_name, schema = _structured_mode(body)
        return cls(
            model=str(body.get("model", "")),
            messages=list(messages),
            text="\n".join(user_texts),
            system="\n".join(system_texts),
            images=images,
            schema_name=schema_name,
            schema=schema,
            mode=mode,
            body=dict(body),
        )


def _objects(items: list[Any], where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The items of the JSON list ``items`` with their indexes, each checked to be an object; the
    ``ValueError`` of one that is not names it by its path (``messages[2]``)."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{where}[{index}] must be an object")
        yield index, item


def _parse_content(content: Any, *, where: str) -> tuple[list[str], list[Image.Image]]:
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of parts")
    texts: list[str] = []
    images: list[Image.Image] = []
    for index, part in _objects(content, f"{where}.content"):
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            images.append(_decode_data_url(str(url or ""), where=f"{where}.content[{index}]"))
    return texts, images


_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)$", re.DOTALL)


def _decode_data_url(url: str, *, where: str) -> Image.Image:
    match = _DATA_URL.match(url)
    if match is None:
        shown = url[:40] + ("..." if len(url) > 40 else "")
        raise ValueError(f"{where}: image_url must be a base64 data: URL (this test server has no network): {shown!r}")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(match["data"], validate=True)))
        image.load()
    except (binascii.Error, UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{where}: the data URL is not a decodable image ({exc})") from None
    return image


def _structured_mode(body: Mapping[str, Any]) -> tuple[ChatMode, str | None, dict[str, Any] | None]:
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}  # type: ignore[union-attr]
        return "json_schema", spec.get("name"), spec.get("schema")
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    if tools:
        choice = body.get("tool_choice")
        name: str | None = None
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name") or choice.get("name")
        elif choice in ("required", "any") and len(tools) == 1:
            name = tools[0].get("function", {}).get("name")
        schema = next(
            (t["function"].get("parameters") for t in tools if name and t.get("function", {}).get("name") == name),
            None,
        )
        return "tools", name, schema
    if kind == "json_object":
        return "json_object", None, None
    return "text", None, None


@dataclass(frozen=True)
class ImageRequest:
    """An images-generations request body, parsed."""

    prompt: str
    model: str
    n: int
    width: int
    height: int
    body: dict[str, Any]
    """The raw request body."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any], *, default_size: tuple[int, int] = (1024, 1024)) -> ImageRequest:
        """Parse an images-generations body; raises ``ValueError`` (HTTP 400) when it is invalid.

        Example:
            >>> r = ImageRequest.from_body({"prompt": "a cat", "n": 2, "size": "64x32"})
            >>> (r.n, r.width, r.height)
            (2, 64, 32)
        """
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("'prompt' must be a non-empty string")
        n = body.get("n", 1)
        n = 1 if n is None else n
        if not isinstance(n, int) or not 1 <= n <= 10:
            raise ValueError(f"'n' must be an integer between 1 and 10, got {n!r}")
        size = body.get("size")
        width, height = default_size
        if size not in (None, "auto"):
            match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", str(size))
            if match is None or not all(0 < int(v) <= 4096 for v in match.groups()):
                raise ValueError(f"'size' must look like '1024x1024' (WIDTHxHEIGHT), got {size!r}")
            width, height = int(match[1]), int(match[2])
        return cls(prompt=prompt, model=str(body.get("model", "")), n=n, width=width, height=height, body=dict(body))


@dataclass(frozen=True, eq=False)
class RecordedRequest:
    """One request the server received, in arrival order.

    ``headers`` have lower-case names; the value of ``authorization`` (and of other key
    headers) is redacted to ``"Bearer ***"`` / ``"***"`` so no secret is kept.
    """

    path: str
    headers: dict[str, str]
    body: Any
    """The decoded JSON body (None for a GET or an empty body; the raw text if it was not JSON)."""
    chat: ChatRequest | None = None
    """The parsed chat request, for valid chat-completions requests."""
    image: ImageRequest | None = None
    """The parsed request, for valid images-generations requests."""
    method: str = "POST"


# ----------------------------------------------------------------------------- errors

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "server_error",
    503: "server_error",
}
_ERROR_MESSAGES = {
    429: "Rate limit reached (injected by the test server). Please try again later.",
    500: "The server had an error while processing your request (injected by the test server).",
    503: "The engine is currently overloaded (injected by the test server). Please try again later.",
}


def _error_body(status: int, message: str, *, code: str | None = None, type_: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": type_ or _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": None,
            "code": code,
        }
    }


class _HTTPError(Exception):
    """An error answer: the handler sends it with ``status`` and OpenAI's error body."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
