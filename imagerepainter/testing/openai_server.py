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

The server lives in the private package :mod:`imagerepainter._openai_wire` (the sandbox
server, a product command, serves the sandbox model with it); this module is its public face
for tests and re-exports everything a test needs.

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

from .._openai_wire.faults import Fault
from .._openai_wire.protocol import (
    IMAGE_TOKENS,
    ChatMode,
    ChatRequest,
    ImageRequest,
    RecordedRequest,
    StructuredOutputSupport,
    estimate_tokens,
)
from .._openai_wire.replies import ChatReply, ImageResponder, Responder
from .._openai_wire.scripted import ScriptedResponder, ScriptExhaustedError
from .._openai_wire.server import OpenAICompatibleServer

__all__ = [
    "IMAGE_TOKENS",
    "ChatMode",
    "ChatReply",
    "ChatRequest",
    "Fault",
    "ImageRequest",
    "ImageResponder",
    "OpenAICompatibleServer",
    "RecordedRequest",
    "Responder",
    "ScriptExhaustedError",
    "ScriptedResponder",
    "StructuredOutputSupport",
    "estimate_tokens",
]
