"""A Repainter's runs as LangGraph threads: where each stands in the checkpointer, the review it
waits for, its history, and the result its state holds.

:class:`~imagerepainter.Repainter` composes one :class:`Threads` over its compiled graph and
delegates to it everything that reads a run back (``status``, ``result_of``, ``pending_review``,
``result_from``, the result of a run that ends, pauses or fails); the front door itself keeps
preparing and streaming runs.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from langgraph.types import Command

from ._version import __version__
from .config import RepainterConfig, remember_config
from .errors import BackendError, ConfigurationError, IncompleteRunError, ThreadInUseError
from .images import ImageRef, ImageStore, MemoryImageStore
from .loop.graph import recursion_limit
from .loop.history import History, RunHistory
from .loop.nodes import AdmittedReference, RunContext
from .loop.prompts import PROMPT_VERSION
from .loop.review import ReviewAnswer, ReviewError, ReviewRequest, describe_request, parse_answer
from .loop.sizing import config_from_state
from .loop.state import run_finished
from .results import Description, RepaintResult

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

__all__ = ["PreparedRun", "ThreadStatus", "Threads", "images_of", "is_review"]

ThreadStatus = Literal["not_started", "interrupted", "paused", "finished"]
"""Where a run's thread stands; see :meth:`Repainter.status`."""

_MAX_ROUNDS = RepainterConfig.model_fields["max_rounds"].metadata[-1].le
"""The most rounds a run can have: a history read for a state that does not say how many."""


@dataclass(frozen=True)
class PreparedRun:
    """A run ready to stream: the graph input (``None`` to resume), LangGraph's run config, the context."""

    graph_input: dict[str, Any] | Command[Any] | None
    run_config: RunnableConfig
    context: RunContext | None
    """``None`` when resuming a run whose settings are still only in its pending input: the nodes
    then read them from the state once the input is applied."""

    def with_stop(self, stop: threading.Event | None) -> PreparedRun:
        """This run with ``stop`` in its context, so its nodes refuse to start once it is set. A resume
        whose settings are still only in its pending input has no context yet: it runs to its end."""
        if stop is None or self.context is None:
            return self
        return replace(self, context=replace(self.context, stop=stop))


