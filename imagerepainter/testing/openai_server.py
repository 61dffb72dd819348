"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests and offline sandboxes.

It speaks enough of the OpenAI wire protocol for ``langchain_openai.ChatOpenAI`` and the
official ``openai`` client to run unmodified against it, so tests exercise the real request
building, retries and response parsing instead of a mock:

* ``POST /v1/chat/completions``: plain and ``stream: true`` (server-sent events) answers,
  structured output through ``response_format`` (``json_schema`` / ``json_object``) or a
  forced tool call, multimodal messages with ``data:`` URL images.
* ``POST /v1/images/generations``: ``b64_json`` PNGs, honouring ``n`` and ``size``.
* ``GET /v1/models``.

What the "model" answers comes from a *responder*, a function of the parsed
:class:`ChatRequest`. Returning a ``dict`` means "this is the structured answer" and the
server encodes it the way the request and the server's *capabilities* call for: a JSON
``content`` for ``json_schema``, a ``tool_calls`` entry for tools, JSON inside prose for a
text-only server. Capabilities emulate real servers: ``structured_output="tools"`` rejects
``json_schema`` like an older vLLM does, ``"text"`` rejects both or ignores them.

Every request is recorded (with the API key redacted), and faults can be queued: rate
limits with ``retry-after``, 5xx, slow answers, malformed bodies and dropped connections.

Example:
    >>> import json, urllib.request
    >>> with OpenAICompatibleServer(responder=lambda request: "hello " + request.text) as srv:
    ...     body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "world"}]}).encode()
    ...     req = urllib.request.Request(srv.base_url + "/chat/completions", data=body,
    ...                                  headers={"Content-Type": "application/json"})
    ...     reply = json.load(urllib.request.urlopen(req))
    >>> reply["choices"][0]["message"]["content"], reply["usage"]["total_tokens"]
    ('hello world', 3)
    >>> srv.requests[0].chat.text
    'world'
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeAlias

from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_TOKENS",
    "ChatMode",
    "ChatReply",
    "ChatRequest",
    "Fault",
    "ImageRequest",
    "OpenAICompatibleServer",
    "RecordedRequest",
    "ScriptExhaustedError",
    "ScriptedResponder",
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
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise ValueError(f"messages[{index}] must be an object")
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


def _parse_content(content: Any, *, where: str) -> tuple[list[str], list[Image.Image]]:
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise ValueError(f"{where}.content must be a string or a list of parts")
    texts: list[str] = []
    images: list[Image.Image] = []
    for index, part in enumerate(content):
        if not isinstance(part, dict):
            raise ValueError(f"{where}.content[{index}] must be an object")
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


# ----------------------------------------------------------------------------- replies


@dataclass(frozen=True, kw_only=True)
class ChatReply:
    """A fully specified answer, for responders that need more than a dict or a string.

    Give ``payload`` (a structured answer, encoded per request mode) or ``text`` (assistant
    content sent verbatim, even to a ``json_schema`` request: useful to send broken JSON),
    or ``refusal``.
    """

    payload: Mapping[str, Any] | None = None
    text: str | None = None
    refusal: str | None = None
    """Sent as ``message.refusal`` with no content (OpenAI's structured-output refusal)."""
    finish_reason: str | None = None
    """Overrides the finish reason (default ``"tool_calls"`` for tool calls, else ``"stop"``)."""
    tool_name: str | None = None
    """Name of the tool to call with ``payload`` (default: the forced tool, else the first tool)."""
    usage: Mapping[str, int] | None = None
    """Overrides the estimated ``usage``."""


Responder: TypeAlias = Callable[[ChatRequest], Any]
"""``responder(request) -> dict | str | ChatReply | pydantic model | Fault``."""
ImageResponder: TypeAlias = Callable[[ImageRequest], Any]
"""``image_responder(request) -> list of PIL images (or one image) | Fault``."""


class ScriptExhaustedError(RuntimeError):
    """A :class:`ScriptedResponder` had no answer left for a request (the server answers HTTP 500)."""


