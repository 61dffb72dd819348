"""Any LangChain chat model as an :class:`~imagerepainter.backends.base.MLLM`.

:class:`ChatModelMLLM` sends images as base64 ``image_url`` content parts (what ChatOpenAI,
vLLM, Ollama's OpenAI endpoint and most LangChain chat models accept) and gets a pydantic
object back. Servers differ in what structured output they support, so it tries, in
order, and remembers the first that works:

1. ``"json_schema"`` — OpenAI strict structured outputs (``response_format``);
2. ``"function_calling"`` — one forced tool call whose arguments are the answer;
3. ``"json_text"`` — plain text with the JSON schema in the instruction, JSON pulled out
   of the reply (code fences and prose around it are tolerated).

An answer that does not validate is sent back with the validation error, at most
``max_reasks`` times. Token usage of every request is summed into the reply.

Falling back to the next method happens only while no method has worked yet. Once one has,
an HTTP 400 is a real error about *that* request (for example a two-image critique sent to a
vLLM server started with ``--limit-mm-per-prompt image=1``), raised as
:class:`~imagerepainter.errors.MLLMError` with the server's message instead of being taken
for missing structured-output support.

Retries: one policy for every chat model
----------------------------------------
Transient failures (429 honouring retry-after, 5xx, timeouts, dropped connections, malformed
bodies) are retried by :class:`~imagerepainter.backends.retry.RetryPolicy`: its attempts, backoff,
``retry-after`` handling and overall deadline, however the chat model was given.

* A model built on OpenAI's SDK (``ChatOpenAI``, ``AzureChatOpenAI``; an ``openai:`` spec
  builds one) retries 408, 409, 429, 5xx, connection errors and timeouts by itself,
  ``max_retries`` times (2 when not set). The adapter calls it through
  :func:`without_client_retries`: a copy whose clients are ``with_options(max_retries=0)``
  copies sharing the same HTTP connection pool, so the policy is the only layer and every HTTP
  request is one attempt. The model passed in is not changed. A model built without a timeout
  gets 120 s per request in that copy, so a stalled server ends within the policy's deadline.
* Any other chat model is invoked as is. Its own retries, when it has some (``max_retries``,
  read by :func:`chat_model_retries`, or stated as ``model_retries=``), cannot be switched
  off, so they are counted in the policy's budget: an invocation that failed with an error
  such a client retries spent ``1 + model_retries`` of ``max_attempts``, and the policy
  retries every transient failure that reaches it; an error then says "after 3 attempts; the
  chat model itself retried up to 2 times per attempt".

``MLLMReply.requests`` (summed into ``usage["mllm_requests"]``) counts HTTP requests: every
attempt, re-ask and structured-output fallback, failed ones included. It is exact for models
called without their own retries; for a model that keeps them, a failed invocation counts
``1 + model_retries`` and an answered one counts 1 (retries before an answer are not seen).

Example:
    >>> from langchain_openai import ChatOpenAI  # doctest: +SKIP
    >>> mllm = ChatModelMLLM(ChatOpenAI(model="gpt-4o-mini"))  # doctest: +SKIP
    >>> mllm.model.root_client.max_retries, mllm.called_model.root_client.max_retries  # doctest: +SKIP
    (2, 0)
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from PIL import Image
from pydantic import BaseModel, ValidationError

from .._secrets import redact, register_model_keys
from ..errors import ConfigurationError, MLLMError, StructuredOutputError
from ..images import ImageFormat, to_data_url
from .base import MLLMCapabilities, MLLMMessage, MLLMReply, TokenUsage
from .retry import DEFAULT_REQUEST_TIMEOUT, RetryPolicy, is_timeout, is_transient, retried_by_http_client, status_code

__all__ = [
    "ChatModelMLLM",
    "StructuredMethod",
    "chat_model_retries",
    "extract_json",
    "openai_chat_mllm",
    "strict_response_format",
    "without_client_retries",
]

SchemaT = TypeVar("SchemaT", bound=BaseModel)
StructuredMethod = Literal["json_schema", "function_calling", "json_text"]
_ALL_METHODS: tuple[StructuredMethod, ...] = ("json_schema", "function_calling", "json_text")

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class _Unsupported(Exception):
    """The server or model does not support a structured-output method (message already redacted)."""

    requests: int = 1
    """HTTP requests the refused method cost."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        """The HTTP status the server answered, when there was one."""


class _Refused(ValueError):
    """The model refused to answer (OpenAI's ``refusal`` field or block, or a content filter)."""


_CONTENT_FILTER = "(the server's content filter stopped the answer)"


def _refusal(message: Any) -> str | None:
    """The refusal in a reply (its text, or a description when it has none), else None."""
    extra = getattr(message, "additional_kwargs", None) or {}
    if isinstance(extra.get("refusal"), str) and extra["refusal"].strip():
        return str(extra["refusal"]).strip()
    content = getattr(message, "content", None)
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and block.get("type") == "refusal":
            return str(block.get("refusal") or "").strip() or "(a refusal with no text)"
    finish = (getattr(message, "response_metadata", None) or {}).get("finish_reason")
    if finish == "content_filter" and not _message_text(content).strip() and not getattr(message, "tool_calls", None):
        return _CONTENT_FILTER
    return None


def _one_line(problem: BaseException | None) -> str:
    """A validation problem in one line: each field's error, ``; ``-separated (pydantic's own text spans lines).

    Example:
        >>> from imagerepainter.loop.schemas import Critique
        >>> try:
        ...     Critique.model_validate({"edits": "x"})
        ... except ValidationError as exc:
        ...     print(_one_line(exc))
        edits: Input should be a valid list
    """
    if isinstance(problem, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in problem.errors())
    return " ".join(str(problem).split())


def _no_choices(exc: BaseException) -> bool:
    """Whether ``exc`` is the chat client failing on a reply without choices (``"choices": []`` or null)."""
    if "'choices'" in str(exc):  # langchain_openai's own messages for a missing or null list
        return True
    if not isinstance(exc, IndexError):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return str(module).startswith(("langchain_openai", "langchain_core"))


def chat_model_retries(model: Any) -> int:
    """How many times ``model`` retries a failed HTTP request by itself (0 when unknown).

    Reads an int ``max_retries`` on the model, else on its ``root_client`` or ``client``:
    ``ChatOpenAI(max_retries=None)`` (the default) leaves the choice to its OpenAI client,
    whose ``max_retries`` is 2.

    Example:
        >>> class Model:
        ...     max_retries = 3
        >>> chat_model_retries(Model()), chat_model_retries(object())
        (3, 0)
    """
    for owner in (model, getattr(model, "root_client", None), getattr(model, "client", None)):
        value = getattr(owner, "max_retries", None) if owner is not None else None
        if isinstance(value, int) and not isinstance(value, bool):
            return max(value, 0)
    return 0


@dataclass
class _Spent:
    """What one ``structured`` call has cost so far: kept on its error if it fails."""

    requests: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)


