"""The local OpenAI-compatible HTTP server (127.0.0.1): :class:`OpenAICompatibleServer`.

Documented, with examples, where users import it: :mod:`imagerepainter.testing.openai_server`.
Its pieces live beside it: request parsing and error bodies in :mod:`.protocol`, :class:`ChatReply`
and the reply encoding in :mod:`.replies`, :class:`ScriptedResponder` in :mod:`.scripted`,
:class:`Fault` in :mod:`.faults`, and the HTTP handler in :mod:`.http`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from .faults import Fault
from .http import _Dropped, _HTTPServer
from .protocol import (
    ChatRequest,
    RecordedRequest,
    StructuredOutputSupport,
    _HTTPError,
)
from .replies import ImageResponder, Responder, default_images
from .scripted import ScriptedResponder

__all__ = ["OpenAICompatibleServer"]


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
        delay: Seconds each chat or image answer takes, counted from when its request was
            read (a model's latency; concurrent requests wait side by side). Default 0.

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
        delay: float = 0.0,
    ) -> None:
        if structured_output not in ("json_schema", "tools", "text"):
            raise ValueError(f"structured_output must be 'json_schema', 'tools' or 'text', not {structured_output!r}")
        self.responder: Responder = responder if responder is not None else ScriptedResponder()
        self.structured_output: StructuredOutputSupport = structured_output
        self.ignore_unsupported = ignore_unsupported
        self.image_responder: ImageResponder = image_responder or default_images
        self.models = tuple(models)
        if not delay >= 0:
            raise ValueError(f"delay must be a number of seconds >= 0, not {delay!r}")
        self.requested_port = port
        self.delay = float(delay)
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
