"""``Repainter``: the front door.

Example:
    A complete run on the offline sandbox world (no key, no GPU, no download):

    >>> from imagerepainter import Repainter
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> reference = render_scene(random_scene(3))
    >>> rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)
    >>> result = rp.run(reference)
    >>> len(result.rounds) <= 3 and result.best.score == max(c.score for c in result.candidates)
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, overload

from .backends.base import MLLM, Scorer, TextToImage, check_loop_backends, check_scorer_reference, describe_backend
from .backends.registry import check_backends, resolve_mllm, resolve_scorer, resolve_t2i
from .config import RepainterConfig
from .errors import BackendError, ConfigurationError
from .events import EVENT_DATA, EventKind
from .image_sources import ImageSourcePolicy, read_source
from .images import ImageInput, ImageStore, MemoryImageStore, load_image, put_image
from .loop.batching import run_batch
from .loop.calls import backend_errors
from .loop.graph import build_graph
from .loop.nodes import AdmittedReference
from .loop.prompts import PROMPT_VERSION
from .loop.review import ReviewAnswer, ReviewRequest
from .loop.sizing import SizedReference, check_run_inputs, reference_side, settings_for_reference, size_for_reference
from .progress import progress_display
from .results import Description, RepaintResult
from .threads import PreparedRun, Threads, ThreadStatus, is_review

if TYPE_CHECKING:
    pass

__all__ = [
    "RepaintEvent",
    "Repainter",
    "SizedReference",
    "ThreadStatus",
    "check_run_inputs",
    "settings_for_reference",
    "size_for_reference",
]

_PER_REPAINTER = ("preset",)
GRAPH_SOURCES = ImageSourcePolicy(roots=None, allow_urls=False, owner="graph")
"""What :meth:`Repainter.as_graph` reads when a parent passes the reference as text: any path (as
:meth:`Repainter.run` does) or a data URL; no downloads."""
"""Settings chosen when a Repainter is built, not per run."""


@dataclass(frozen=True)
class RepaintEvent:
    """One progress event of a streamed run.

    ``kind`` is ``"node"`` (a node finished; ``data`` has ``node`` and ``seconds``), ``"call"``
    (a model call answered: ``node``, ``call`` (its schema), ``seconds``; the describe stage's
    calls arrive one by one as they finish; ``reused`` is true for an answer a resumed node
    already had), ``"described"``, ``"generated"`` (``done`` of
    ``total`` images, after each rendering call: per image for a model that renders one per call;
    ``seconds``, the call's time), ``"round"`` (a round closed: ``scores``, ``best_score``, ``stop_reason``),
    ``"critique"`` (the critique after ``round``: ``edits``, ``is_match``, ``stop`` (it ends the
    run), and ``of_round``, the round of the image it looked at),
    ``"finished"``, or ``"result"`` (the last event; ``result`` holds the :class:`RepaintResult`).

    A run under review (the ``review`` setting) that pauses for a person ends its stream with a
    ``"review"`` event instead: ``data`` is the :class:`~imagerepainter.loop.review.ReviewRequest` (what
    to show the reviewer) and ``result`` the run so far (``result.review`` holds the same request).
    Answer it with :meth:`Repainter.resume` or :meth:`Repainter.stream_resume` (``review=``).

    The kinds are a closed set (:data:`~imagerepainter.events.EventKind`) and each kind's ``data``
    has a type (:data:`~imagerepainter.events.EVENT_DATA`: ``RoundData``, ``CritiqueData``, ...).
    """

    kind: EventKind
    round: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    result: RepaintResult | None = None


class Repainter:
    """Regenerate a reference image: describe it, render, score, critique, revise, until converged.

    Args:
        mllm: The multimodal model: a spec such as ``"openai:gpt-4o-mini"``, any LangChain
            chat model (e.g. ``ChatOpenAI(base_url=...)``), or an :class:`~imagerepainter.backends.MLLM`.
        t2i: The text-to-image model: a spec such as ``"diffusers:stabilityai/sdxl-turbo"``, a
            diffusers pipeline, a :class:`~imagerepainter.backends.TextToImage`, or a callable
            ``fn(prompt, *, seed, ...) -> PIL.Image``.
        scorer: Image-image similarity: ``"paper"`` (0.5 CLIP + 0.5 DINOv2), ``"clip"``,
            ``"dinov2"``, ``"ssim"``, ``"psnr"``, ``"sandbox"`` or a scorer object. Default:
            ``"sandbox"`` when ``mllm`` and ``t2i`` are sandbox specs, else ``"paper"``.
        preset: ``"default"`` or ``"paper"`` (see :mod:`imagerepainter.config`).
        config: Settings; overrides the preset. Keyword ``**settings`` override both.
        store: Where images are kept (default: in memory). Use a ``DirectoryImageStore`` for
            runs that must be resumed in another process. The default store lets a finished
            run go: its result keeps the images it shows (freed with the result), so a
            long-lived Repainter does not grow run after run; a store you pass keeps everything.
        checkpointer: Any LangGraph checkpointer, passed through. Default: an in-memory one,
            so a failed run can be resumed in this process without redoing finished work
            (finished runs are dropped from it; pass your own to keep them).
        history: A LangGraph store (``BaseStore``) for each run's rounds, critiques and call
            log, written once per record outside the checkpoints (:mod:`imagerepainter.loop.history`).
            Default: an in-memory one; pass a persistent one (e.g. ``SqliteStore``) with a
            persistent checkpointer to resume or read runs in another process.
        name: The compiled graph's name (the node name when used as a subgraph).
        durability: LangGraph's durability mode for checkpoints: ``"async"`` (LangGraph's
            default: a step's checkpoint is saved while the next step runs), ``"sync"`` (saved
            before the next step starts, so the checkpointer is current whenever a node runs;
            run folders use it) or ``"exit"`` (only when the run ends or fails).

    Passed-in objects are used as they are. Nothing is called until :meth:`run`.
    """

    def __init__(
        self,
        *,
        mllm: Any,
        t2i: Any,
        scorer: Any = None,
        preset: str = "default",
        config: RepainterConfig | None = None,
        store: ImageStore | None = None,
        checkpointer: Any = None,
        history: Any = None,
        name: str = "imagerepainter",
        durability: Literal["sync", "async", "exit"] | None = None,
        **settings: Any,
    ) -> None:
        base = config if config is not None else RepainterConfig.from_preset(preset)
        self.config = base.with_overrides(**settings)
        # Every spec first (a typo is named as one), then the scorer, then every missing extra in one message.
        scorer = check_backends(mllm=mllm, t2i=t2i, scorer=scorer)
        self.mllm: MLLM = resolve_mllm(mllm)
        self.t2i: TextToImage = resolve_t2i(t2i)
        self.scorer: Scorer = resolve_scorer(scorer)
        check_loop_backends(self.mllm, self.scorer)
        self.store: ImageStore = store if store is not None else MemoryImageStore()
        self._owns_store = store is None
        self._owns_checkpointer = False
        if checkpointer is None:
            from langgraph.checkpoint.memory import InMemorySaver

            checkpointer = InMemorySaver()
            self._owns_checkpointer = True
        self.checkpointer = checkpointer
        self.name = name
        self.durability = durability
        self._owns_history = history is None
        if history is None:
            from langgraph.store.memory import InMemoryStore

            history = InMemoryStore()
        self.history = history
        self._builder, self._nodes = build_graph(
            mllm=self.mllm,
            t2i=self.t2i,
            scorer=self.scorer,
            store=self.store,
            config=self.config,
            history=history,
            admit=partial(self.admit_reference, policy=GRAPH_SOURCES),
        )
        self._graph: Any = self._builder.compile(checkpointer=checkpointer, store=history, name=name)
        self._threads = Threads(
            self._graph,
            config=self.config,
            store=self.store,
            checkpointer=checkpointer,
            history=history,
            backends=lambda: self.backends,
            owns_store=self._owns_store,
            owns_checkpointer=self._owns_checkpointer,
            owns_history=self._owns_history,
            on_idle=self._nodes.idle,
        )

    # ------------------------------------------------------------------ graph access

    def as_graph(self, *, own_checkpointer: bool = True) -> Any:
        """The compiled LangGraph graph (input ``RepaintInput``, output ``RepaintOutput``).

        Add it to a parent graph as a node, or drive it yourself. The input's ``reference`` is
        what :meth:`run` takes (a path, image bytes, a PIL image), a ``data:`` URL, or an image ref
        already in :attr:`store` (``rp.store.put(image)``): the first node reads and checks it
        (:meth:`admit_reference`) and puts it in the store before any model call, and the state
        then holds only the ref. A parent graph compiled with a checkpointer lends it to this
        subgraph, so both persist together (a PIL image cannot be checkpointed: pass its bytes).

        Args:
            own_checkpointer: ``False`` compiles the loop with no checkpointer and no store of its
                own: what a LangGraph server needs (``langgraph dev`` provides both and refuses a
                graph that brings its own; see :mod:`imagerepainter.serve`).
        """
        if own_checkpointer:
            return self._graph
        return self._builder.compile(name=self.name)

    def __repr__(self) -> str:
        cfg = self.config
        names = {kind: info.get("name", "?") for kind, info in self.backends.items()}
        return (
            f"Repainter(mllm={names['mllm']!r}, t2i={names['t2i']!r}, scorer={names['scorer']!r}, "
            f"preset={cfg.preset!r}, max_rounds={cfg.max_rounds}, variants={cfg.variants})"
        )

    def as_tool(
        self,
        *,
        name: str = "repaint_image",
        description: str | None = None,
        allowed_dirs: list[str | os.PathLike[str]] | None = None,
        allow_urls: bool = False,
        save_dir: str | os.PathLike[str] | None = None,
    ) -> Any:
        """This loop as a LangChain tool an agent can call (see :mod:`imagerepainter.tool`).

        Args:
            name: The tool's name, as the model sees it.
            description: What the model is told the tool does.
            allowed_dirs: Folders the model may point the tool at (default: any path).
            allow_urls: Let the model give an ``http(s)`` URL, which the tool downloads (default: off).
            save_dir: Save each result (images and ``result.json``) in a folder below this one.

        The model gives the reference as a path, a ``data:`` URL (or an ``http(s)`` URL when
        ``allow_urls``) and may cap the rounds; it reads
        back the best prompt, score and stop reason, and the tool message carries the whole
        :class:`RepaintResult` as its ``artifact``. A bad path or a failing backend comes back to
        the model as an error message, so the agent goes on.
        """
        from .tool import DESCRIPTION, make_tool

        return make_tool(
            self,
            name=name,
            description=description or DESCRIPTION,
            allowed_dirs=allowed_dirs,
            allow_urls=allow_urls,
            save_dir=save_dir,
        )

    @property
    def backends(self) -> dict[str, Any]:
        """Names and settings of the three backends, as recorded in results."""
        return {
            "mllm": describe_backend(self.mllm),
            "t2i": describe_backend(self.t2i),
            "scorer": describe_backend(self.scorer)
            | {"higher_is_better": self.scorer.higher_is_better, "bounds": list(self.scorer.bounds)},
        }

    # ------------------------------------------------------------------ running

    def config_for(self, **overrides: Any) -> RepainterConfig:
        """The settings a run with ``overrides`` uses: this Repainter's, refined and validated once.

        Raises:
            ConfigurationError: an override is unknown or invalid, or names a setting chosen
                when the Repainter is built (``preset``: build ``Repainter(preset=...)``).
        """
        fixed = [k for k in overrides if k in _PER_REPAINTER]
        if fixed:
            raise ConfigurationError(
                f"{fixed[0]!r} is chosen when the Repainter is built, not per run: use Repainter({fixed[0]}=...) "
                "(or RepainterConfig.from_preset(...)), or override the individual settings."
            )
        return self.config.with_overrides(**overrides)

    def _prepare(
        self,
        reference: ImageInput,
        prompt: str | None,
        thread_id: str,
        overrides: dict[str, Any],
        description: Description | None = None,
    ) -> PreparedRun:
        """Validate everything before any paid call; return the graph input, run config and context."""
        cfg = self.config_for(**overrides)
        if description is not None:
            if prompt is not None:
                raise ConfigurationError("Pass either prompt or description, not both.")
            if not isinstance(description, Description):
                raise ConfigurationError(
                    f"description must be a Description (from Repainter.describe), not {type(description).__name__}."
                )
            prompt = description.prompt
        self._threads.check_new(thread_id)
        admitted = self.admit_reference(reference, cfg, prompt=prompt, owner=thread_id)
        return self._threads.new_run(thread_id, admitted, prompt, description)

    def admit_reference(
        self,
        reference: Any,
        cfg: RepainterConfig,
        *,
        prompt: str | None = None,
        owner: str | None = None,
        policy: ImageSourcePolicy | None = None,
    ) -> AdmittedReference:
        """Read and check a run's reference, size the run to it, and put it in :attr:`store`.

        What every way of starting a run does before any model call: :meth:`run`, a parent graph that
        gives :meth:`as_graph` a path (its ``start`` node calls this), the served graph's ``load``.

        Args:
            reference: A path, image bytes or a PIL image; with ``policy``, also a text reference
                as :func:`~imagerepainter.image_sources.read_source` reads it (a data URL; a path
                only inside the policy's folders).
            cfg: The run's settings (:meth:`config_for`).
            prompt: The run's starting prompt, if any (checked here too).
            owner: The run's thread, which owns the image in the default in-memory store.
            policy: Which text references are accepted (``None``: as :meth:`run` reads them).

        Returns:
            The reference's ref in :attr:`store`, the run's settings sized to it
            (:func:`size_for_reference`), and what was changed on the user's behalf, in words.

        Raises:
            InvalidImageError: the reference is unusable or not allowed.
            ConfigurationError: the prompt, budgets, generation settings or scorer cannot work with it.
        """
        if policy is not None and isinstance(reference, (str, os.PathLike)):
            reference = read_source(os.fspath(reference), policy)
        sized = size_for_reference(cfg, check_run_inputs(cfg, reference, prompt, self.t2i), self.t2i)
        check_scorer_reference(self.scorer, sized.image)
        return AdmittedReference(put_image(self.store, sized.image, owner=owner), sized.config, sized.notes)

    def describe(self, reference: ImageInput, **overrides: Any) -> Description:
        """Run only the Image Understanding stage: the tree of ``reference`` and the prompt from it.

        Pass the result to :meth:`run` (``description=``) to start the loop from it without
        describing again: a benchmark describes each reference once and shares the description
        between text-to-image models.

        Example:
            >>> from imagerepainter.sandbox import random_scene, render_scene
            >>> rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
            >>> reference = render_scene(random_scene(1))
            >>> description = rp.describe(reference)
            >>> result = rp.run(reference, description=description)
            >>> result.initial_prompt == description.prompt, {c["node"] for c in result.calls} & {"describe"}
            (True, set())

        Raises:
            InvalidImageError: the reference is unusable (nothing was called).
            MLLMError: the model failed.
        """
        cfg = self.config_for(**overrides)
        image = load_image(reference, max_pixels=cfg.max_reference_pixels, max_side=reference_side(cfg))
        with backend_errors(BackendError, f"{self.mllm.name} failed", self.mllm.name):
            tree, prompt, calls = self._nodes.describe_image(image, cfg)
        return Description(
            prompt=prompt,
            understanding=dict(tree),
            usage=dict(calls.usage),  # type: ignore[arg-type]
            calls=[dict(c) for c in calls.log],
            prompt_version=PROMPT_VERSION,
            mllm=self.backends["mllm"],
        )

    def run(
        self,
        reference: ImageInput,
        *,
        prompt: str | None = None,
        description: Description | None = None,
        thread_id: str | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> RepaintResult:
        """Regenerate ``reference`` and return the result.

        Args:
            reference: A path, image bytes, or a PIL image. Checked before any model call.
            prompt: Start from this prompt instead of describing the reference.
            description: Start from this description (:meth:`describe`) instead of describing again.
            thread_id: Checkpoint thread; reuse it with :meth:`resume` after a failure.
            progress: Show a progress bar (each describe call, image and round as it finishes; see
                :mod:`imagerepainter.progress`). Default: in a Jupyter kernel and when stderr is a
                terminal; ``False`` turns it off.
            **overrides: Settings for this run only (e.g. ``max_rounds=5``).

        Raises:
            InvalidImageError: the reference is unusable (nothing was called).
            ConfigurationError: an override is unknown or invalid, or ``thread_id`` holds a
                run already or is running now (nothing was called).
            BackendError: a backend failed; ``error.thread_id`` resumes the run and
                ``error.partial_result`` holds the finished rounds.

        A run under review (``review=("prompt", "critique")`` or either) returns when it pauses for a
        person: the result is then not ``finished`` and ``result.review`` says what to review; answer
        with ``resume(result.thread_id, review=...)``, which returns at the next pause or at the end.
        """
        events = self.stream(reference, prompt=prompt, description=description, thread_id=thread_id, **overrides)
        with (  # the bar's length is asked at the first event; a stream left early is closed (frees the thread)
            progress_display(progress, rounds=lambda: self.config_for(**overrides).max_rounds) as show,
            contextlib.closing(events),
        ):
            return _last(events, show)

    def resume(
        self,
        thread_id: str,
        *,
        review: ReviewAnswer | dict[str, Any] | str | None = None,
        progress: bool | None = None,
    ) -> RepaintResult:
        """Continue an interrupted run from its last checkpoint, without redoing finished steps.

        Args:
            thread_id: The run's checkpoint thread.
            review: The answer to the review the run is paused for (:meth:`pending_review`): a
                :class:`~imagerepainter.loop.review.ReviewAnswer`, a dict of its fields (``{"action": "edit",
                "prompt": "...", "by": "ana"}``) or an action alone (``"approve"``, ``"stop"``).
            progress: As in :meth:`run`.

        Raises:
            ReviewError: the run is paused for a review and ``review`` is missing or invalid, or
                ``review`` is given for a run that is not paused (nothing was called).

        Example:
            >>> from imagerepainter.sandbox import random_scene, render_scene
            >>> rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
            >>> paused = rp.run(render_scene(random_scene(4)), review=("prompt",))
            >>> paused.finished, paused.review["kind"], paused.review["round"]
            (False, 'prompt', 1)
            >>> answer = {"action": "edit", "prompt": "a red circle on white", "by": "ana"}
            >>> paused = rp.resume(paused.thread_id, review=answer)  # renders round 1, pauses before round 2
            >>> review = paused.reviews[0]
            >>> paused.rounds[0].prompt, review.get("by")
            ('a red circle on white', 'ana')
            >>> rp.resume(paused.thread_id, review="stop").stop_reason
            'reviewer_stopped'
        """
        events = self.stream_resume(thread_id, review=review)
        with (
            progress_display(progress, rounds=lambda: self._recorded_rounds(thread_id)) as show,
            contextlib.closing(events),
        ):
            return _last(events, show)

    def _recorded_rounds(self, thread_id: str) -> int | None:
        """The most rounds of the run in ``thread_id``, as it recorded them (``None`` before it did)."""
        context = self._threads.resume_config(thread_id).context
        return None if context is None else context.config.max_rounds

    def stream(
        self,
        reference: ImageInput,
        *,
        prompt: str | None = None,
        description: Description | None = None,
        thread_id: str | None = None,
        stop: threading.Event | None = None,
        **overrides: Any,
    ) -> Generator[RepaintEvent, None, None]:
        """Run and yield :class:`RepaintEvent` s as the loop goes; the last one carries the result.

        The stream holds its thread until it ends or is closed. To stop early and resume later,
        close it (``events.close()``) before calling :meth:`resume` with the same thread, or (from
        another thread) set ``stop``: the step in progress finishes and is checkpointed, and the
        stream raises :class:`~imagerepainter.errors.IncompleteRunError` instead of starting the
        next one, so the graph ends on its own terms, between steps. A run under review ends its
        stream with a ``"review"`` event when it pauses for a person.
        """
        with self._threads.claim(thread_id) as claimed:
            run = self._prepare(reference, prompt, claimed, overrides, description)
            yield from self._events(run.with_stop(stop))

    def stream_resume(
        self,
        thread_id: str,
        *,
        review: ReviewAnswer | dict[str, Any] | str | None = None,
        stop: threading.Event | None = None,
    ) -> Generator[RepaintEvent, None, None]:
        """Like :meth:`resume`, yielding :class:`RepaintEvent` s; the last one carries the result (or,
        at the next pause for review, is a ``"review"`` event). ``stop`` as in :meth:`stream`."""
        with self._threads.claim(thread_id):
            prepared = self._threads.resume_config(thread_id)
            answer = self._threads.review_command(thread_id, prepared, review)
            if answer is None:
                self._threads.recover_cancelled_step(prepared.run_config)
            else:
                prepared = PreparedRun(answer, prepared.run_config, prepared.context)
            yield from self._events(prepared.with_stop(stop))

    def _events(self, run: PreparedRun) -> Iterator[RepaintEvent]:
        try:
            for chunk in self._graph.stream(run.graph_input, run.run_config, **self._stream_options(run)):
                yield self._event(chunk)
        except BackendError as exc:
            self._threads.annotate(exc, run)
            raise
        yield self._last_event(run)

    def _stream_options(self, run: PreparedRun) -> dict[str, Any]:
        """How :meth:`stream` and :meth:`astream` stream the graph: its events, saved as this Repainter
        says, with the run's settings as runtime context."""
        return {"stream_mode": "custom", "durability": self.durability, "context": run.context}

    def _last_event(self, run: PreparedRun) -> RepaintEvent:
        """The event that ends a stream once the graph stopped: the pause for review, else the result."""
        return self._pause_event(run) or RepaintEvent(kind="result", result=self._threads.final_result(run))

    # ------------------------------------------------------------------ human review

    def pending_review(self, thread_id: str) -> ReviewRequest | None:
        """What the run in ``thread_id`` waits for a person to review, or ``None`` when it is not paused.

        Works in any process that opens the run's checkpointer, history and image store: the
        request is in the checkpoint (LangGraph keeps an ``interrupt``'s value there).
        """
        return self._threads.pending({"configurable": {"thread_id": thread_id}})

    def _pause_event(self, run: PreparedRun) -> RepaintEvent | None:
        """The ``"review"`` event of a run that paused for a person, else ``None``. A run whose settings
        ask for no review never pauses: nothing is read for it."""
        if run.context is not None and not run.context.config.review:
            return None
        request = self._threads.pending(run.run_config)
        if request is None:
            return None
        result = self._threads.result(run, review=request)
        return RepaintEvent(kind="review", round=request["round"], data=dict(request), result=result)

    def check_review_answer(self, thread_id: str, review: Any) -> ReviewAnswer | None:
        """Check ``review`` against what thread ``thread_id`` waits for, before resuming it: the validated
        answer, or ``None`` for a thread that is not paused (and no answer given).

        Raises:
            ReviewError: the thread is paused and ``review`` is missing or invalid, or ``review`` is
                given for a thread that is not paused.
        """
        return self._threads.checked_answer(thread_id, {"configurable": {"thread_id": thread_id}}, review)

    @overload
    async def abatch(
        self,
        references: Iterable[ImageInput],
        *,
        max_concurrency: int = ...,
        return_exceptions: Literal[False] = ...,
        **overrides: Any,
    ) -> list[RepaintResult]: ...
    @overload
    async def abatch(
        self,
        references: Iterable[ImageInput],
        *,
        max_concurrency: int = ...,
        return_exceptions: Literal[True],
        **overrides: Any,
    ) -> list[RepaintResult | Exception]: ...
    async def abatch(
        self,
        references: Iterable[ImageInput],
        *,
        max_concurrency: int = 4,
        return_exceptions: bool = False,
        **overrides: Any,
    ) -> list[RepaintResult] | list[RepaintResult | Exception]:
        """Regenerate several references, at most ``max_concurrency`` at a time; results in order.

        The runs share this Repainter's loaded models (each is loaded once) and give the same
        results as running them one by one, since every run's seeds come from its own settings.
        The runs show no progress bar. As in LangChain's ``batch``, ``return_exceptions=True``
        returns each failed run's exception in its place, next to the others' results. Without
        it, every run still goes to its end, then a :class:`~imagerepainter.errors.BatchError`
        names the references that failed and keeps every outcome in ``error.results``.

        Example:
            >>> import asyncio
            >>> from imagerepainter.sandbox import random_scene, render_scene
            >>> rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
            >>> references = [render_scene(random_scene(0)), "missing.png"]
            >>> results = asyncio.run(rp.abatch(references, return_exceptions=True))
            >>> results[0].finished, type(results[1]).__name__
            (True, 'InvalidImageError')

        Raises:
            ConfigurationError: ``references`` is one reference (a path, bytes, an image) rather than
                a list, ``max_concurrency`` is below 1, or an override is invalid (nothing ran).
            BatchError: some runs failed and ``return_exceptions`` is off.
        """
        return await run_batch(self.arun, self.config_for, references, max_concurrency, return_exceptions, overrides)

    @overload
    def batch(
        self,
        references: Iterable[ImageInput],
        *,
        max_concurrency: int = ...,
        return_exceptions: Literal[False] = ...,
        **overrides: Any,
    ) -> list[RepaintResult]: ...
    @overload
    def batch(
        self,
        references: Iterable[ImageInput],
        *,
        max_concurrency: int = ...,
        return_exceptions: Literal[True],
        **overrides: Any,
    ) -> list[RepaintResult | Exception]: ...
    def batch(
        self,
        references: Iterable[ImageInput],
        *,
        max_concurrency: int = 4,
        return_exceptions: bool = False,
        **overrides: Any,
    ) -> list[RepaintResult] | list[RepaintResult | Exception]:
        """Blocking :meth:`abatch` (from code that is not already inside an event loop); the same
        arguments, results and errors.

        Raises:
            ConfigurationError: called inside a running event loop (a notebook, an async app):
                ``await rp.abatch(...)`` there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop running: the usual case
            return asyncio.run(
                run_batch(self.arun, self.config_for, references, max_concurrency, return_exceptions, overrides)
            )
        raise ConfigurationError(
            "Repainter.batch() blocks, so it cannot run inside a running event loop (a notebook, an async app): "
            "use `await rp.abatch(references)` there."
        )

    async def arun(
        self,
        reference: ImageInput,
        *,
        prompt: str | None = None,
        description: Description | None = None,
        thread_id: str | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> RepaintResult:
        """Async :meth:`run` (in a notebook: ``result = await rp.arun(reference)``). Reading the
        reference and blocking backends run in worker threads, so the event loop stays free. ``progress``
        as in :meth:`run`."""
        result = None
        events = self.astream(reference, prompt=prompt, description=description, thread_id=thread_id, **overrides)
        with progress_display(progress, rounds=lambda: self.config_for(**overrides).max_rounds) as show:
            async with contextlib.aclosing(events):  # a stream left early is closed (frees the thread)
                async for event in events:
                    if show is not None:
                        show(event)
                    result = event.result
        assert result is not None  # the last event carries it
        return result

    async def astream(
        self,
        reference: ImageInput,
        *,
        prompt: str | None = None,
        description: Description | None = None,
        thread_id: str | None = None,
        **overrides: Any,
    ) -> AsyncGenerator[RepaintEvent, None]:
        """Async :meth:`stream`. To stop early, close it before resuming its thread, e.g. iterate
        inside ``async with contextlib.aclosing(rp.astream(...)) as events:``."""
        with self._threads.claim(thread_id) as claimed:
            run = await asyncio.to_thread(self._prepare, reference, prompt, claimed, overrides, description)
            try:
                async for chunk in self._graph.astream(run.graph_input, run.run_config, **self._stream_options(run)):
                    yield self._event(chunk)
            except BackendError as exc:
                await asyncio.to_thread(self._threads.annotate, exc, run)
                raise
            yield await asyncio.to_thread(self._last_event, run)

    def status(self, thread_id: str) -> ThreadStatus:
        """Where thread ``thread_id`` stands in the checkpointer.

        ``"not_started"``: no checkpoint (also a finished thread dropped from the default
        in-memory checkpointer); ``"interrupted"``: :meth:`resume` continues it; ``"paused"``:
        it waits for a person's review (:meth:`pending_review`), ``resume(thread_id, review=...)``
        continues it; ``"finished"``: :meth:`result_of` holds its result.
        """
        return self._threads.status(thread_id)

    def result_of(self, thread_id: str) -> RepaintResult:
        """The result of thread ``thread_id`` as far as it got (its latest checkpoint); a paused run's
        ``review`` says what it waits for."""
        run = self._threads.resume_config(thread_id)
        return self._threads.result(run, review=self._threads.pending(run.run_config))

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def event_from(chunk: Any) -> RepaintEvent | None:
        """The :class:`RepaintEvent` in a chunk of a graph's ``stream_mode="custom"`` stream, or ``None``.

        A parent graph that runs this one as a subgraph and streams with ``stream_mode="custom",
        subgraphs=True`` receives ``(namespace, chunk)`` pairs: pass either the pair or the chunk.
        A pause for review (the ``review`` setting) arrives in the ``"updates"`` stream mode, as
        LangGraph's ``__interrupt__`` chunk: it becomes a ``"review"`` event whose ``data`` is the
        :class:`~imagerepainter.loop.review.ReviewRequest`.

        Example:
            >>> Repainter.event_from((("repaint:1",), {"event": "round", "round": 2, "best_score": 0.8})).data
            {'round': 2, 'best_score': 0.8}
            >>> Repainter.event_from({"something": "else"}) is None
            True
        """
        if isinstance(chunk, tuple) and len(chunk) == 3:  # (namespace, mode, chunk): several stream modes
            chunk = chunk[2] if chunk[1] in ("custom", "updates") else None
        elif isinstance(chunk, tuple) and len(chunk) == 2:  # (namespace, chunk)
            chunk = chunk[1]
        if isinstance(chunk, dict) and "__interrupt__" in chunk:
            for pending in chunk["__interrupt__"]:
                request = getattr(pending, "value", None)
                if isinstance(request, dict) and is_review(request):
                    return RepaintEvent(kind="review", round=request["round"], data=dict(request))
            return None
        if not isinstance(chunk, dict) or "event" not in chunk:
            return None
        data = dict(chunk)
        kind = data.pop("event")
        if kind not in EVENT_DATA:  # another graph's custom event: not one of ours
            return None
        return RepaintEvent(kind=kind, round=data.get("round"), data=data)

    @classmethod
    def _event(cls, chunk: dict[str, Any]) -> RepaintEvent:
        event = cls.event_from(chunk)
        assert event is not None  # every custom chunk of this graph is one of its events
        return event

    def result_from(self, values: dict[str, Any], *, history: Any = None) -> RepaintResult:
        """The result a run's state holds, e.g. what a parent graph received from this graph as a node.

        A parent needs to declare only ``run_id`` (and the ``reference`` it passes in): the rounds, and
        the output keys it does not declare (``finished``, ``config``, ``usage``, ...), are read from the
        run's history, where the loop's ``finish`` node records them.

        ``history`` is the LangGraph store the run's history went to when it is not this Repainter's
        :attr:`history`: the store a parent graph was compiled with, or the one a LangGraph server
        provides (in a node: ``langgraph.config.get_store()``).

        Example:
            >>> from imagerepainter.sandbox import random_scene, render_scene
            >>> rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
            >>> reference = rp.store.put(render_scene(random_scene(2)))
            >>> output = rp.as_graph().invoke({"reference": reference}, {"configurable": {"thread_id": "t1"}})
            >>> result = rp.result_from(output)
            >>> best = output.get("best")
            >>> result.finished, len(result.rounds) == output.get("round"), result.best.prompt == best.get("prompt")
            (True, True, True)
        """
        return self._threads.result_from(values, history=history)

    def close(self) -> None:
        """Release worker threads (the backends stay loaded for other Repainters).

        Threads already end when no run is running; ``close`` also drops background work not
        started yet. ``with Repainter(...) as rp:`` closes it at the end of the block.
        """
        self._nodes.close()

    def __enter__(self) -> Repainter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _last(events: Iterator[RepaintEvent], on_event: Callable[[RepaintEvent], None] | None = None) -> RepaintResult:
    """Drive ``events`` to the end (showing each to ``on_event``) and return the result the last one carries."""
    result = None
    for event in events:
        if on_event is not None:
            on_event(event)
        result = event.result
    assert result is not None  # the last event carries it
    return result