def without_client_retries(model: Any) -> Any | None:
    """A copy of ``model`` whose OpenAI SDK clients never retry, or None when it has no such client.

    ``ChatOpenAI``, ``AzureChatOpenAI`` and the other chat models built on OpenAI's SDK send
    their requests through ``root_client`` (and ``root_async_client``); their ``client`` is that
    client's ``chat.completions``. The copy gets ``with_options(max_retries=0)`` copies of those
    clients, which share the original's HTTP connection pool, so the
    :class:`~imagerepainter.backends.retry.RetryPolicy` alone decides what is retried, how
    often and after which wait. A model built without a timeout (ChatOpenAI's default: none)
    gets :data:`~imagerepainter.backends.retry.DEFAULT_REQUEST_TIMEOUT` per request in the copy,
    so a stalled server cannot outlast the policy's ``max_elapsed``. ``model`` is not changed.

    Example:
        >>> from langchain_openai import ChatOpenAI  # doctest: +SKIP
        >>> chat = ChatOpenAI(model="gpt-4o", base_url="http://127.0.0.1:8000/v1", api_key="EMPTY")  # doctest: +SKIP
        >>> quiet = without_client_retries(chat)  # doctest: +SKIP
        >>> chat.root_client.max_retries, quiet.root_client.max_retries  # doctest: +SKIP
        (2, 0)
    """
    if not callable(getattr(model, "model_copy", None)):
        return None
    update: dict[str, Any] = {"max_retries": 0}
    for root_name, name in (("root_client", "client"), ("root_async_client", "async_client")):
        root = getattr(model, root_name, None)
        if root is None:
            continue
        chat = getattr(root, "chat", None)
        if not callable(getattr(root, "with_options", None)) or getattr(model, name, None) is not getattr(
            chat, "completions", None
        ):
            return None  # a client this function does not know how to rebuild
        unbounded = getattr(root, "timeout", 0) is None  # ChatOpenAI(timeout=None), its default
        quiet = root.with_options(max_retries=0, **({"timeout": DEFAULT_REQUEST_TIMEOUT} if unbounded else {}))
        update[root_name], update[name] = quiet, quiet.chat.completions
        if unbounded and root_name == "root_client":
            update["request_timeout"] = DEFAULT_REQUEST_TIMEOUT
    if "root_client" not in update:
        return None
    return model.model_copy(update=update)