class ScriptedResponder:
    """Answers structured requests from per-schema scripts, and text requests with a default.

    ``script`` maps a schema name (the ``response_format`` schema name or the forced
    tool's name, usually the pydantic class name) to a list of payloads popped in order,
    or to a callable ``(ChatRequest) -> payload``. ``script`` may also be a single callable
    that answers every structured request. Payloads are dicts, pydantic models (dumped to
    JSON), strings, :class:`ChatReply` s or :class:`Fault` s.

    Args:
        script: The per-schema answers, or one callable.
        text: The answer to requests without a schema: a string, a callable, or None to
            treat them as an error.
        infer_schema_from_text: For requests without a wire schema (a text-only server,
            a client that asks for JSON in the prompt), pick the script whose name is the
            only one that occurs as a whole word in the system and user text.

    Example:
        >>> responder = ScriptedResponder({"Caption": [{"caption": "a cat"}, {"caption": "a dog"}]}, text="hi")
        >>> req = ChatRequest.from_body({"messages": [{"role": "user", "content": "x"}],
        ...     "response_format": {"type": "json_schema", "json_schema": {"name": "Caption", "schema": {}}}})
        >>> responder(req), responder(req), responder.remaining("Caption")
        ({'caption': 'a cat'}, {'caption': 'a dog'}, 0)
        >>> responder(req)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        imagerepainter.testing.openai_server.ScriptExhaustedError: The script for 'Caption' ran out after 2 answers...
    """

    def __init__(
        self,
        script: Mapping[str, Iterable[Any] | Callable[[ChatRequest], Any]] | Callable[[ChatRequest], Any] | None = None,
        *,
        text: str | Callable[[ChatRequest], Any] | None = "OK",
        infer_schema_from_text: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._fallback: Callable[[ChatRequest], Any] | None = None
        self._queues: dict[str, deque[Any]] = {}
        self._callables: dict[str, Callable[[ChatRequest], Any]] = {}
        self._served: dict[str, int] = {}
        if callable(script):
            self._fallback = script
        else:
            for name, entry in (script or {}).items():
                if callable(entry):
                    self._callables[name] = entry
                else:
                    self._queues[name] = deque(entry)
        self.text = text
        self.infer_schema_from_text = infer_schema_from_text

    def add(self, schema_name: str, *payloads: Any) -> None:
        """Append ``payloads`` to the script of ``schema_name``."""
        with self._lock:
            self._queues.setdefault(schema_name, deque()).extend(payloads)

    def remaining(self, schema_name: str) -> int:
        """How many scripted payloads for ``schema_name`` have not been used yet."""
        with self._lock:
            return len(self._queues.get(schema_name, ()))

    def __call__(self, request: ChatRequest) -> Any:
        name = request.schema_name
        if name is None and self.infer_schema_from_text:
            name = self._infer_name(request)
        if name is None:
            if self.text is None:
                raise ScriptExhaustedError(f"No answer for a plain-text request (mode {request.mode!r}): text=None.")
            return self.text(request) if callable(self.text) else self.text
        if name in self._callables:
            return self._callables[name](request)
        with self._lock:
            queue = self._queues.get(name)
            if queue:
                self._served[name] = self._served.get(name, 0) + 1
                return queue.popleft()
            served = self._served.get(name, 0)
        if self._fallback is not None:
            return self._fallback(request)
        if queue is None:
            known = ", ".join(sorted([*self._queues, *self._callables])) or "none"
            raise ScriptExhaustedError(f"No script for schema {name!r} (scripted schemas: {known}).")
        raise ScriptExhaustedError(
            f"The script for {name!r} ran out after {served} answers; add more with responder.add({name!r}, ...)."
        )

    def _infer_name(self, request: ChatRequest) -> str | None:
        haystack = request.system + "\n" + request.text
        found = [n for n in [*self._queues, *self._callables] if re.search(rf"\b{re.escape(n)}\b", haystack)]
        return found[0] if len(found) == 1 else None


# ----------------------------------------------------------------------------- faults


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Something that goes wrong with one request. Build with the class methods.

    ``path`` restricts a fault to requests whose path contains it (e.g. ``"/images/"``).
    """

    kind: Literal["status", "timeout", "malformed", "disconnect"]
    code: int = 500
    """HTTP status of a ``status`` fault."""
    retry_after: float | None = None
    """Seconds sent as ``retry-after-ms`` and ``retry-after``."""
    seconds: float = 0.0
    """How long a ``timeout`` fault waits before answering normally."""
    message: str | None = None
    error_code: str | None = None
    """``error.code`` in the body, e.g. ``"content_policy_violation"``."""
    error_type: str | None = None
    path: str | None = None

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        error_code: str | None = None,
        error_type: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """An HTTP error answer with OpenAI's error body.

        Example:
            >>> Fault.status(429, retry_after=0.01).code
            429
        """
        return cls(
            kind="status",
            code=code,
            retry_after=retry_after,
            message=message,
            error_code=error_code,
            error_type=error_type,
            path=path,
        )

    @classmethod
    def timeout(cls, seconds: float, *, path: str | None = None) -> Fault:
        """Wait ``seconds`` (longer than the client's timeout) before answering."""
        return cls(kind="timeout", seconds=seconds, path=path)

    @classmethod
    def malformed(cls, *, path: str | None = None) -> Fault:
        """Answer 200 with a body that is not valid JSON."""
        return cls(kind="malformed", path=path)

    @classmethod
    def disconnect(cls, *, path: str | None = None) -> Fault:
        """Close the connection without answering."""
        return cls(kind="disconnect", path=path)

    def applies_to(self, path: str) -> bool:
        """Whether this fault targets ``path``."""
        return self.path is None or self.path in path


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


# ----------------------------------------------------------------------------- server


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Sent(Exception):
    """A fault already sent its answer."""


class _Dropped(Exception):
    """The connection was closed on purpose (a disconnect fault or a server shutdown)."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, owner: OpenAICompatibleServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", owner.requested_port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up; report anything else as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class OpenAICompatibleServer:
    """An OpenAI-compatible server on ``127.0.0.1`` with an ephemeral port.

    Use it as a context manager, or call :meth:`start` and :meth:`close`.

    Args:
        responder: Answers chat requests: ``(ChatRequest) -> dict | str | ChatReply |
            pydantic model | Fault``. A dict (or model) is a structured answer; a string is
            plain assistant text. Defaults to a :class:`ScriptedResponder` answering
            ``"OK"`` to text requests.
        structured_output: What the server supports. ``"json_schema"``: ``response_format``
            json_schema and json_object, and tools. ``"tools"``: tools and json_object; a
            json_schema request gets HTTP 400 (like vLLM without guided decoding).
            ``"text"``: neither; structured requests get HTTP 400.
        ignore_unsupported: Instead of HTTP 400, ignore an unsupported ``response_format``
            or ``tools`` and answer in prose (a dict answer becomes JSON in a fenced block).
        image_responder: Answers image requests: ``(ImageRequest) -> list of images |
            image | Fault``. Defaults to solid colours derived from the prompt.
        models: Ids listed by ``GET /v1/models``.
        api_key: When set, requests without ``Authorization: Bearer <api_key>`` get 401.
        port: Port to listen on (always on 127.0.0.1); 0 picks a free one.

    Attributes:
        base_url: ``http://127.0.0.1:<port>/v1``, for ``ChatOpenAI(base_url=...)``.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        structured_output: StructuredOutputSupport = "json_schema",
        ignore_unsupported: bool = False,
        image_responder: ImageResponder | None = None,
        models: Sequence[str] = ("gpt-4o-mini", "gpt-image-1"),
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        if structured_output not in ("json_schema", "tools", "text"):
            raise ValueError(f"structured_output must be 'json_schema', 'tools' or 'text', not {structured_output!r}")
        self.responder: Responder = responder if responder is not None else ScriptedResponder()
        self.structured_output: StructuredOutputSupport = structured_output
        self.ignore_unsupported = ignore_unsupported
        self.image_responder: ImageResponder = image_responder or _default_images
        self.models = tuple(models)
        self.requested_port = port
        self._api_key = api_key
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._periodic: list[list[Any]] = []  # [n, requests counted, fault]
        self._counter = 0
        self._closing = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        """Exceptions raised by the responders (answered with HTTP 500), for debugging tests."""

    def __repr__(self) -> str:
        state = self.base_url if self._httpd is not None else ("closed" if self._closing.is_set() else "not started")
        return f"OpenAICompatibleServer({state}, structured_output={self.structured_output!r})"

    # -- lifecycle

    def start(self) -> OpenAICompatibleServer:
        """Bind the port (a free one by default) on 127.0.0.1 and serve from a daemon thread; returns self."""
        if self._closing.is_set():
            raise RuntimeError("This server was closed; create a new one.")
        if self._httpd is None:
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"openai-test-server:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, close open connections and the socket, and join the threads."""
        self._closing.set()  # wakes handlers sleeping in a timeout fault
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.drop_connections()
        httpd.server_close()  # joins handler threads
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._httpd is None:
            raise RuntimeError("The server is not running; call start() or use it as a context manager.")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[ChatRequest]:
        """The parsed chat requests received so far, in order."""
        return [r.chat for r in self.requests if r.chat is not None]

    def reset(self) -> None:
        """Forget the recorded requests and errors, and drop queued and periodic faults."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._periodic.clear()
            self.errors.clear()
            self._counter = 0

    # -- faults

    def inject(self, *faults: Fault) -> None:
        """Queue faults for the next requests: one per request, in order.

        A fault with a ``path`` waits for the first request whose path contains it.
        """
        with self._lock:
            self._faults.extend(faults)

    def fail_every(self, n: int, fault: Fault) -> None:
        """Apply ``fault`` to every ``n``-th request (the n-th, 2n-th, ...) from now on.

        Counts only requests that ``fault`` applies to, and only ones no queued fault took.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:
            self._periodic.append([n, 0, fault])

    def pending_faults(self) -> int:
        """How many queued (not periodic) faults have not been applied yet."""
        with self._lock:
            return len(self._faults)

    # -- internals used by the handler

    def _record(self, recorded: RecordedRequest) -> int:
        with self._lock:
            self._requests.append(recorded)
            self._counter += 1
            return self._counter

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies_to(path):
                    self._faults.remove(fault)
                    return fault
            for entry in self._periodic:
                n, _, fault = entry
                if fault.applies_to(path):
                    entry[1] += 1
                    if entry[1] % n == 0:
                        return fault  # type: ignore[no-any-return]
        return None

    def _check_auth(self, headers: Mapping[str, str]) -> None:
        if self._api_key is None:
            return
        if headers.get("authorization", "") != f"Bearer {self._api_key}":
            raise _HTTPError(401, "Incorrect API key provided.", code="invalid_api_key")

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server closes."""
        if self._closing.wait(seconds):
            raise _Dropped()

    def _note_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)


# ----------------------------------------------------------------------------- encoding


def _as_payload(value: Any) -> Any:
    """Turn pydantic models into dicts; leave other values alone."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) and not isinstance(value, type) else value


def _prose(payload: Mapping[str, Any]) -> str:
    return "Here you go:\n```json\n" + json.dumps(payload, indent=2) + "\n```"


def _effective_mode(server: OpenAICompatibleServer, request: ChatRequest) -> ChatMode:
    """The mode the answer is encoded in; raises _HTTPError (400) for what the server does not support."""
    support = server.structured_output
    unsupported: str | None = None
    if request.mode == "json_schema" and support != "json_schema":
        unsupported = "response_format 'json_schema' is not supported"
    elif request.mode == "tools" and support == "text":
        unsupported = "tools are not supported by this server ('tool_choice' and 'tools' must be omitted)"
    elif request.mode == "json_object" and support == "text":
        unsupported = "response_format 'json_object' is not supported"
    if unsupported is None:
        return request.mode
    if not server.ignore_unsupported:
        raise _HTTPError(400, unsupported)
    return "text"


def _chat_message(request: ChatRequest, mode: ChatMode, result: Any, number: int) -> dict[str, Any]:
    """Build the assistant message, finish reason and usage of ``result`` encoded for ``mode``."""
    if isinstance(result, ChatReply):
        reply = result
    elif isinstance(result, str):
        reply = ChatReply(text=result)
    else:
        payload = _as_payload(result)
        if not isinstance(payload, Mapping):
            raise TypeError(
                f"The responder returned {type(result).__name__}; return a dict, a str, a ChatReply, "
                "a pydantic model or a Fault."
            )
        reply = ChatReply(payload=payload)
    payload = _as_payload(reply.payload)

    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    finish_reason = "stop"
    if reply.refusal is not None:
        message["refusal"] = reply.refusal
    elif payload is not None and mode == "tools":
        name = reply.tool_name or request.schema_name or (request.tool_names or ["answer"])[0]
        message["tool_calls"] = [
            {
                "id": f"call_{number}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(payload)},
            }
        ]
        finish_reason = "tool_calls"
    elif payload is not None:
        message["content"] = _prose(payload) if mode == "text" else json.dumps(payload)
    else:
        message["content"] = reply.text if reply.text is not None else ""
    finish_reason = reply.finish_reason or finish_reason

    completion_text = " ".join(
        [message.get("content") or "", message.get("refusal") or ""]
        + [c["function"]["arguments"] for c in message.get("tool_calls", [])]
    )
    prompt_text = " ".join(_all_message_text(request.messages))
    usage = dict(
        reply.usage
        or {
            "prompt_tokens": estimate_tokens(prompt_text) + IMAGE_TOKENS * len(request.images),
            "completion_tokens": estimate_tokens(completion_text),
        }
    )
    usage.setdefault("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    return {"message": message, "finish_reason": finish_reason, "usage": usage}


def _all_message_text(messages: Sequence[Any]) -> list[str]:
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return texts


def _default_images(request: ImageRequest) -> list[Image.Image]:
    """Solid colours derived from the prompt and the index: same prompt, same pixels."""
    images = []
    for index in range(request.n):
        digest = hashlib.sha256(f"{request.prompt}\x00{index}".encode()).digest()
        images.append(Image.new("RGB", (request.width, request.height), (digest[0], digest[1], digest[2])))
    return images


def _png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ----------------------------------------------------------------------------- handler

_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "openai-api-key")


def _redact(headers: Mapping[str, str]) -> dict[str, str]:
    redacted: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in _SECRET_HEADERS:
            value = "Bearer ***" if value.lower().startswith("bearer ") else "***"
        redacted[lower] = value
    return redacted


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    server_version = "imagerepainter-openai-test-server/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- entry points

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self._read_body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body, bad_json = raw.decode("utf-8", "replace"), True

        chat: ChatRequest | None = None
        image: ImageRequest | None = None
        parse_error: str | None = None
        if method == "POST" and isinstance(body, dict):
            try:
                if path == "/v1/chat/completions":
                    chat = ChatRequest.from_body(body)
                elif path == "/v1/images/generations":
                    image = ImageRequest.from_body(body)
            except ValueError as exc:
                parse_error = str(exc)
        number = owner._record(
            RecordedRequest(path=path, headers=_redact(headers), body=body, chat=chat, image=image, method=method)
        )

        try:
            fault = owner._take_fault(path)
            if fault is not None:
                self._apply_fault(fault)  # returns only for a timeout fault
            owner._check_auth(headers)
            if path == "/v1/models" or path.startswith("/v1/models/"):
                if method != "GET":
                    raise _HTTPError(405, f"Method {method} is not allowed on {path}.")
                self._models(path)
                return
            if path not in ("/v1/chat/completions", "/v1/images/generations"):
                raise _HTTPError(
                    404,
                    f"Unknown path {method} {path}: this server has /v1/chat/completions, "
                    "/v1/images/generations and /v1/models.",
                    code="unknown_url",
                )
            if method != "POST":
                raise _HTTPError(405, f"Method {method} is not allowed on {path}; use POST.")
            if bad_json or not isinstance(body, dict):
                raise _HTTPError(400, "The request body must be a JSON object.")
            if parse_error is not None:
                raise _HTTPError(400, parse_error)
            if chat is not None:
                self._chat(chat, number)
            elif image is not None:
                self._images(image, number)
        except _Sent:
            pass
        except _HTTPError as exc:
            self._send_json(exc.status, _error_body(exc.status, exc.message, code=exc.code))
        except _Dropped:
            self._drop()
        except ConnectionError:  # the client went away (e.g. it timed out during a timeout fault)
            self.close_connection = True
        except Exception as exc:  # a responder bug: answer 500 with the reason
            owner._note_error(exc)
            with contextlib.suppress(ConnectionError):
                self._send_json(500, _error_body(500, f"The responder failed: {type(exc).__name__}: {exc}"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- faults

    def _apply_fault(self, fault: Fault) -> None:
        if fault.kind == "timeout":
            self.server.owner._sleep(fault.seconds)
            return
        if fault.kind == "disconnect":
            raise _Dropped()
        if fault.kind == "malformed":
            self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ', "application/json")
            raise _Sent()
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
            headers["retry-after"] = f"{fault.retry_after:g}"
        message = fault.message or _ERROR_MESSAGES.get(fault.code, f"Injected error {fault.code}.")
        body = _error_body(fault.code, message, code=fault.error_code, type_=fault.error_type)
        self._send_json(fault.code, body, headers)
        raise _Sent()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- endpoints

    def _models(self, path: str) -> None:
        owner = self.server.owner
        entries = [{"id": m, "object": "model", "created": 0, "owned_by": "imagerepainter-test"} for m in owner.models]
        if path.rstrip("/") == "/v1/models":
            self._send_json(200, {"object": "list", "data": entries})
            return
        wanted = path[len("/v1/models/") :]
        entry = next((e for e in entries if e["id"] == wanted), None)
        if entry is None:
            raise _HTTPError(404, f"The model {wanted!r} does not exist.", code="model_not_found")
        self._send_json(200, entry)

    def _chat(self, request: ChatRequest, number: int) -> None:
        owner = self.server.owner
        mode = _effective_mode(owner, request)  # before the responder: a rejected request uses no script
        result = owner.responder(request)
        if isinstance(result, Fault):
            self._apply_fault(result)  # returns only for a timeout fault: then answer empty text
            result = ""
        built = _chat_message(request, mode, result, number)
        completion_id = f"chatcmpl-{number}"
        created = int(time.time())
        model = request.model or "test-model"
        if request.stream:
            self._stream(completion_id, created, model, built, request)
            return
        self._send_json(
            200,
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": built["message"], "finish_reason": built["finish_reason"], "logprobs": None}
                ],
                "usage": built["usage"],
                "system_fingerprint": "fp_test",
            },
            {"x-request-id": f"req_{number}"},
        )

    def _stream(
        self, completion_id: str, created: int, model: str, built: dict[str, Any], request: ChatRequest
    ) -> None:
        base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}])

        message = built["message"]
        chunks = [chunk({"role": "assistant", "content": ""})]
        content = message.get("content") or ""
        chunks += [chunk({"content": piece}) for piece in re.findall(r"\S+\s*|\s+", content)]
        if message.get("refusal"):
            chunks.append(chunk({"refusal": message["refusal"]}))
        for index, call in enumerate(message.get("tool_calls", [])):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            chunks.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": arguments[:half]},
                            }
                        ]
                    }
                )
            )
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]}))
        chunks.append(chunk({}, built["finish_reason"]))
        options = request.body.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            chunks.append(dict(base, choices=[], usage=built["usage"]))

        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for item in chunks:
            self.wfile.write(f"data: {json.dumps(item)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _images(self, request: ImageRequest, number: int) -> None:
        owner = self.server.owner
        result = owner.image_responder(request)
        if isinstance(result, Fault):
            self._apply_fault(result)
            result = _default_images(request)
        images = [result] if isinstance(result, Image.Image) else list(result)
        prompt_tokens = estimate_tokens(request.prompt)
        output_tokens = _PNG_OUTPUT_TOKENS * len(images)
        self._send_json(
            200,
            {
                "created": int(time.time()),
                "data": [{"b64_json": _png_b64(image), "revised_prompt": None} for image in images],
                "output_format": "png",
                "size": f"{request.width}x{request.height}",
                "usage": {
                    "input_tokens": prompt_tokens,
                    "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0},
                    "output_tokens": output_tokens,
                    "total_tokens": prompt_tokens + output_tokens,
                },
            },
            {"x-request-id": f"req_{number}"},
        )

    # -- sending

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
