"""The HTTP layer of the local OpenAI-compatible server: the threading socket server and the request handler.

:class:`_Handler` parses and records each request, applies injected faults, checks the API key,
and answers ``/v1/chat/completions`` (plain or server-sent events), ``/v1/images/generations``
and ``/v1/models``. It serves any :class:`Owner`; the one in use is
:class:`~imagerepainter._openai_wire.server.OpenAICompatibleServer`.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from PIL import Image

from .faults import Fault
from .protocol import (
    _ERROR_MESSAGES,
    _PNG_OUTPUT_TOKENS,
    ChatRequest,
    ImageRequest,
    RecordedRequest,
    StructuredOutputSupport,
    _error_body,
    _HTTPError,
    estimate_tokens,
)
from .replies import ImageResponder, Responder, _chat_message, _effective_mode, _png_b64, default_images


class Owner(Protocol):
    """What the handler needs of the server it serves (so this module does not import the server)."""

    responder: Responder
    image_responder: ImageResponder
    structured_output: StructuredOutputSupport
    ignore_unsupported: bool
    models: tuple[str, ...]
    requested_port: int
    delay: float

    def _record(self, recorded: RecordedRequest) -> int: ...

    def _take_fault(self, path: str) -> Fault | None: ...

    def _check_auth(self, headers: Mapping[str, str]) -> None: ...

    def _sleep(self, seconds: float) -> None: ...

    def _note_error(self, exc: BaseException) -> None: ...


class _Sent(Exception):
    """A fault already sent its answer."""


class _Dropped(Exception):
    """The connection was closed on purpose (a disconnect fault or a server shutdown)."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, owner: Owner) -> None:
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
    disable_nagle_algorithm = True
    """Headers and body go out as separate writes; without TCP_NODELAY the body waits for the
    client's delayed ACK (about 40 ms on Linux), a latency no real API server adds."""
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
        answer_at = time.monotonic() + owner.delay
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
                self._chat(chat, number, answer_at)
            elif image is not None:
                self._images(image, number, answer_at)
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

    def _answer_at(self, answer_at: float) -> None:
        """Wait out the model's latency (``delay``), counted from the request's arrival: the
        responder's own work happens within it, as a model's does."""
        owner = self.server.owner
        if owner.delay > 0:
            owner._sleep(answer_at - time.monotonic())

    def _chat(self, request: ChatRequest, number: int, answer_at: float) -> None:
        owner = self.server.owner
        # before the responder: a rejected request uses no script
        mode = _effective_mode(request, owner.structured_output, ignore_unsupported=owner.ignore_unsupported)
        result = owner.responder(request)
        self._answer_at(answer_at)
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
                "choices": []
                if built["no_choices"]
                else [
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

    def _images(self, request: ImageRequest, number: int, answer_at: float) -> None:
        owner = self.server.owner
        result = owner.image_responder(request)
        self._answer_at(answer_at)
        if isinstance(result, Fault):
            self._apply_fault(result)
            result = default_images(request)
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
