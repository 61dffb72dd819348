"""The loop's nodes: thin adapters between the state and the backends.

:class:`LoopNodes` holds the backends and the image store; each method is one graph node
taking the state and returning a partial state. Decisions live in pure modules
(:mod:`~imagerepainter.loop.routing`, :mod:`~imagerepainter.loop.convergence`,
:mod:`~imagerepainter.loop.selection`, :mod:`~imagerepainter.loop.understanding`); prompt wording
lives in :mod:`~imagerepainter.loop.prompts`.

Nodes emit progress through LangGraph's stream writer (``stream_mode="custom"``), one event
per round and per node, so ``Repainter.stream`` works the same way inside a parent graph.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore
from langgraph.types import interrupt
from PIL import Image
from pydantic import BaseModel

from .._memo import LRU
from ..backends.base import MLLM, GeneratedImage, GenerationRequest, Scorer, TextToImage, batches
from ..config import RepainterConfig
from ..errors import (
    BackendError,
    ConfigurationError,
    GenerationError,
)
from ..images import ImageRef, ImageStore, is_image_ref, put_image, shrink
from . import prompts, schemas
from .calls import Job, MLLMCalls, Where, Workers, backend_errors, check_stop, current_thread_id, emit
from .convergence import Progress, decide_stop, mllm_calls_per_round, round_size, stop_after_critique
from .history import RunHistory
from .review import (
    ANSWER_SCHEMA,
    ReviewAnswer,
    ReviewCandidate,
    ReviewError,
    ReviewKind,
    ReviewRecord,
    ReviewRequest,
    parse_answer,
)
from .routing import clean_variants, round_prompts, seed_for
from .selection import best_index, better
from .sizing import config_from_state
from .state import CandidateRecord, CritiqueRecord, RepaintOutput, RepaintState, RoundRecord
from .understanding import UnderstandingTree, assemble_prompt

__all__ = ["Admit", "AdmittedReference", "LoopNodes", "RunContext"]

_INTERRUPT_TAKES_SCHEMA = "response_schema" in inspect.signature(interrupt).parameters
"""Recent LangGraph versions show clients the JSON Schema of the answer an interrupt expects."""

_DETAILS: dict[str, type[BaseModel]] = {
    "person": schemas.PersonDetails,
    "animal": schemas.AnimalDetails,
    "object": schemas.ThingDetails,
}


@dataclass(frozen=True)
class RunContext:
    """What a run's nodes share besides the state (LangGraph runtime context).

    ``Repainter`` validates the run's settings once, where the run is prepared, and passes
    them here; the dumped copy in the state (``state["config"]``) exists only so a resume in a
    new process can rebuild this context.
    """

    config: RepainterConfig
    """The run's effective settings."""
    stop: threading.Event | None = None
    """Set (from any thread) to stop the run before its next node: the node in progress finishes
    and is checkpointed, the next one raises :class:`~imagerepainter.errors.IncompleteRunError`
    instead of starting (``Repainter.stream(stop=...)``)."""


class AdmittedReference(NamedTuple):
    """A run's reference once read, checked and stored (``Repainter.admit_reference``)."""

    ref: ImageRef
    """The reference in the image store."""
    config: RepainterConfig
    """The run's settings, sized to the reference."""
    notes: list[str]
    """What was changed on the user's behalf, in words (the result's ``notes``)."""


class Admit(Protocol):
    """Reads a reference given in the graph's input (a path, bytes, a PIL image, a data URL), checks
    it as a run's input, and puts it in the image store on behalf of ``owner``
    (``Repainter.admit_reference``)."""

    def __call__(
        self, reference: Any, cfg: RepainterConfig, *, prompt: str | None, owner: str | None
    ) -> AdmittedReference: ...


def _reference(state: RepaintState) -> ImageRef:
    """The run's reference, an image ref once ``start`` has run (it stores one given otherwise)."""
    return cast(ImageRef, state["reference"])


@dataclass(frozen=True)
class _Step:
    """What a node needs besides the state: the run's settings and its history."""

    config: RepainterConfig
    history: RunHistory