def _unsupported_before_sending(exc: BaseException) -> _Unsupported:
    """A method the model refuses before any request is sent (it costs none)."""
    unsupported = _Unsupported(str(exc))
    unsupported.requests = 0
    return unsupported


def _model_timeout(model: Any) -> float | None:
    """The per-request timeout in seconds a chat model was built with, when it is a plain number."""
    for name in ("request_timeout", "timeout"):
        value = getattr(model, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _count_images(conversation: Sequence[Any]) -> int:
    """Image parts in a LangChain conversation."""
    count = 0
    for message in conversation:
        content = getattr(message, "content", None)
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    return count


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def extract_json(text: str) -> Any:
    """Pull the first JSON object out of a reply that may wrap it in prose or code fences.

    Example:
        >>> extract_json('Sure!\\n```json\\n{"a": 1}\\n```')
        {'a': 1}
        >>> extract_json('answer: {"b": [1, 2]} done')
        {'b': [1, 2]}
    """
    text = text.strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        chunk = chunk.strip()
        for start in [i for i, ch in enumerate(chunk) if ch == "{"][:20]:
            try:
                value, _ = decoder.raw_decode(chunk[start:])
            except json.JSONDecodeError:
                continue
            return value
    raise ValueError("the reply contains no JSON object")


def strict_response_format(schema: type[BaseModel]) -> dict[str, Any]:
    """OpenAI's ``response_format`` for ``schema`` in strict mode.

    Strict structured outputs require every object to list all its properties as required
    and to forbid additional properties; LangChain's converter applies those rules.

    Example:
        >>> from imagerepainter.loop.schemas import ObjectList
        >>> rf = strict_response_format(ObjectList)
        >>> rf["json_schema"]["strict"], rf["json_schema"]["schema"]["additionalProperties"]
        (True, False)
    """
    from langchain_core.utils.function_calling import convert_to_openai_function

    function = convert_to_openai_function(schema, strict=True)
    return {
        "type": "json_schema",
        "json_schema": {
            "name": function["name"],
            "description": function.get("description", ""),
            "schema": function["parameters"],
            "strict": True,
        },
    }


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def openai_chat_mllm(model: str | None = None, **options: Any) -> ChatModelMLLM:
    """The ``openai:<model>?...`` spec: ``ChatOpenAI(model=model, **options)`` adapted, retried by one layer.

    The chat model is built with ``max_retries=0`` unless the spec sets it, so the adapter's
    :class:`~imagerepainter.backends.retry.RetryPolicy` is the one layer that retries, and with
    ``timeout=DEFAULT_REQUEST_TIMEOUT`` (120 s per HTTP request) unless the spec sets it
    (``openai:gpt-4o?timeout=30``): a request that runs out of time is retried like any
    transient failure, so a stalled server ends in an :class:`~imagerepainter.errors.MLLMError`
    instead of a hang. A server given as ``base_url`` needs no key (vLLM, Ollama and the
    sandbox server accept any).

    Raises:
        ConfigurationError: there is neither a key (``OPENAI_API_KEY``) nor a server to talk to.
    """
    from .._imports import require

    lc_openai = require("langchain_openai", extra="openai", purpose="the 'openai:' MLLM backend")
    model = model or "gpt-4o-mini"
    options.setdefault("max_retries", 0)  # ChatModelMLLM retries; don't multiply attempts
    if options.get("timeout") is None and options.get("request_timeout") is None:  # ChatOpenAI's default: none
        options.pop("request_timeout", None)
        options["timeout"] = DEFAULT_REQUEST_TIMEOUT
    if options.get("base_url") and not os.environ.get("OPENAI_API_KEY"):
        options.setdefault("api_key", "EMPTY")  # local servers (vLLM, Ollama, sandbox) need no key
    if not options.get("base_url") and not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
        raise ConfigurationError(
            "The 'openai:' MLLM needs an API key: set OPENAI_API_KEY, or point it at an OpenAI-compatible server "
            "with OPENAI_BASE_URL or base_url (e.g. --base-url http://127.0.0.1:8000/v1)."
        )
    return ChatModelMLLM(lc_openai.ChatOpenAI(model=model, **options), name=f"openai:{model}")


class ChatModelMLLM:
    """Adapt a LangChain ``BaseChatModel`` to the :class:`~imagerepainter.backends.base.MLLM` protocol.

    Args:
        model: Any LangChain chat model (e.g. ``ChatOpenAI(base_url=..., model=...)``). It is not
            changed; one built on OpenAI's SDK is called through :func:`without_client_retries`.
        methods: Structured-output methods to try, in order. Restrict it when you know what
            your server supports, to save a failed first request.
        max_reasks: How often an answer that fails validation is sent back with the error.
        retry: Retry policy for transient failures, whatever the model (see the module
            docstring, "Retries: one policy for every chat model").
        max_images_per_call: Most images the model accepts in one request.
        name: Name recorded in results (default: ``"<provider>:<model name>"``).
        model_retries: How many times the chat model retries a failed request by itself where
            its retries cannot be switched off; read from the model (:func:`chat_model_retries`)
            when None. Pass it for a wrapper whose retries cannot be read.

    ``MLLMReply.requests`` counts HTTP requests: attempts, re-asks and fallbacks, and for a model
    that keeps its own retries, ``1 + model_retries`` for each failure its client retries.
    """

    def __init__(
        self,
        model: Any,
        *,
        methods: Sequence[StructuredMethod] = _ALL_METHODS,
        max_reasks: int = 2,
        retry: RetryPolicy | None = None,
        max_images_per_call: int = 8,
        name: str | None = None,
        model_retries: int | None = None,
    ) -> None:
        unknown = set(methods) - set(_ALL_METHODS)
        if not methods or unknown:
            raise ConfigurationError(f"methods must be a non-empty subset of {_ALL_METHODS}, got {tuple(methods)!r}.")
        self.model = model
        self.methods: tuple[StructuredMethod, ...] = tuple(methods)
        self.max_reasks = max_reasks
        self.retry = retry or RetryPolicy()
        self._stated_retries = model_retries
        self._called: tuple[Any, Any] | None = None  # (self.model, the model the requests go through)
        profile = getattr(model, "profile", None) or {}
        accepts_images = bool(profile.get("image_inputs", True)) if isinstance(profile, dict) else True
        self.capabilities = MLLMCapabilities(max_images_per_call=max_images_per_call, accepts_images=accepts_images)
        self.name = name or self._default_name(model)
        self._working: StructuredMethod | None = None
        self._worked: set[StructuredMethod] = set()  # every method that has returned a valid answer
        self._lock = threading.Lock()
        self._runnables: dict[tuple[StructuredMethod, type[BaseModel], int], Any] = {}
        self._served: dict[tuple[str, str | None], None] = {}  # (model, system fingerprint), in order seen
        register_model_keys(model)  # masked in every message, whatever its shape

    @property
    def called_model(self) -> Any:
        """The chat model the requests go through: :attr:`model`, or its copy without client retries.

        Built once per model (a model swapped into :attr:`model` gets its own).
        """
        model, called = self._called or (None, None)
        if model is not self.model:
            model, called = self.model, without_client_retries(self.model) or self.model
            self._called = (model, called)
        return called

    @property
    def model_retries(self) -> int:
        """Retries the called model still makes by itself: 0 unless its client could not be switched off.

        Each failure of a kind its client retries counts ``1 + model_retries`` of the policy's attempts.
        """
        if self.called_model is not self.model:
            return 0
        return chat_model_retries(self.model) if self._stated_retries is None else max(self._stated_retries, 0)

    @staticmethod
    def _default_name(model: Any) -> str:
        provider = getattr(model, "_llm_type", "chat")
        provider = "openai" if "openai" in str(provider) else str(provider)
        model_name = getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__
        return f"{provider}:{model_name}"

    def __repr__(self) -> str:
        return f"ChatModelMLLM(name={self.name!r}, methods={self.methods!r})"

    def served_by(self) -> list[dict[str, str | None]]:
        """Who answered so far, as the API said in each reply's metadata: every distinct returned
        ``model`` name (e.g. ``gpt-4o-2024-08-06`` for ``gpt-4o``) with its ``system_fingerprint``
        (``None`` where the server gives none), in the order first seen.

        LangChain keeps both in an answer's ``response_metadata``; the benchmark records them in its
        environment manifest, so a silently updated hosted model shows up as a change.
        """
        with self._lock:
            return [{"model": model, "system_fingerprint": fp} for model, fp in self._served]

    def _note_served(self, message: Any) -> None:
        if isinstance(message, dict):
            message = message.get("raw")
        meta = getattr(message, "response_metadata", None) or {}
        model = meta.get("model_name") or meta.get("model")
        if model:
            fingerprint = meta.get("system_fingerprint")
            with self._lock:
                self._served.setdefault((str(model), None if fingerprint is None else str(fingerprint)), None)

    @property
    def method(self) -> StructuredMethod | None:
        """The structured-output method that worked last, once one has."""
        return self._working

    # ------------------------------------------------------------------ protocol

    def prepare_images(self, images: Sequence[Image.Image], *, image_format: ImageFormat = "png") -> None:
        """Encode ``images`` for a later request now (the loop calls this in the background for a
        round's candidates, so the critique does not wait for an encoder)."""
        for image in images:
            to_data_url(image, image_format=image_format)

    def structured(self, messages: Sequence[MLLMMessage], schema: type[SchemaT]) -> MLLMReply[SchemaT]:
        """Ask ``messages`` and return a validated ``schema`` instance (see the module docstring).

        A failure is an :class:`MLLMError` that carries what the call cost (``requests`` and the
        tokens of answers received), so the loop counts every request, failed ones included.
        """
        spent = _Spent()
        try:
            return self._structured(messages, schema, spent)
        except MLLMError as exc:
            exc.requests = spent.requests + exc.requests  # an _invoke failure carries its own attempts
            exc.input_tokens, exc.output_tokens = spent.usage.input_tokens, spent.usage.output_tokens
            raise

    def _structured(self, messages: Sequence[MLLMMessage], schema: type[SchemaT], spent: _Spent) -> MLLMReply[SchemaT]:
        lc_messages = self._to_langchain(messages)
        usage = spent.usage
        requests = 0
        last_error: BaseException | None = None
        methods = list(self.methods)
        if self._working:  # the method that worked before goes first; the others stay as fallbacks
            methods = [self._working, *(m for m in methods if m != self._working)]
        refused: dict[StructuredMethod, _Unsupported] = {}
        for method in methods:
            conversation = list(lc_messages)
            raw_text: str | None = None
            for _ask in range(self.max_reasks + 1):
                try:
                    message, n = self._invoke(method, conversation, schema)
                except _Unsupported as exc:
                    last_error = refused[method] = exc
                    requests += exc.requests
                    spent.requests = requests
                    break
                requests += n
                spent.requests = requests
                usage += self._usage(message)
                spent.usage = usage
                self._note_served(message)
                raw_text, value, problem = self._parse(method, message, schema)
                if value is not None:
                    with self._lock:
                        self._working = method
                        self._worked.add(method)
                    return MLLMReply(value=value, usage=usage, requests=requests)
                if isinstance(problem, _Refused):  # asking again, or another way, would repeat it (and be paid)
                    raise MLLMError(
                        redact(f"{self.name} refused to answer the {schema.__name__} request: {problem}"),
                        backend=self.name,
                    )
                last_error = problem
                conversation = [*conversation, message, self._reask(method, message, problem, schema)]
            else:
                raise StructuredOutputError(
                    redact(
                        f"{self.name} did not return a valid {schema.__name__} after {requests} requests: "
                        f"{_one_line(last_error)}"
                    ),
                    backend=self.name,
                    schema=schema.__name__,
                    attempts=requests,
                    raw_output=redact(raw_text) if raw_text else None,
                )
        images = _count_images(lc_messages)
        limit = (
            f" The request carried {images} images: if the error is about images, the server may limit images "
            "per request (vLLM: --limit-mm-per-prompt)."
            if images > 1
            else ""
        )
        if (rejected := self._rejected(refused)) is not None:
            raise MLLMError(
                redact(
                    f"{self.name} rejected the {schema.__name__} request with HTTP {rejected.code}: "
                    f"{str(rejected).rstrip('.')}. The request itself was refused, not a structured-output "
                    f"method.{limit}"
                ),
                backend=self.name,
            )
        raise MLLMError(
            redact(
                f"{self.name} supports none of the structured-output methods {tuple(methods)} for "
                f"{schema.__name__}; last error: {last_error}. If the server only returns plain text, "
                f"pass ChatModelMLLM(model, methods=['json_text']).{limit}"
            ),
            backend=self.name,
        )

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _rejected(refused: dict[StructuredMethod, _Unsupported]) -> _Unsupported | None:
        """The server's own refusal of the request, when the failed methods show it was not about them.

        A plain ``json_text`` request carries no structured-output parameter, so an HTTP error to it
        is about the request; so is the same HTTP error to every method tried.
        """
        plain = refused.get("json_text")
        if plain is not None and plain.code is not None:
            return plain
        answers = {(e.code, str(e)) for e in refused.values()}
        if len(refused) > 1 and len(answers) == 1 and next(iter(answers))[0] is not None:
            return next(iter(refused.values()))
        return None

    def _to_langchain(self, messages: Sequence[MLLMMessage]) -> list[Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        out: list[Any] = []
        for m in messages:
            if m.role == "system":
                out.append(SystemMessage(content=m.text))
            elif m.images:
                parts: list[str | dict[Any, Any]] = [{"type": "text", "text": m.text}]
                parts += [
                    {"type": "image_url", "image_url": {"url": to_data_url(img, image_format=m.image_format)}}
                    for img in m.images
                ]
                out.append(HumanMessage(content=parts))
            else:
                out.append(HumanMessage(content=m.text))
        return out

    def _runnable(self, method: StructuredMethod, schema: type[BaseModel]) -> Any:
        """The model bound for ``method`` and ``schema``, built once: converting a schema to a strict
        ``response_format`` or a tool costs about a millisecond, on every request's critical path."""
        key = (method, schema, id(self.model))  # a binding keeps its model alive: an id is never reused here
        runnable = self._runnables.get(key)
        if runnable is None:
            runnable = self._runnables[key] = self._bind(method, schema)  # a race builds it twice, harmlessly
        return runnable

    def _bind(self, method: StructuredMethod, schema: type[BaseModel]) -> Any:
        model = self.called_model
        if method == "json_schema":
            if hasattr(model, "root_client") or "openai" in str(getattr(model, "_llm_type", "")):
                # A dict response_format keeps the raw reply (the client does not parse it), so a
                # bad answer can be shown back to the model instead of being lost in an exception.
                return model.bind(response_format=strict_response_format(schema))
            try:
                return model.with_structured_output(schema, method="json_schema", include_raw=True)
            except (NotImplementedError, ValueError, TypeError) as exc:
                raise _unsupported_before_sending(exc) from exc
        if method == "function_calling":
            try:
                return model.bind_tools([schema], tool_choice=schema.__name__)
            except (NotImplementedError, ValueError, TypeError) as exc:
                raise _unsupported_before_sending(exc) from exc
        return model

    def _invoke(self, method: StructuredMethod, conversation: list[Any], schema: type[BaseModel]) -> tuple[Any, int]:
        """Invoke once (plus transient retries); return the raw AI message and the requests made.

        Errors are raised *outside* the ``except`` block and without ``from``: the client's
        exception may carry the API key in its message or body (servers echo it), and a chained
        ``__cause__`` or ``__context__`` would put it back into every printed traceback.
        """
        runnable = self._runnable(method, schema)
        if method == "json_text" and not any(getattr(m, "type", "") == "ai" for m in conversation):
            conversation = self._with_json_instruction(conversation, schema)
        attempts = 0
        sent = 0  # HTTP requests: the model's own retries of a failure included
        cost = self._attempt_cost()

        def once() -> Any:
            nonlocal attempts, sent
            attempts += 1
            try:
                out = runnable.invoke(conversation)
            except BaseException as exc:
                sent += cost(exc)
                raise
            sent += 1
            return out

        try:
            out = self.retry.call(once, cost=cost)
        except Exception as exc:
            failure = self._failure(exc, method, attempts, _count_images(conversation))
            if isinstance(failure, (_Unsupported, MLLMError)):
                failure.requests = sent
        else:
            return out, sent
        raise failure

    def _attempt_cost(self) -> Callable[[BaseException], int]:
        """How many HTTP requests (and policy attempts) a failed invocation made: 1, or ``1 + model_retries``
        when the model keeps its own retries and its client retries that kind of failure."""
        retries = self.model_retries

        def cost(exc: BaseException) -> int:
            return 1 + retries if retries and retried_by_http_client(exc) else 1

        return cost

    def _failure(self, exc: BaseException, method: StructuredMethod, attempts: int, images: int) -> Exception:
        """The redacted error (or ``_Unsupported``) to raise for ``exc``; it never references ``exc``."""
        code = status_code(exc)
        if code is None and _no_choices(exc):
            return MLLMError(
                f"{self.name}: the server returned no choices (an answer with an empty or null 'choices' list); "
                "check the server or gateway at the base URL.",
                backend=self.name,
            )
        if type(exc).__name__ == "ContentFilterFinishReasonError":  # the openai client's, parsing a json_schema reply
            return MLLMError(f"{self.name} refused to answer: {_CONTENT_FILTER}", backend=self.name)
        http = f"HTTP {code}: " if code is not None and str(code) not in str(exc) else ""
        detail = f"{type(exc).__name__}: {http}{exc}"
        if is_transient(exc):
            tries = _plural(attempts, "attempt")
            if self.model_retries and retried_by_http_client(exc):
                tries += f"; the chat model itself retried up to {_plural(self.model_retries, 'time')} per attempt"
            if is_timeout(exc):
                timeout = _model_timeout(self.called_model)
                each = f" of {timeout:g} s" if timeout is not None else ""
                return MLLMError(
                    redact(
                        f"{self.name} timed out: every one of {tries} ran past its timeout{each} ({detail}). "
                        "Check that the server is up and answering, or allow more time (an 'openai:' spec: "
                        "?timeout=SECONDS; ChatOpenAI(timeout=...))."
                    ),
                    backend=self.name,
                )
            return MLLMError(redact(f"{self.name} kept failing after {tries}: {detail}"), backend=self.name)
        if code in (401, 403):
            return MLLMError(
                f"{self.name} refused the credentials (HTTP {code}). Check the API key "
                "(OPENAI_API_KEY) and the base URL.",
                backend=self.name,
            )
        if code == 404:
            return MLLMError(
                redact(
                    f"{self.name}: the server answered 404 (no such model or endpoint): {detail.rstrip('.')}. "
                    "Check the model name and that the base URL ends with /v1."
                ),
                backend=self.name,
            )
        if code in (400, 415, 422) and method in self._worked:
            # This method already worked, so this request itself was refused: falling back to
            # other structured-output methods would only repeat the refusal. (A method that never
            # worked may be unsupported, even after another one worked: concurrent first calls
            # discover the methods at the same time.)
            hint = (
                f" The request carried {images} images: the server may limit images per request (vLLM: "
                f"start it with --limit-mm-per-prompt allowing {images} images, e.g. '{{\"image\": {images}}}')."
                if images > 1
                else ""
            )
            return MLLMError(
                redact(
                    f"{self.name} rejected a {method} request with HTTP {code}, although {method!r} "
                    f"structured output had worked before: {detail.rstrip('.')}.{hint}"
                ),
                backend=self.name,
            )
        if code in (400, 415, 422) or (isinstance(exc, NotImplementedError) and self._working is None):
            return _Unsupported(redact(detail), code=code)
        return MLLMError(redact(f"{self.name} failed: {detail}"), backend=self.name)

    def _with_json_instruction(self, conversation: list[Any], schema: type[BaseModel]) -> list[Any]:
        from langchain_core.messages import HumanMessage

        instruction = (
            f"\n\nAnswer with only a JSON object ({schema.__name__}) that matches this JSON schema, "
            f"no other text:\n{json.dumps(schema.model_json_schema())}"
        )
        last = conversation[-1]
        content = last.content
        if isinstance(content, str):
            new_content: Any = content + instruction
        else:
            new_content = [*content, {"type": "text", "text": instruction}]
        return [*conversation[:-1], HumanMessage(content=new_content)]

    @staticmethod
    def _usage(message: Any) -> TokenUsage:
        if isinstance(message, dict):
            message = message.get("raw")
        meta = getattr(message, "usage_metadata", None) or {}
        return TokenUsage(int(meta.get("input_tokens", 0) or 0), int(meta.get("output_tokens", 0) or 0))

    def _parse(
        self, method: StructuredMethod, message: Any, schema: type[SchemaT]
    ) -> tuple[str | None, SchemaT | None, BaseException | None]:
        """Return ``(raw text, value or None, problem)``."""
        if isinstance(message, dict):  # include_raw output of a generic model
            parsed, raw = message.get("parsed"), message.get("raw")
            if isinstance(parsed, schema):
                return None, parsed, None
            message = raw
        if (refusal := _refusal(message)) is not None:
            return refusal, None, _Refused(refusal)
        tool_calls = getattr(message, "tool_calls", None) or []
        text = _message_text(getattr(message, "content", ""))
        try:
            if tool_calls:
                args = tool_calls[0].get("args")
                return json.dumps(args), schema.model_validate(args), None
            if not text.strip():
                return text, None, ValueError("the reply was empty")
            return text, schema.model_validate(extract_json(text)), None
        except (ValidationError, ValueError) as exc:
            return text or None, None, exc

    def _reask(self, method: StructuredMethod, message: Any, problem: BaseException | None, schema: type) -> Any:
        from langchain_core.messages import HumanMessage, ToolMessage

        note = (
            f"That answer is not a valid {schema.__name__}: {str(problem)[:800]}\n"
            "Answer again, correcting it, with only the requested structure."
        )
        tool_calls = getattr(message, "tool_calls", None) or []
        if method == "function_calling" and tool_calls:
            return ToolMessage(content=note, tool_call_id=tool_calls[0].get("id") or "call")
        return HumanMessage(content=note)
