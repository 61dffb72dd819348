"""What a responder answers, and how the local server encodes it on the wire.

A chat responder returns a ``dict`` (or pydantic model), a ``str``, a :class:`ChatReply` or a
:class:`~imagerepainter._openai_wire.faults.Fault`; the server encodes the answer the way the
request and its own structured-output support call for (JSON ``content``, a ``tool_calls``
entry, or JSON inside prose). An image responder returns PIL images; the default one paints
solid colours derived from the prompt. Users import these from
:mod:`imagerepainter.testing.openai_server`, which re-exports them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from PIL import Image

from .protocol import (
    IMAGE_TOKENS,
    ChatMode,
    ChatRequest,
    ImageRequest,
    StructuredOutputSupport,
    _HTTPError,
    estimate_tokens,
)

__all__ = ["ChatReply", "ImageResponder", "Responder"]


@dataclass(frozen=True, kw_only=True)
class ChatReply:
    """A fully specified answer, for responders that need more than a dict or a string.

    Give ``payload`` (a structured answer, encoded per request mode) or ``text`` (assistant
    content sent verbatim, even to a ``json_schema`` request: useful to send broken JSON),
    or ``refusal``; or ``no_choices`` for a body with an empty ``choices`` list.
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
    no_choices: bool = False
    """Answer 200 with ``"choices": []`` (a broken proxy or gateway); non-streaming requests only."""


Responder: TypeAlias = Callable[[ChatRequest], Any]
"""``responder(request) -> dict | str | ChatReply | pydantic model | Fault``."""
ImageResponder: TypeAlias = Callable[[ImageRequest], Any]
"""``image_responder(request) -> list of PIL images (or one image) | Fault``."""


# ----------------------------------------------------------------------------- encoding


def _as_payload(value: Any) -> Any:
    """Turn pydantic models into dicts; leave other values alone."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) and not isinstance(value, type) else value


def _prose(payload: Mapping[str, Any]) -> str:
    return "Here you go:\n```json\n" + json.dumps(payload, indent=2) + "\n```"


def _effective_mode(request: ChatRequest, support: StructuredOutputSupport, *, ignore_unsupported: bool) -> ChatMode:
    """The mode the answer is encoded in; raises _HTTPError (400) for what the server does not support."""
    unsupported: str | None = None
    if request.mode == "json_schema" and support != "json_schema":
        unsupported = "response_format 'json_schema' is not supported"
    elif request.mode == "tools" and support == "text":
        unsupported = "tools are not supported by this server ('tool_choice' and 'tools' must be omitted)"
    elif request.mode == "json_object" and support == "text":
        unsupported = "response_format 'json_object' is not supported"
    if unsupported is None:
        return request.mode
    if not ignore_unsupported:
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
    return {"message": message, "finish_reason": finish_reason, "usage": usage, "no_choices": reply.no_choices}


def _all_message_text(messages: Sequence[Any]) -> list[str]:
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return texts


def default_images(request: ImageRequest) -> list[Image.Image]:
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