def _timed(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Give the node its settings and history; add its wall time to ``timings``; announce it."""

    def wrap(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def node(self: LoopNodes, state: RepaintState, runtime: Runtime[RunContext]) -> dict[str, Any]:
            check_stop(runtime, name)
            start = time.perf_counter()
            run_id = state.get("run_id") or uuid.uuid4().hex  # fixed by start, the first node
            step = _Step(self._config(state, runtime), RunHistory(self._history_store(runtime), run_id))
            update = fn(self, state, step)
            seconds = time.perf_counter() - start
            update["timings"] = {name: seconds}
            emit({"event": "node", "node": name, "round": state.get("round", 0) + 1, "seconds": seconds})
            return update

        node.__name__ = node.__qualname__ = name
        node.__doc__ = fn.__doc__
        return node

    return wrap


class LoopNodes:
    """The graph's nodes, closed over the backends (see :func:`imagerepainter.loop.graph.build_graph`)."""

    def __init__(
        self,
        *,
        mllm: MLLM,
        t2i: TextToImage,
        scorer: Scorer,
        store: ImageStore,
        config: RepainterConfig,
        history: BaseStore | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.mllm, self.t2i, self.scorer, self.store, self.config = mllm, t2i, scorer, store, config
        self.admit = admit
        """Reads a reference that the graph's input gives as other than an image ref (``None``: refuse it)."""
        self.history = history if history is not None else InMemoryStore()
        """Where run histories go when the graph runs without a LangGraph store of its own."""
        self.pool = Workers(config.max_concurrency)
        """The worker threads of the nodes' concurrent calls and background preparation."""
        self._prepared = LRU[str, Future[Any]](32)
        self._views = LRU[tuple[str, int], Future[Image.Image]](16)

    # ------------------------------------------------------------------ helpers

    def settings(self, state: RepaintState) -> RepainterConfig:
        """The run's settings as the routing reads them: recorded in the state, or before they are
        recorded, the base settings refined by the input's ``overrides`` (LangGraph also routes in
        ``update_state``, without a runtime context)."""
        return self._config(state, None)

    def _config(self, state: RepaintState, runtime: Runtime[RunContext] | None) -> RepainterConfig:
        """The run's settings: from the runtime context (``Repainter`` validated them once). In a
        parent graph that passes no context: the recorded ``state["config"]``, or before it is
        recorded, the base settings refined by the input's ``overrides``."""
        context = getattr(runtime, "context", None)
        if isinstance(context, RunContext):
            return context.config
        if "config" in state:
            return config_from_state(state["config"])
        return self.config.with_overrides(**(state.get("overrides") or {}))

    def _history_store(self, runtime: Runtime[RunContext] | None) -> BaseStore:
        store = getattr(runtime, "store", None)
        return store if isinstance(store, BaseStore) else self.history

    def _mllm_view(self, ref: ImageRef, max_side: int) -> Image.Image:
        """The image as sent to the model, the same object for the same (image, size): its
        encoding for a request is then computed once (:func:`~imagerepainter.images.to_data_url`)."""
        view, mine = self._views.future((ref["sha256"], max_side), Future)
        if mine:  # computed once, by whoever asks first (usually the background preparation)
            try:
                view.set_result(shrink(self.store.get(ref), max_side))
            except BaseException as exc:
                view.set_exception(exc)
        return view.result()

    def _prepare_for_critique(self, refs: Sequence[ImageRef], cfg: RepainterConfig) -> None:
        """Let the MLLM prepare a round's candidates (e.g. encode them) in the background, while
        they are scored: one task per candidate, so the one the critique needs never waits behind the others."""
        prepare = getattr(self.mllm, "prepare_images", None)
        if callable(prepare):

            def one(ref: ImageRef) -> None:
                prepare([self._mllm_view(ref, cfg.mllm_image_max_side)], image_format=cfg.mllm_image_format)

            for ref in refs:
                self.pool.submit(one, ref)

    def prepared_reference(self, ref: Any) -> Future[Any]:
        """The scorer's prepared reference, computed once per reference (in the background)."""
        future, _ = self._prepared.future(
            ref["sha256"], lambda: self.pool.submit(lambda: self.scorer.prepare(self.store.get(ref)))
        )
        return future

    # ------------------------------------------------------------------ nodes

    def _admitted(self, state: RepaintState, cfg: RepainterConfig) -> AdmittedReference | None:
        """The run's reference read, checked and stored, with its settings sized to it, when the input
        gives it other than as an image ref (else ``None``). A parent graph may give it as
        :meth:`Repainter.run <imagerepainter.Repainter.run>` takes it (a path, bytes, a PIL image) or
        as a data URL: it is admitted here, before any model call, as ``Repainter.run`` admits it."""
        reference: Any = state.get("reference")
        if is_image_ref(reference):
            return None
        if self.admit is None or reference is None:
            raise ConfigurationError(
                "The graph's input needs 'reference': an image ref from rp.store.put(image), or (in a graph from "
                "Repainter.as_graph()) a file path, image bytes, a PIL image or a data URL; got "
                f"{type(reference).__name__}."
            )
        return self.admit(reference, cfg, prompt=state.get("prompt"), owner=current_thread_id())

    @_timed("start")
    def start(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Fix the run's id and record its settings (for a resume in a new process); start from a given
        prompt. A reference given as a path, bytes, an image or a data URL is read and stored first."""
        admitted = self._admitted(state, step.config)
        reference, cfg = (_reference(state), step.config) if admitted is None else admitted[:2]
        update: dict[str, Any] = {
            "run_id": step.history.run_id,
            "config": cfg.model_dump(mode="json"),
            "round": 0,
            "round_prompts": [],
            "pending": [],
            "best": None,
            "round_best": None,
            "best_scores": [],
        }
        if admitted is not None:  # the state holds the ref from now on, and what sizing changed
            update |= {"reference": admitted.ref, **({"notes": admitted.notes} if admitted.notes else {})}
        if state.get("prompt"):  # a given prompt, perhaps with the tree it came from (Repainter.describe)
            step.history.put_understanding(state.get("understanding"))
            update |= {"initial_prompt": state["prompt"], "understanding": None}
        # Load the scorer's models before any paid call, so a missing model fails first; embedding
        # the reference then overlaps with the description calls that follow.
        load = getattr(self.scorer, "load", None)
        if callable(load):
            what = f"The scorer {self.scorer.name} could not load"
            with backend_errors(BackendError, what, self.scorer.name, node="start", round=0, call="load scorer"):
                load()
        self.prepared_reference(reference)
        return update

    @_timed("describe")
    def describe(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Build the Image Understanding Tree (independent calls concurrently), then the first prompt."""
        cfg = step.config
        calls = MLLMCalls(self.mllm, self.pool, "describe", 0, cfg, step.history)
        tree, prompt = self.understand(self._mllm_view(_reference(state), cfg.mllm_image_max_side), cfg, calls)
        step.history.put_understanding(dict(tree))
        return {"prompt": prompt, "initial_prompt": prompt, **calls.record(step.history)}

    def describe_image(self, reference: Image.Image, cfg: RepainterConfig) -> tuple[UnderstandingTree, str, MLLMCalls]:
        """The Image Understanding stage outside a run (``Repainter.describe``): the tree, the prompt
        and the calls that made them (their ``usage`` and ``log``); nothing is recorded."""
        calls = MLLMCalls(self.mllm, self.pool, "describe", 0, cfg)
        tree, prompt = self.understand(reference, cfg, calls)
        return tree, prompt, calls

    def understand(
        self, reference: Image.Image, cfg: RepainterConfig, calls: MLLMCalls
    ) -> tuple[UnderstandingTree, str]:
        """The Image Understanding stage: the tree of ``reference`` and the prompt rewritten from it.

        The object list is asked first; once it answers, one detail call per object and the
        relations run concurrently (level 2), while the global description and global features,
        which only the rewrite needs, run beside both levels; the rewrite is the third level.
        """
        ref = (shrink(reference, cfg.mllm_image_max_side),)  # one object: encoded once for every request
        listed: list[Future[Any]] = []
        if cfg.max_objects > 0:  # first: the second level waits for it
            text = prompts.OBJECT_LIST.format(max_objects=cfg.max_objects)
            listed = calls.submit(
                [(schemas.ObjectList, text, ref, {"kind": "object_list", "max_objects": cfg.max_objects})]
            )
        overall = calls.submit(
            [
                (schemas.GlobalDescription, prompts.GLOBAL_DESCRIPTION, ref, {"kind": "global_description"}),
                (schemas.GlobalFeatures, prompts.GLOBAL_FEATURES, ref, {"kind": "global_features"}),
            ]
        )
        try:
            objects = list(calls.gather(listed)[0].objects[: cfg.max_objects]) if listed else []
        except BaseException:
            wait(overall)  # answered siblings are recorded before the node stops
            raise

        detail_jobs: list[Job] = [
            (
                _DETAILS[o.type],
                prompts.OBJECT_DETAILS.format(name=o.name, type=o.type),
                ref,
                {"kind": "object_details", "object": {"name": o.name, "type": o.type}},
            )
            for o in objects
        ]
        if len(objects) > 1:
            names = "; ".join(o.name for o in objects)
            task = {"kind": "relationships", "objects": [o.name for o in objects]}
            detail_jobs.append((schemas.Relationships, prompts.RELATIONSHIPS.format(names=names), ref, task))
        details = calls.submit(detail_jobs)
        description, features = calls.gather(overall)
        detail_answers = calls.gather(details)
        relationships = detail_answers.pop().relationships if len(objects) > 1 else []

        tree = UnderstandingTree(
            global_description=description.description,
            global_features=features.model_dump(),
            objects=[
                {"name": o.name, "type": o.type, "attributes": d.model_dump()}
                for o, d in zip(objects, detail_answers, strict=True)
            ],
            relationships=list(relationships),
        )
        assembled = assemble_prompt(tree)
        rewrite = prompts.REWRITE.format(
            description=assembled, style=prompts.style_hint(cfg.prompt_style, cfg.prompt_words)
        )
        task = {"kind": "rewrite", "description": assembled, "style": cfg.prompt_style}
        prompt = calls.ask(schemas.PromptRewrite, rewrite, (), task).prompt.strip()
        emit({"event": "described", "prompt": prompt, "objects": [o.name for o in objects]})
        return tree, prompt

    def round_plan(self, state: RepaintState, cfg: RepainterConfig) -> tuple[bool, int]:
        """``(current prompt included, variants wanted)`` for the next round (pure: settings and scores)."""
        size = round_size(cfg, state.get("best_scores", []), higher_is_better=self.scorer.higher_is_better)
        return cfg.candidates_in_round(state.get("round", 0) + 1, size)

    @_timed("propose")
    def propose(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Ask for the variants the next round needs and nobody proposed yet (the graph comes here only then)."""
        cfg = step.config
        _, wanted = self.round_plan(state, cfg)
        prompt = state["prompt"] or ""
        variants = clean_variants(state.get("round_prompts"))[:wanted]
        calls = MLLMCalls(self.mllm, self.pool, "propose", state.get("round", 0) + 1, cfg, step.history)
        missing = wanted - len(variants)
        if missing > 0:
            style = prompts.style_hint(cfg.prompt_style, cfg.prompt_words)
            text = prompts.VARIANTS.format(count=missing, prompt=prompt, style=style)
            task = {"kind": "variants", "prompt": prompt, "count": missing, "style": cfg.prompt_style}
            answer = calls.ask(schemas.PromptVariants, text, (), task)
            variants += clean_variants(list(answer.prompts))[:missing]
        return {"round_prompts": variants, **calls.record(step.history)}

    @_timed("generate")
    def generate(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Render the round's candidates (the current prompt and/or its variants), batched as far as the
        backend allows, each with a recorded seed."""
        cfg = step.config
        started = time.time()
        round_index = state.get("round", 0) + 1
        include, wanted = self.round_plan(state, cfg)
        candidates = state.get("approved_prompts") or round_prompts(
            state["prompt"] or "", state.get("round_prompts") or [], include=include, wanted=wanted
        )
        settings = cfg.generation
        requests = [
            GenerationRequest.of(prompt, seed=seed_for(cfg.seed, round_index, i, vary=cfg.vary_seed), settings=settings)
            for i, prompt in enumerate(candidates)
        ]
        outputs: list[GeneratedImage] = []
        owner = current_thread_id()
        refs: list[ImageRef] = []
        for batch in batches(requests, self.t2i.capabilities.max_batch_size):  # the loop owns batching
            where: Where = {"node": "generate", "round": round_index, "call": "generate"}
            call_started = time.perf_counter()
            with backend_errors(GenerationError, f"{self.t2i.name} failed", self.t2i.name, **where):
                images = self.t2i.generate(batch)
            if len(images) != len(batch):
                raise GenerationError(
                    f"{self.t2i.name} returned {len(images)} images for {len(batch)} requests.", backend=self.t2i.name
                ).at(**where)
            outputs.extend(images)
            seconds = round(time.perf_counter() - call_started, 3)  # after each call: per image for a one-image model
            # stored before the event: the stream's reader wakes at the event and would compete with hashing
            refs += [put_image(self.store, out.image, owner=owner) for out in images]
            emit(
                {
                    "event": "generated",
                    "round": round_index,
                    "done": len(outputs),
                    "total": len(requests),
                    "seconds": seconds,
                }
            )
        self._prepare_for_critique(refs, cfg)
        pending: list[CandidateRecord] = [
            CandidateRecord(
                round=round_index,
                index=i,
                prompt=r.prompt,
                seed=r.seed,
                image=ref,
                blocked=out.blocked,
                score=None,
                scores={},
            )
            for i, (r, out, ref) in enumerate(zip(requests, outputs, refs, strict=True))
        ]
        blocked = sum(c["blocked"] for c in pending)
        return {
            "pending": pending,
            "round_started": started,
            "usage": {"images": len(pending), "blocked_images": blocked},
        }

    @_timed("score")
    def score(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Score the round's unblocked candidates in one batch against the prepared reference, then
        close the round: its best, the best so far, and whether to stop (pure policy)."""
        what = f"The scorer {self.scorer.name} could not prepare the reference"
        round_index = state.get("round", 0) + 1
        with backend_errors(
            BackendError, what, self.scorer.name, node="score", round=round_index, call="prepare reference"
        ):
            prepared = self.prepared_reference(_reference(state)).result()
        pending = [CandidateRecord(**c) for c in state["pending"]]
        live = [c for c in pending if not c["blocked"]]
        if live:
            components: dict[str, list[float]] = {}
            where: Where = {"node": "score", "round": round_index, "call": "score"}
            with backend_errors(BackendError, f"The scorer {self.scorer.name} failed", self.scorer.name, **where):
                images = [self.store.get(c["image"]) for c in live]
                score_components = getattr(self.scorer, "score_components", None)
                combine = getattr(self.scorer, "combine", None)
                if callable(score_components) and callable(combine):  # a composite: keep its parts too
                    components = dict(score_components(prepared, images))
                    scores = combine(components)
                else:
                    scores = self.scorer.score(prepared, images)
            if len(scores) != len(live):
                raise BackendError(
                    f"The scorer {self.scorer.name} returned {len(scores)} scores for {len(live)} images.",
                    backend=self.scorer.name,
                ).at(**where)
            values = [float(s) for s in scores]
            if not all(math.isfinite(v) for v in values):
                raise BackendError(
                    f"The scorer {self.scorer.name} returned a non-finite score ({values}); a NaN or infinite score "
                    "cannot be ranked. Check the scorer (e.g. an all-black image gives a zero embedding).",
                    backend=self.scorer.name,
                ).at(**where)
            for i, (c, v) in enumerate(zip(live, values, strict=True)):
                c["score"] = v
                c["scores"] = {name: float(part[i]) for name, part in components.items()}
        return self._close_round(state, step, pending)

    def _close_round(self, state: RepaintState, step: _Step, pending: list[CandidateRecord]) -> dict[str, Any]:
        """Record the scored round in the history; keep its best and the best so far; decide whether to stop."""
        cfg = step.config
        hib = self.scorer.higher_is_better
        index = state.get("round", 0) + 1
        round_best = best_index([c["score"] for c in pending], higher_is_better=hib)
        best = state.get("best")
        if round_best is not None:
            s = pending[round_best]["score"]
            assert s is not None
            if best is None or best["score"] is None or better(s, best["score"], higher_is_better=hib):
                best = pending[round_best]
        best_so_far = None if best is None else best["score"]
        step.history.put_round(
            RoundRecord(
                index=index,
                prompt=state["prompt"] or "",
                candidates=list(pending),
                best_index=round_best,
                best_score_so_far=best_so_far,
                seconds=round(time.time() - state.get("round_started", time.time()), 6),
            )
        )
        best_scores = [*state.get("best_scores", []), best_so_far]
        usage = state.get("usage", {})
        progress = Progress(
            best_scores=best_scores,
            images_used=int(usage.get("images", 0)),
            mllm_calls_used=int(usage.get("mllm_calls", 0)),
            seconds_used=sum(state.get("timings", {}).values()),
            images_per_round=round_size(cfg, best_scores, higher_is_better=hib),
            mllm_calls_per_round=mllm_calls_per_round(cfg),
        )
        reason = decide_stop(progress, cfg, higher_is_better=hib)
        closed: dict[str, Any] = {"approved_prompts": []} if state.get("approved_prompts") else {}
        emit(
            {
                "event": "round",
                "round": index,
                "scores": [c["score"] for c in pending],
                "round_best": round_best,
                "best_score": best_so_far,
                "stop_reason": reason,
            }
        )
        return {
            "round": index,
            "best": best,
            "round_best": None if round_best is None else {"round": index, "index": round_best},
            "best_scores": best_scores,
            "pending": [],
            "round_prompts": [],
            "stop_reason": reason,
            **closed,
        }

    def _history(self, state: RepaintState, history: RunHistory, critiqued: CandidateRecord) -> list[dict[str, Any]]:
        """Every closed round but the one whose image is critiqued now (its prompt is the request's), as task data."""
        past = history.read(rounds=state.get("round", 0))
        critiques = {c["round"]: c for c in past.critiques}
        rounds = []
        for r in past.rounds:
            if r["index"] == critiqued["round"]:
                continue
            best = r["candidates"][r["best_index"]] if r["best_index"] is not None else None
            crit = critiques.get(r["index"])
            rounds.append(
                {
                    "round": r["index"],
                    "prompt": r["prompt"],
                    "score": None if best is None else best["score"],
                    "best_prompt": None if best is None else best["prompt"],
                    "edits": list(crit["edits"]) if crit else None,
                }
            )
        return rounds

    @staticmethod
    def _history_text(rounds: list[dict[str, Any]]) -> str:
        lines = [
            prompts.HISTORY_ROUND.format(
                round=h["round"],
                prompt=h["prompt"],
                score="n/a" if h["score"] is None else f"{h['score']:.4f}",
                variant=f"; best variant: {h['best_prompt']}" if h["best_prompt"] not in (None, h["prompt"]) else "",
                critique="; ".join(h["edits"]) if h["edits"] is not None else "none",
            )
            for h in rounds
        ]
        return prompts.HISTORY.format(rounds="\n".join(lines)) if lines else ""

    def _round_best(self, state: RepaintState, step: _Step) -> CandidateRecord | None:
        """The best candidate of the last closed round (its record is in the history)."""
        pointer = state.get("round_best")
        record = step.history.get_round(pointer["round"]) if pointer else None
        return None if pointer is None or record is None else record["candidates"][pointer["index"]]

    @_timed("critique")
    def critique(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Compare the reference with the best image; with ``combined_critique`` also revise and vary."""
        cfg = step.config
        round_index = state.get("round", 0)
        calls = MLLMCalls(self.mllm, self.pool, "critique", round_index, cfg, step.history)
        # with history, the best image so far (a worse round is not built upon); else the paper's last round's best
        cand = state.get("best") if cfg.critique_history else self._round_best(state, step)
        if cand is None:  # every candidate blocked: nothing to look at, rephrase and try again
            return {"round_prompts": []}
        images = (
            self._mllm_view(_reference(state), cfg.mllm_image_max_side),
            self._mllm_view(cand["image"], cfg.mllm_image_max_side),
        )
        past = self._history(state, step.history, cand) if cfg.critique_history else []
        history = self._history_text(past)
        style = prompts.style_hint(cfg.prompt_style, cfg.prompt_words)
        task: dict[str, Any] = {"style": cfg.prompt_style, "history": past}
        if cfg.critique_sees_prompt or cfg.combined_critique:  # a combined critique rewrites the prompt: it needs it
            task["prompt"] = cand["prompt"]
        update: dict[str, Any] = {"prompt": cand["prompt"]}
        if cfg.combined_critique:
            size = round_size(cfg, state.get("best_scores", []), higher_is_better=self.scorer.higher_is_better)
            _, wanted = cfg.candidates_in_round(round_index + 1, size)
            text = prompts.CRITIQUE_AND_REVISE.format(prompt=cand["prompt"], count=wanted, style=style, history=history)
            task |= {"kind": "critique_and_revise", "count": wanted}
            combined = calls.ask(schemas.CritiqueAndRevision, text, images, task)
            critique = schemas.Critique.model_validate(combined.model_dump())
            revised: str | None = combined.revised_prompt.strip() or cand["prompt"]
            update |= {"prompt": revised, "round_prompts": list(combined.variants)}
        else:
            line = prompts.PROMPT_LINE.format(prompt=cand["prompt"]) if cfg.critique_sees_prompt else ""
            text = prompts.CRITIQUE.format(history=history, prompt_line=line)
            task |= {"kind": "critique"}
            critique, revised = calls.ask(schemas.Critique, text, images, task), None
        record = CritiqueRecord(
            round=round_index,
            critiqued_round=cand["round"],
            candidate=cand["index"],
            style=critique.style,
            composition=critique.composition,
            content=critique.content,
            edits=list(critique.edits),
            is_match=critique.is_match,
            revised_prompt=revised,
        )
        step.history.put_critique(record)
        update |= calls.record(step.history)
        stop = stop_after_critique(critique.is_match, cfg)
        if stop is not None:
            update["stop_reason"] = stop
        emit(
            {
                "event": "critique",
                "round": round_index,
                "of_round": cand["round"],
                "edits": list(critique.edits),
                "is_match": critique.is_match,
                "stop": stop is not None,
            }
        )
        return update

    @_timed("revise")
    def revise(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Apply the critique's edits to the prompt in a separate text-only call (paper preset)."""
        cfg = step.config
        calls = MLLMCalls(self.mllm, self.pool, "revise", state.get("round", 0), cfg, step.history)
        last = step.history.get_critique(state.get("round", 0))
        if last is None:
            return {}
        edit_list = list(last["edits"]) or [last[k] for k in ("style", "composition", "content")]
        suggestions = "; ".join(f"{k}: {last[k]}" for k in ("style", "composition", "content") if last[k])
        text = prompts.REVISE.format(  # the whole critique, as the authors' revision step receives it
            prompt=state["prompt"],
            suggestions=suggestions or "none",
            edits="; ".join(edit_list),
            style=prompts.style_hint(cfg.prompt_style, cfg.prompt_words),
        )
        task = {"kind": "revise", "prompt": state["prompt"], "edits": edit_list, "style": cfg.prompt_style}
        revised = calls.ask(schemas.RevisedPrompt, text, (), task).prompt.strip() or state["prompt"]
        record = CritiqueRecord(**(last | {"revised_prompt": revised}))
        step.history.put_critique(record)
        return {"prompt": revised, **calls.record(step.history)}

    # ------------------------------------------------------------------ human review

    @staticmethod
    def _review_request(
        state: RepaintState,
        kind: ReviewKind,
        round_index: int,
        prompt: str,
        prompts: list[str],
        critique: dict[str, Any] | None = None,
    ) -> ReviewRequest:
        best = state.get("best")
        shown: ReviewCandidate | None = None
        if best is not None:
            shown = ReviewCandidate(
                round=best["round"],
                index=best["index"],
                prompt=best["prompt"],
                score=best["score"],
                image=best["image"],
            )
        return ReviewRequest(
            kind=kind,
            round=round_index,
            prompt=prompt,
            prompts=prompts,
            critique=critique,
            best=shown,
            best_scores=list(state.get("best_scores", [])),
        )

    @staticmethod
    def _ask_reviewer(request: ReviewRequest) -> ReviewAnswer:
        """Pause the run with ``request`` (LangGraph ``interrupt``); the reviewer's validated answer once resumed.

        The node calling this pays for nothing before it: on resume LangGraph runs the node again
        from its first line, and ``interrupt`` then returns the answer instead of pausing. An invalid
        answer asks again, saying why (each answer is kept by LangGraph, so a re-run replays them).
        """
        asked = request
        schema = {"response_schema": ANSWER_SCHEMA} if _INTERRUPT_TAKES_SCHEMA else {}
        while True:
            value = interrupt(asked, **schema)
            try:
                return parse_answer(value, request)
            except ReviewError as exc:
                asked = ReviewRequest(**request, error=str(exc))

    @staticmethod
    def _record_review(
        history: RunHistory, request: ReviewRequest, answer: ReviewAnswer, before: dict[str, Any]
    ) -> None:
        changed = {k: v for k in ("prompt", "prompts", "edits") if (v := getattr(answer, k)) is not None}
        history.put_review(
            ReviewRecord(
                kind=request["kind"],
                round=request["round"],
                action=answer.action,
                by=answer.by,
                note=answer.note,
                before=before,
                after=changed,
            )
        )

    @_timed("review_prompts")
    def review_prompts(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Show a person the prompts the round is about to render (``review`` includes ``"prompt"``); the
        round renders what they approve or write, or the run ends when they stop it."""
        include, wanted = self.round_plan(state, step.config)
        prompt, variants = state["prompt"] or "", state.get("round_prompts") or []
        shown = round_prompts(prompt, variants, include=include, wanted=wanted)
        request = self._review_request(state, "prompt", state.get("round", 0) + 1, prompt, shown)
        answer = self._ask_reviewer(request)
        self._record_review(step.history, request, answer, {"prompt": prompt, "prompts": shown})
        if answer.action == "stop":
            return {"stop_reason": "reviewer_stopped"}
        if answer.prompts is not None:  # rendered as written; the round's prompt is the first when it is one
            new_prompt = answer.prompt or (answer.prompts[0] if include else prompt)
            return {"prompt": new_prompt, "approved_prompts": list(answer.prompts)}
        if answer.prompt is None or answer.prompt == prompt:
            return {"approved_prompts": shown}
        # a new prompt: the variants paraphrase the old one, so every candidate renders the new one (own seeds)
        return {"prompt": answer.prompt, "approved_prompts": [answer.prompt] * len(shown)}

    @_timed("review_critique")
    def review_critique(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """Show a person the critique just made (``review`` includes ``"critique"``): the loop goes on with
        it, with the prompt or edits they write, or ends when they stop it."""
        combined = step.config.combined_critique
        round_index = state.get("round", 0)
        record = step.history.get_critique(round_index)
        if record is None:  # nothing was critiqued (every candidate blocked): nothing to review
            return {"needs_revision": not combined}
        prompt, variants = state["prompt"] or "", list(state.get("round_prompts") or [])
        request = self._review_request(state, "critique", round_index, prompt, variants, dict(record))
        answer = self._ask_reviewer(request)
        before = {"prompt": prompt, "prompts": variants, "edits": list(record["edits"])}
        self._record_review(step.history, request, answer, before)
        if answer.action == "stop":
            return {"stop_reason": "reviewer_stopped"}
        if answer.action == "approve":
            return {"needs_revision": not combined}
        edited = CritiqueRecord(**record)
        if answer.edits is not None:
            edited["edits"] = list(answer.edits)
        if answer.prompt is not None:  # the next round starts from the prompt as written
            edited["revised_prompt"] = answer.prompt
            step.history.put_critique(edited)
            return {"prompt": answer.prompt, "round_prompts": [], "needs_revision": False}
        # edits alone: the critiqued image's prompt is revised from them (the variants were of another prompt)
        step.history.put_critique(edited | {"revised_prompt": None})
        critiqued = step.history.get_round(record["critiqued_round"])
        base = critiqued["candidates"][record["candidate"]]["prompt"] if critiqued else prompt
        return {"prompt": base, "round_prompts": [], "needs_revision": True}

    @_timed("finish")
    def finish(self, state: RepaintState, step: _Step) -> dict[str, Any]:
        """End the run. Its result is the best candidate over all rounds (kept by ``select``), never
        just the last round's."""
        emit({"event": "finished", "stop_reason": state.get("stop_reason")})
        # the output, for a parent graph that declares only some of its keys (Repainter.result_from)
        output = {k: v for k, v in state.items() if k in RepaintOutput.__annotations__}
        step.history.put_outcome(output | {"finished": True})
        return {"finished": True}

    def idle(self) -> None:
        """Let the worker threads end once their work is done (the next run starts new ones)."""
        self.pool.idle()

    def close(self) -> None:
        """Release the worker threads, dropping background work not started yet."""
        self.pool.idle(cancel=True)
