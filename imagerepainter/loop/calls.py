"""How the loop's nodes call their backends: the MLLM call runner, the worker threads, and
the wrapping of a backend's own exceptions into the package's errors.

:class:`MLLMCalls` runs one node's MLLM requests (concurrently where independent) on the
:class:`Workers` pool, replays answers a node already received before it was run again, and
tallies usage; :func:`backend_errors` turns any backend failure into a
:class:`~imagerepainter.errors.BackendError` that says where in the loop it happened.
:func:`emit` sends a progress event to LangGraph's custom stream.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypedDict, TypeVar

from PIL import Image
from pydantic import BaseModel

from ..backends.base import MLLM, MLLMMessage
from ..config import RepainterConfig
from ..errors import BackendError, IncompleteRunError, MLLMError, RepainterError
from . import prompts
from .history import FailedCall, RunHistory
from .state import CallRecord, Usage

__all__ = ["Job", "MLLMCalls", "Where", "Workers", "backend_errors", "check_stop", "current_thread_id", "emit"]

SchemaT = TypeVar("SchemaT", bound=BaseModel)


def emit(event: dict[str, Any]) -> None:
    """Send a progress event to LangGraph's custom stream, when there is one."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(event)
    except (RuntimeError, ImportError):  # called outside a graph run
        pass


def current_thread_id() -> str | None:
    """The checkpoint thread of the run in progress: the owner of the images it puts in the store."""
    try:
        from langgraph.config import get_config

        found = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # called outside a graph run
        return None
    return None if found is None else str(found)


def check_stop(runtime: Any, node: str) -> None:
    """Refuse to start ``node`` once the run was asked to stop (the ``stop`` event of LangGraph's
    ``runtime`` context, :attr:`~imagerepainter.loop.nodes.RunContext.stop`).

    Raising here, before the node does anything, ends the graph through LangGraph's own error
    path, at a step boundary: no step is abandoned half-way, so nothing is torn down under a
    running task, and a resume starts exactly this node.
    """
    context = getattr(runtime, "context", None)
    stop = getattr(context, "stop", None)
    if stop is not None and stop.is_set():
        thread_id = current_thread_id() or "?"
        raise IncompleteRunError(
            f"The run in thread {thread_id!r} was stopped before its {node} step; "
            f"Repainter.resume({thread_id!r}) continues it.",
            thread_id=thread_id,
        )


class Where(TypedDict):
    """Where in the loop a backend call happens (the keywords of :func:`backend_errors`)."""

    node: str
    round: int
    call: str


@contextlib.contextmanager
def backend_errors(
    error: type[BackendError],
    what: str,
    backend: str,
    *,
    node: str | None = None,
    round: int = 0,
    call: str = "",
) -> Iterator[None]:
    """Turn a backend's own exception into ``error`` (kept as its cause); ours pass through.

    So every failure reaches the caller as a :class:`BackendError`, which ``Repainter`` annotates
    with the thread id and the work already done. Given a ``node``, every backend error leaving
    the block says where it happened: ``node``, ``round`` and ``call`` (see :meth:`BackendError.at`).
    """
    try:
        yield
    except BackendError as exc:
        if node is not None:
            exc.at(node, round, call)
        raise
    except RepainterError:
        raise
    except Exception as exc:
        wrapped = error(f"{what}: {type(exc).__name__}: {exc}", backend=backend)
        raise (wrapped if node is None else wrapped.at(node, round, call)) from exc


Job = tuple[type[BaseModel], str, Sequence[Image.Image], dict[str, Any]]
"""One request of ``ask_many``: schema, instruction, images and the task data (``MLLMMessage.task``)."""