class Threads:
    """Reads a Repainter's runs back from its checkpointer, history and image store.

    ``backends`` gives the backends' names and settings as results record them; the ``owns_*``
    flags say which of the three stores the Repainter made itself (its defaults), which decides
    whether a finished run is dropped from them.
    """

    def __init__(
        self,
        graph: Any,
        *,
        config: RepainterConfig,
        store: ImageStore,
        checkpointer: Any,
        history: Any,
        backends: Callable[[], dict[str, Any]],
        owns_store: bool,
        owns_checkpointer: bool,
        owns_history: bool,
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        self.graph, self.config, self.store, self.checkpointer, self.history = (
            graph,
            config,
            store,
            checkpointer,
            history,
        )
        self.backends = backends
        self.owns_store, self.owns_checkpointer, self.owns_history = owns_store, owns_checkpointer, owns_history
        self.on_idle = on_idle
        """Called when the last running run ends: the nodes let their worker threads go."""
        self._lock = threading.Lock()
        self._active: set[str] = set()  # threads running now

    @contextlib.contextmanager
    def claim(self, thread_id: str | None) -> Iterator[str]:
        """Hold ``thread_id`` (a new one when ``None``) for one run: two runs never share a thread."""
        thread_id = thread_id or uuid.uuid4().hex
        with self._lock:
            if thread_id in self._active:
                raise ThreadInUseError(
                    f"Thread {thread_id!r} is running now in this Repainter; wait for it, or pass another thread_id.",
                    thread_id=thread_id,
                )
            self._active.add(thread_id)
        try:
            yield thread_id
        finally:
            with self._lock:
                self._active.discard(thread_id)
                if not self._active:  # no thread outlives the work, even before garbage collection
                    self.on_idle()

    def check_new(self, thread_id: str) -> None:
        """Refuse to start a run in a thread that already holds one."""
        if self.graph.get_state({"configurable": {"thread_id": thread_id}}).values:
            raise ThreadInUseError(
                f"Thread {thread_id!r} already holds a run. Continue it with resume({thread_id!r}), or pass a new "
                "thread_id.",
                thread_id=thread_id,
            )

    def new_run(
        self, thread_id: str, admitted: AdmittedReference, prompt: str | None, description: Description | None
    ) -> PreparedRun:
        """The graph input, run config and context of a new run whose reference was admitted."""
        cfg = admitted.config
        # The settings go into the first checkpoint too: a resume in a new process rebuilds the context from them.
        graph_input: dict[str, Any] = {"reference": admitted.ref, "prompt": prompt, "config": remember_config(cfg)}
        if admitted.notes:
            graph_input["notes"] = admitted.notes
        if description is not None:
            graph_input["understanding"] = description.understanding
        run_config: RunnableConfig = {
            "configurable": {"thread_id": thread_id},
            "recursion_limit": recursion_limit(cfg),
        }
        return PreparedRun(graph_input, run_config, RunContext(config=cfg))

    def review_command(self, thread_id: str, run: PreparedRun, review: Any) -> Command[Any] | None:
        """The ``Command(resume=...)`` that answers the thread's pending review (validated here, before
        anything runs), or ``None`` for a thread that waits for no review."""
        answer = self.checked_answer(thread_id, run.run_config, review)
        return None if answer is None else Command(resume=answer.model_dump(exclude_none=True))

    def pending(self, run_config: RunnableConfig) -> ReviewRequest | None:
        for pending in self.graph.get_state(run_config).interrupts:
            if is_review(pending.value):
                return pending.value  # type: ignore[no-any-return]
        return None

    def checked_answer(self, thread_id: str, run_config: RunnableConfig, review: Any) -> ReviewAnswer | None:
        request = self.pending(run_config)
        if request is None:
            if review is not None:
                raise ReviewError(
                    f"Thread {thread_id!r} is not paused for a review ({self.status(thread_id)}); resume it "
                    "without review=."
                )
            return None
        if review is None:
            raise ReviewError(
                f"Thread {thread_id!r} is paused for a review of {describe_request(request)}: answer it with "
                f"resume({thread_id!r}, review={{'action': 'approve'}}), or 'edit' with a prompt, or 'stop' "
                f"(pending_review({thread_id!r}) shows what to review)."
            )
        return parse_answer(review, request)

    def recover_cancelled_step(self, run_config: RunnableConfig) -> None:
        """Re-route a run whose last step was cancelled around its end, so resume continues it.

        Closing an ``astream`` half-way cancels the running step. When the step had already
        saved its writes, LangGraph records it as failed *with* those writes, but without the
        routing to the next node; a resume then ends with nothing scheduled although the run
        is not finished. Applying the step's writes as that node (``update_state(...,
        as_node=...)``), or only re-running its routing once they are applied, continues the
        run exactly where it was.
        """
        snapshot = self.graph.get_state(run_config)
        if snapshot.next or not snapshot.values or run_finished(snapshot.values):
            return
        for task in snapshot.tasks:  # cancelled with its writes saved, not yet applied
            if task.error is not None and isinstance(task.result, dict) and task.result:
                self.graph.update_state(run_config, task.result, as_node=task.name)
                return
        if not snapshot.tasks and snapshot.parent_config:  # writes applied, routing lost
            ran = [t.name for t in self.graph.get_state(snapshot.parent_config).tasks]
            if len(ran) == 1:
                self.graph.update_state(run_config, None, as_node=ran[0])

    def status(self, thread_id: str) -> ThreadStatus:
        """Where thread ``thread_id`` stands in the checkpointer.

        ``"not_started"``: no checkpoint (also a finished thread dropped from the default
        in-memory checkpointer); ``"interrupted"``: :meth:`resume` continues it; ``"paused"``:
        it waits for a person's review (:meth:`pending_review`), ``resume(thread_id, review=...)``
        continues it; ``"finished"``: :meth:`result_of` holds its result.
        """
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        if not snapshot.values:
            return "not_started"
        if run_finished(snapshot.values):
            return "finished"
        return "paused" if any(is_review(i.value) for i in snapshot.interrupts) else "interrupted"

    def resume_config(self, thread_id: str) -> PreparedRun:
        """Rebuild a run's context from its checkpoint (the settings it recorded, not today's)."""
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        if not snapshot.values:
            raise ConfigurationError(f"No checkpoint for thread {thread_id!r}; nothing to resume.")
        recorded = snapshot.values.get("config")
        if not recorded:  # crashed right after the input: its settings are in the input the resume applies
            limit = recursion_limit(self.config.with_overrides(max_rounds=_MAX_ROUNDS))
            return PreparedRun(None, {"configurable": {"thread_id": thread_id}, "recursion_limit": limit}, None)
        cfg = config_from_state(recorded)
        run_config: RunnableConfig = {"configurable": {"thread_id": thread_id}, "recursion_limit": recursion_limit(cfg)}
        return PreparedRun(None, run_config, RunContext(config=cfg))

    def state(self, run_config: RunnableConfig) -> dict[str, Any]:
        return dict(self.graph.get_state(run_config).values)

    def final_result(self, run: PreparedRun) -> RepaintResult:
        """The finished run's result. A finished thread is dropped from the default in-memory
        checkpointer (it exists to resume failed runs; kept threads would grow without bound)."""
        run_config = run.run_config
        result = self.result(run)
        if not result.finished:  # the graph stopped early without a backend error: keep the thread
            thread_id = run_config["configurable"]["thread_id"]
            raise IncompleteRunError(
                f"The run in thread {thread_id!r} stopped before it finished ({len(result.rounds)} rounds done; "
                f"a step was cancelled or interrupted). Repainter.resume({thread_id!r}) continues it.",
                thread_id=thread_id,
            )
        if self.owns_checkpointer:
            thread_id = run_config["configurable"]["thread_id"]
            self.checkpointer.delete_thread(thread_id)
            if self.owns_history and result.run_id:
                RunHistory(self.history, result.run_id).delete()
            if self.lets_runs_go() and isinstance(self.store, MemoryImageStore):
                self.store.release(thread_id)  # the Repainter's default store lets the finished run go
        return result

    def lets_runs_go(self) -> bool:
        """Whether this Repainter's store drops a finished run's images (its default in-memory store, with
        its default checkpointer, which drops the finished thread too). Every result it returns (finished,
        partial or paused) then holds its own images (:meth:`MemoryImageStore.subset`)."""
        return self.owns_store and self.owns_checkpointer and isinstance(self.store, MemoryImageStore)

    def result_from(self, values: dict[str, Any], *, history: Any = None) -> RepaintResult:
        """The result a run's state holds (:meth:`Repainter.result_from`)."""
        found = self.history_of(values, history)
        if found.outcome:  # a parent graph declares only some output keys: the run recorded them all
            values = found.outcome | dict(values)
        return RepaintResult.from_state(
            values,
            history=found,
            store=self.store,
            backends=self.backends(),
            prompt_version=PROMPT_VERSION,
            library_version=__version__,
        )

    def history_of(self, values: dict[str, Any], history: Any = None) -> History:
        """The run's history up to the state's round (every round when the state does not say, as in a
        parent graph that declares ``run_id`` alone), from ``history`` (default: :attr:`history`)."""
        run_id = values.get("run_id")
        rounds = values.get("round", _MAX_ROUNDS)
        store = self.history if history is None else history
        return RunHistory(store, run_id).read(rounds=rounds) if run_id else History()

    def result(self, run: PreparedRun, *, review: ReviewRequest | None = None) -> RepaintResult:
        values = self.state(run.run_config)
        result = RepaintResult.from_state(
            values,
            history=self.history_of(values),
            review=review,
            config=run.context.config if run.context is not None else None,
            store=self.store,
            backends=self.backends(),
            thread_id=run.run_config["configurable"]["thread_id"],
            prompt_version=PROMPT_VERSION,
            library_version=__version__,
        )
        if self.lets_runs_go() and isinstance(self.store, MemoryImageStore):
            # the result keeps its own images: the store lets the run go once it finishes
            result.bind(self.store.subset(images_of(result)))
        return result

    def annotate(self, exc: BackendError, run: PreparedRun) -> BackendError:
        """Attach what was already paid for to a backend failure, so nothing is lost."""
        thread_id = run.run_config["configurable"]["thread_id"]
        exc.thread_id = thread_id
        try:
            state = self.state(run.run_config)
            exc.partial_result = self.result(run) if state.get("reference") else None
        except Exception:
            exc.partial_result = None
        exc.add_note(f"Finished work is kept: Repainter.resume({thread_id!r}) continues this run.")
        return exc


def images_of(result: RepaintResult) -> list[ImageRef]:
    """Every image a result shows: the reference, every candidate, the pending ones."""
    return [result.reference, *(c.image_ref for c in result.candidates), *(c.image_ref for c in result.pending)]


def is_review(value: Any) -> bool:
    return isinstance(value, dict) and value.get("kind") in ("prompt", "critique")