class Workers:
    """The nodes' worker threads: a thread pool made when work arrives, and let go by :meth:`idle`.

    ``Repainter`` calls :meth:`idle` when its last running run ends, so no thread outlives the
    work (a Repainter built per run leaves none behind, even before garbage collection); the
    next task starts a fresh pool. Work already submitted still finishes.
    """

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="imagerepainter")
            return self._pool.submit(fn, *args)

    def idle(self, *, cancel: bool = False) -> None:
        """Let the threads end once their work is done (``cancel``: drop work not started yet)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=cancel)


class MLLMCalls:
    """Runs MLLM requests (concurrently where independent) and tallies their usage.

    Given the run's ``history``, each answer is recorded there as it arrives, and a node run again
    (after a sibling call failed, or a crash) reuses it instead of asking again; a call that
    fails records what it cost, which the run's ``usage`` counts (:meth:`History.failed_usage`).
    """

    def __init__(
        self,
        mllm: MLLM,
        pool: Workers,
        node: str,
        round_index: int,
        cfg: RepainterConfig,
        history: RunHistory | None = None,
    ) -> None:
        self.mllm, self.pool, self.node, self.round_index = mllm, pool, node, round_index
        self.history = history
        self.system_prompt = cfg.system_prompt
        self.image_format = cfg.mllm_image_format
        self.usage: Usage = {}
        self.log: list[CallRecord] = []
        self._lock = threading.Lock()

    def _key(self, schema: type[BaseModel], text: str, images: Sequence[Image.Image], task: object) -> str:
        """What identifies a request within its node and round: schema, wording, task and image sizes."""
        asked = {"schema": schema.__name__, "text": text, "task": task, "images": [im.size for im in images]}
        return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def _tally(self, record: CallRecord) -> None:
        with self._lock:
            u = self.usage
            u["mllm_calls"] = u.get("mllm_calls", 0) + 1
            u["mllm_requests"] = u.get("mllm_requests", 0) + record["requests"]
            u["input_tokens"] = u.get("input_tokens", 0) + record["input_tokens"]
            u["output_tokens"] = u.get("output_tokens", 0) + record["output_tokens"]
            self.log.append(record)

    def ask(
        self, schema: type[SchemaT], text: str, images: Sequence[Image.Image] = (), task: dict[str, Any] | None = None
    ) -> SchemaT:
        key = self._key(schema, text, images, task) if self.history is not None else ""
        if self.history is not None:
            known = self.history.get_answer(self.node, self.round_index, key)
            if known is not None:  # answered before this node was run again: paid once, counted once
                record, value = known
                answer = schema.model_validate(value)
                self._tally(record)
                self._announce(schema, 0.0, reused=True)
                return answer
        messages = [MLLMMessage(text=text, images=tuple(images), task=task, image_format=self.image_format)]
        if self.system_prompt:
            messages.insert(0, MLLMMessage(role="system", text=prompts.SYSTEM))
        start = time.perf_counter()
        where: Where = {"node": self.node, "round": self.round_index, "call": schema.__name__}
        try:
            with backend_errors(MLLMError, f"{self.mllm.name} failed", self.mllm.name, **where):
                reply = self.mllm.structured(messages, schema)
        except MLLMError as exc:
            if self.history is not None and (exc.requests or exc.input_tokens or exc.output_tokens):
                self.history.put_failed(
                    FailedCall(
                        node=self.node,
                        round=self.round_index,
                        schema=schema.__name__,
                        requests=exc.requests,
                        input_tokens=exc.input_tokens,
                        output_tokens=exc.output_tokens,
                    )
                )
            raise
        seconds = time.perf_counter() - start
        record = CallRecord(
            node=self.node,
            round=self.round_index,
            schema=schema.__name__,
            images=len(images),
            requests=reply.requests,
            input_tokens=reply.usage.input_tokens,
            output_tokens=reply.usage.output_tokens,
            seconds=round(seconds, 6),
        )
        if self.history is not None:
            self.history.put_answer(record, key, reply.value.model_dump(mode="json"))
        self._tally(record)
        self._announce(schema, seconds)
        return reply.value

    def _announce(self, schema: type[BaseModel], seconds: float, *, reused: bool = False) -> None:
        """The ``call`` progress event of an answered call (``reused``: answered before this node ran again)."""
        event = {"event": "call", "node": self.node, "round": self.round_index, "call": schema.__name__}
        emit(event | {"seconds": round(seconds, 3)} | ({"reused": True} if reused else {}))

    def record(self, history: RunHistory) -> dict[str, Any]:
        """Write the call log to the run's history; return the usage to merge into the state."""
        history.put_calls(self.node, self.round_index, self.log)
        return {"usage": self.usage}

    def ask_many(self, jobs: Sequence[Job]) -> list[Any]:
        """Ask independent questions concurrently; results in the order of ``jobs``."""
        return self.gather(self.submit(jobs))

    def submit(self, jobs: Sequence[Job]) -> list[Future[Any]]:
        """Start asking ``jobs`` concurrently; :meth:`gather` their answers."""
        # each worker runs in a copy of this context, so its progress events reach the graph's stream
        return [
            self.pool.submit(contextvars.copy_context().run, self.ask, schema, text, images, task)
            for schema, text, images, task in jobs
        ]

    @staticmethod
    def gather(futures: Sequence[Future[Any]]) -> list[Any]:
        """The answers of ``futures`` in order, once all have ended: when one fails, its siblings
        still finish (and are recorded) before the error stops the node."""
        wait(futures)
        return [f.result() for f in futures]
