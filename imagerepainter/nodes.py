"""The loop's nodes: thin adapters between the state and the backends.

:class:`LoopNodes` holds the backends and the image store; each method is one graph node
taking the state and returning a partial state. Decisions live in pure modules
(:mod:`~imagerepainter.routing`, :mod:`~imagerepainter.convergence`,
:mod:`~imagerepainter.selection`, :mod:`~imagerepainter.understanding`); prompt wording
lives in :mod:`~imagerepainter.prompts`.

Nodes emit progress through LangGraph's stream writer (``stream_mode="custom"``), one event
per round and per node, so ``Repainter.stream`` works the same way inside a parent graph.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel

from . import prompts, schemas
from .backends.base import MLLM, GenerationRequest, MLLMMessage, Scorer, TextToImage
from .config import RepainterConfig
from .convergence import Progress, decide_stop, mllm_calls_per_round
from .errors import BackendError, GenerationError, MLLMError, RepainterError
from .images import ImageStore
from .routing import seed_for
from .selection import best_index, best_overall, better
from .state import CallRecord, CandidateRecord, CritiqueRecord, RepaintState, RoundRecord, Usage
from .understanding import UnderstandingTree, assemble_prompt

__all__ = ["LoopNodes"]

SchemaT = TypeVar("SchemaT", bound=BaseModel)

_DETAILS: dict[str, type[BaseModel]] = {
    "person": schemas.PersonDetails,
    "animal": schemas.AnimalDetails,
    "object": schemas.ThingDetails,
}


def _emit(event: dict[str, Any]) -> None:
    """Send a progress event to LangGraph's custom stream, when there is one."""
    try:
        from langgraph.config import get_stream_writer

        get_stream_writer()(event)
    except (RuntimeError, ImportError):  # called outside a graph run
        pass


@contextlib.contextmanager
def backend_errors(error: type[BackendError], what: str, backend: str) -> Iterator[None]:
    """Turn a backend's own exception into ``error`` (kept as its cause); ours pass through unchanged.

    So every failure reaches the caller as a :class:`BackendError`, which ``Repainter`` annotates
    with the thread id and the work already done.
    """
    try:
        yield
    except RepainterError:
        raise
    except Exception as exc:
        raise error(f"{what}: {type(exc).__name__}: {exc}", backend=backend) from exc


def _timed(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Add the node's wall time to ``timings`` and announce the node on the custom stream."""

    def wrap(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def node(self: LoopNodes, state: RepaintState) -> dict[str, Any]:
            start = time.perf_counter()
            update = fn(self, state)
            seconds = time.perf_counter() - start
            update["timings"] = {name: seconds}
            _emit({"event": "node", "node": name, "round": len(state.get("rounds", [])) + 1, "seconds": seconds})
            return update

        node.__name__ = node.__qualname__ = name
        node.__doc__ = fn.__doc__
        return node

    return wrap


_Job = tuple[type[BaseModel], str, Sequence[Image.Image], dict[str, Any]]
"""One request of ``ask_many``: schema, instruction, images and the task data (``MLLMMessage.task``)."""


class _Calls:
    """Runs MLLM requests (concurrently where independent) and tallies their usage."""

    def __init__(self, mllm: MLLM, pool: ThreadPoolExecutor, node: str, round_index: int) -> None:
        self.mllm, self.pool, self.node, self.round_index = mllm, pool, node, round_index
        self.usage: Usage = {}
        self.log: list[CallRecord] = []
        self._lock = threading.Lock()

    def ask(
        self, schema: type[SchemaT], text: str, images: Sequence[Image.Image] = (), task: dict[str, Any] | None = None
    ) -> SchemaT:
        messages = [
            MLLMMessage(role="system", text=prompts.SYSTEM),
            MLLMMessage(text=text, images=tuple(images), task=task),
        ]
        start = time.perf_counter()
        with backend_errors(MLLMError, f"{self.mllm.name} failed", self.mllm.name):
            reply = self.mllm.structured(messages, schema)
        seconds = time.perf_counter() - start
        with self._lock:
            u = self.usage
            u["mllm_calls"] = u.get("mllm_calls", 0) + 1
            u["mllm_requests"] = u.get("mllm_requests", 0) + reply.requests
            u["input_tokens"] = u.get("input_tokens", 0) + reply.usage.input_tokens
            u["output_tokens"] = u.get("output_tokens", 0) + reply.usage.output_tokens
            self.log.append(
                CallRecord(
                    node=self.node,
                    round=self.round_index,
                    schema=schema.__name__,
                    images=len(images),
                    requests=reply.requests,
                    input_tokens=reply.usage.input_tokens,
                    output_tokens=reply.usage.output_tokens,
                    seconds=round(seconds, 6),
                )
            )
        return reply.value

    def update(self) -> dict[str, Any]:
        """The usage and call log to merge into the state."""
        return {"usage": self.usage, "calls": self.log}

    def ask_many(self, jobs: Sequence[_Job]) -> list[Any]:
        """Ask independent questions concurrently; results in the order of ``jobs``."""
        futures = [self.pool.submit(self.ask, schema, text, images, task) for schema, text, images, task in jobs]
        return [f.result() for f in futures]


class LoopNodes:
    """The graph's nodes, closed over the backends (see :func:`imagerepainter.graph.build_graph`)."""

    def __init__(
        self,
        *,
        mllm: MLLM,
        t2i: TextToImage,
        scorer: Scorer,
        store: ImageStore,
        config: RepainterConfig,
    ) -> None:
        self.mllm, self.t2i, self.scorer, self.store, self.config = mllm, t2i, scorer, store, config
        self._pool = ThreadPoolExecutor(max_workers=config.max_concurrency, thread_name_prefix="imagerepainter")
        self._prepared: OrderedDict[str, Future[Any]] = OrderedDict()
        self._prepared_lock = threading.Lock()

    # ------------------------------------------------------------------ helpers

    def _config(self, state: RepaintState) -> RepainterConfig:
        return RepainterConfig.model_validate(state["config"]) if "config" in state else self.config

    def _image(self, ref: Any, max_side: int | None = None) -> Image.Image:
        image = self.store.get(ref)
        if max_side is not None and max(image.size) > max_side:
            image = image.copy()
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return image

    def prepared_reference(self, ref: Any) -> Future[Any]:
        """The scorer's prepared reference, computed once per reference (in the background)."""
        key = f"{ref['sha256']}"
        with self._prepared_lock:
            future = self._prepared.get(key)
            if future is None or (future.done() and future.exception() is not None):
                future = self._pool.submit(lambda: self.scorer.prepare(self.store.get(ref)))
                self._prepared[key] = future
                while len(self._prepared) > 32:
                    self._prepared.popitem(last=False)
            return future

    # ------------------------------------------------------------------ nodes

    @_timed("start")
    def start(self, state: RepaintState) -> dict[str, Any]:
        """Fix this run's effective config; start from a given prompt when there is one."""
        cfg = self.config.with_overrides(**(state.get("overrides") or {}))
        update: dict[str, Any] = {"config": cfg.model_dump(mode="json"), "round_prompts": [], "pending": []}
        if state.get("prompt"):
            update |= {"initial_prompt": state["prompt"], "understanding": None}
        # Load the scorer's models before any paid call, so a missing model fails first; embedding
        # the reference then overlaps with the description calls that follow.
        load = getattr(self.scorer, "load", None)
        if callable(load):
            with backend_errors(BackendError, f"The scorer {self.scorer.name} could not load", self.scorer.name):
                load()
        self.prepared_reference(state["reference"])
        return update

    @_timed("describe")
    def describe(self, state: RepaintState) -> dict[str, Any]:
        """Build the Image Understanding Tree (independent calls concurrently), then the first prompt."""
        cfg = self._config(state)
        calls = _Calls(self.mllm, self._pool, "describe", 0)
        ref = (self._image(state["reference"], cfg.mllm_image_max_side),)
        jobs: list[_Job] = [
            (schemas.GlobalDescription, prompts.GLOBAL_DESCRIPTION, ref, {"kind": "global_description"}),
            (schemas.GlobalFeatures, prompts.GLOBAL_FEATURES, ref, {"kind": "global_features"}),
        ]
        if cfg.max_objects > 0:
            text = prompts.OBJECT_LIST.format(max_objects=cfg.max_objects)
            jobs.append((schemas.ObjectList, text, ref, {"kind": "object_list", "max_objects": cfg.max_objects}))
        answers = calls.ask_many(jobs)
        description, features = answers[0], answers[1]
        objects = list(answers[2].objects[: cfg.max_objects]) if cfg.max_objects > 0 else []

        detail_jobs: list[_Job] = [
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
        detail_answers = calls.ask_many(detail_jobs)
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
        rewrite = prompts.REWRITE.format(description=assembled, style=prompts.STYLE_HINTS[cfg.prompt_style])
        task = {"kind": "rewrite", "description": assembled, "style": cfg.prompt_style}
        prompt = calls.ask(schemas.PromptRewrite, rewrite, (), task).prompt.strip()
        _emit({"event": "described", "prompt": prompt, "objects": [o.name for o in objects]})
        return {"understanding": dict(tree), "prompt": prompt, "initial_prompt": prompt, **calls.update()}

    @_timed("propose")
    def propose(self, state: RepaintState) -> dict[str, Any]:
        """Choose the round's K candidate prompts: the current prompt and/or its variants."""
        cfg = self._config(state)
        round_index = len(state.get("rounds", [])) + 1
        include, wanted = cfg.candidates_in_round(round_index)
        prompt = state["prompt"] or ""
        variants = [v.strip() for v in state.get("round_prompts") or [] if v and v.strip()][:wanted]
        calls = _Calls(self.mllm, self._pool, "propose", round_index)
        if len(variants) < wanted:
            missing = wanted - len(variants)
            text = prompts.VARIANTS.format(count=missing, prompt=prompt, style=prompts.STYLE_HINTS[cfg.prompt_style])
            task = {"kind": "variants", "prompt": prompt, "count": missing, "style": cfg.prompt_style}
            answer = calls.ask(schemas.PromptVariants, text, (), task)
            variants += [v.strip() for v in answer.prompts if v and v.strip()][:missing]
        while len(variants) < wanted:  # a model that returned too few: render the prompt again, new seed
            variants.append(prompt)
        return {"round_prompts": ([prompt] if include else []) + variants, **calls.update()}

    @_timed("generate")
    def generate(self, state: RepaintState) -> dict[str, Any]:
        """Render every candidate, batched as far as the backend allows, each with a recorded seed."""
        cfg = self._config(state)
        round_index = len(state.get("rounds", [])) + 1
        gen = cfg.generation
        requests = [
            GenerationRequest(
                prompt=p,
                negative_prompt=gen.negative_prompt,
                seed=seed_for(cfg.seed, round_index, i, vary=cfg.vary_seed),
                height=gen.height,
                width=gen.width,
                num_inference_steps=gen.num_inference_steps,
                guidance_scale=gen.guidance_scale,
            )
            for i, p in enumerate(state["round_prompts"])
        ]
        size = max(1, self.t2i.capabilities.max_batch_size)
        outputs = []
        for start in range(0, len(requests), size):
            batch = requests[start : start + size]
            with backend_errors(GenerationError, f"{self.t2i.name} failed", self.t2i.name):
                images = self.t2i.generate(batch)
            if len(images) != len(batch):
                raise GenerationError(
                    f"{self.t2i.name} returned {len(images)} images for {len(batch)} requests.", backend=self.t2i.name
                )
            outputs.extend(images)
            _emit({"event": "generated", "round": round_index, "done": len(outputs), "total": len(requests)})
        pending: list[CandidateRecord] = [
            CandidateRecord(
                index=i, prompt=r.prompt, seed=r.seed, image=self.store.put(out.image), blocked=out.blocked, score=None
            )
            for i, (r, out) in enumerate(zip(requests, outputs, strict=True))
        ]
        blocked = sum(c["blocked"] for c in pending)
        return {"pending": pending, "usage": {"images": len(pending), "blocked_images": blocked}}

    @_timed("score")
    def score(self, state: RepaintState) -> dict[str, Any]:
        """Score the round's unblocked candidates in one batch against the prepared reference."""
        what = f"The scorer {self.scorer.name} could not prepare the reference"
        with backend_errors(BackendError, what, self.scorer.name):
            prepared = self.prepared_reference(state["reference"]).result()
        pending = [CandidateRecord(**c) for c in state["pending"]]
        live = [c for c in pending if not c["blocked"]]
        if live:
            with backend_errors(BackendError, f"The scorer {self.scorer.name} failed", self.scorer.name):
                scores = self.scorer.score(prepared, [self.store.get(c["image"]) for c in live])
            if len(scores) != len(live):
                raise BackendError(
                    f"The scorer {self.scorer.name} returned {len(scores)} scores for {len(live)} images.",
                    backend=self.scorer.name,
                )
            values = [float(s) for s in scores]
            if not all(math.isfinite(v) for v in values):
                raise BackendError(
                    f"The scorer {self.scorer.name} returned a non-finite score ({values}); a NaN or infinite score "
                    "cannot be ranked. Check the scorer (e.g. an all-black image gives a zero embedding).",
                    backend=self.scorer.name,
                )
            for c, v in zip(live, values, strict=True):
                c["score"] = v
        return {"pending": pending}

    @_timed("select")
    def select(self, state: RepaintState) -> dict[str, Any]:
        """Close the round: its best, the best so far, and whether to stop (pure policy)."""
        cfg = self._config(state)
        hib = self.scorer.higher_is_better
        rounds = state.get("rounds", [])
        pending = state["pending"]
        round_best = best_index([c["score"] for c in pending], higher_is_better=hib)
        previous = rounds[-1]["best_score_so_far"] if rounds else None
        best_so_far = previous
        if round_best is not None:
            s = pending[round_best]["score"]
            assert s is not None
            if previous is None or better(s, previous, higher_is_better=hib):
                best_so_far = s
        record = RoundRecord(
            index=len(rounds) + 1,
            prompt=state["prompt"] or "",
            candidates=list(pending),  # type: ignore[arg-type]
            best_index=round_best,
            best_score_so_far=best_so_far,
        )
        usage = state.get("usage", {})
        progress = Progress(
            best_scores=[r["best_score_so_far"] for r in rounds] + [best_so_far],
            images_used=int(usage.get("images", 0)),
            mllm_calls_used=int(usage.get("mllm_calls", 0)),
            seconds_used=sum(state.get("timings", {}).values()),
            images_per_round=cfg.variants,
            mllm_calls_per_round=mllm_calls_per_round(cfg),
        )
        reason = decide_stop(progress, cfg, higher_is_better=hib)
        _emit(
            {
                "event": "round",
                "round": record["index"],
                "scores": [c["score"] for c in pending],
                "round_best": round_best,
                "best_score": best_so_far,
                "stop_reason": reason,
            }
        )
        return {"rounds": [record], "pending": [], "round_prompts": [], "stop_reason": reason}

    def _critique_target(self, state: RepaintState, cfg: RepainterConfig) -> tuple[RoundRecord, CandidateRecord] | None:
        rounds = state["rounds"]
        hib = self.scorer.higher_is_better
        if cfg.critique_history:  # critique the best image so far: a worse round is not built upon
            pool = [(r, r["candidates"][r["best_index"]]) for r in rounds if r["best_index"] is not None]
        else:  # the paper: the last round's best
            last = rounds[-1]
            pool = [(last, last["candidates"][last["best_index"]])] if last["best_index"] is not None else []
        best = best_index([c["score"] for _, c in pool], higher_is_better=hib)
        return pool[best] if best is not None else None

    def _history(self, state: RepaintState, critiqued_round: int) -> list[dict[str, Any]]:
        """Every round but the one whose image is critiqued now (its prompt is the request's), as task data."""
        rounds = []
        critiques = {c["round"]: c for c in state.get("critiques", [])}
        for r in state["rounds"]:
            if r["index"] == critiqued_round:
                continue
            best = r["candidates"][r["best_index"]] if r["best_index"] is not None else None
            crit = critiques.get(r["index"])
            rounds.append(
                {
                    "round": r["index"],
                    "prompt": r["prompt"],
                    "score": None if best is None else best["score"],
                    "best_prompt": None if best is None else best["prompt"],
                    "edits": list(crit["critique"].get("edits", [])) if crit else None,
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

    @_timed("critique")
    def critique(self, state: RepaintState) -> dict[str, Any]:
        """Compare the reference with the best image; with ``combined_critique`` also revise and vary."""
        cfg = self._config(state)
        round_index = len(state["rounds"])
        calls = _Calls(self.mllm, self._pool, "critique", round_index)
        target = self._critique_target(state, cfg)
        if target is None:  # every candidate blocked: nothing to look at, rephrase and try again
            return {"round_prompts": []}
        rnd, cand = target
        images = (
            self._image(state["reference"], cfg.mllm_image_max_side),
            self._image(cand["image"], cfg.mllm_image_max_side),
        )
        past = self._history(state, rnd["index"]) if cfg.critique_history else []
        history = self._history_text(past)
        style = prompts.STYLE_HINTS[cfg.prompt_style]
        task: dict[str, Any] = {"prompt": cand["prompt"], "style": cfg.prompt_style, "history": past}
        update: dict[str, Any] = {"prompt": cand["prompt"]}
        if cfg.combined_critique:
            _, wanted = cfg.candidates_in_round(round_index + 1)
            text = prompts.CRITIQUE_AND_REVISE.format(prompt=cand["prompt"], count=wanted, style=style, history=history)
            task |= {"kind": "critique_and_revise", "count": wanted}
            combined = calls.ask(schemas.CritiqueAndRevision, text, images, task)
            critique = schemas.Critique.model_validate(combined.model_dump()).model_dump()
            revised = combined.revised_prompt.strip() or cand["prompt"]
            update |= {"prompt": revised, "round_prompts": list(combined.variants)}
        else:
            text = prompts.CRITIQUE.format(prompt=cand["prompt"], history=history)
            task |= {"kind": "critique"}
            critique, revised = calls.ask(schemas.Critique, text, images, task).model_dump(), None
        record = CritiqueRecord(
            round=round_index,
            critiqued_round=rnd["index"],
            candidate=cand["index"],
            critique=critique,
            revised_prompt=revised,
        )
        update |= {"critiques": [record], "judged_match": bool(critique.get("is_match")), **calls.update()}
        if cfg.stop_on_match and critique.get("is_match"):
            update["stop_reason"] = "judged_match"
        _emit({"event": "critique", "round": round_index, "of_round": rnd["index"], "edits": critique.get("edits", [])})
        return update

    @_timed("revise")
    def revise(self, state: RepaintState) -> dict[str, Any]:
        """Apply the critique's edits to the prompt in a separate text-only call (paper preset)."""
        cfg = self._config(state)
        calls = _Calls(self.mllm, self._pool, "revise", len(state["rounds"]))
        last = state["critiques"][-1] if state.get("critiques") else None
        if last is None or last["round"] != len(state["rounds"]):
            return {}
        crit = last["critique"]
        edits = "; ".join(crit.get("edits") or []) or "; ".join(
            str(crit.get(k, "")) for k in ("style", "composition", "content")
        )
        edit_list = list(crit.get("edits") or []) or [str(crit.get(k, "")) for k in ("style", "composition", "content")]
        text = prompts.REVISE.format(prompt=state["prompt"], edits=edits, style=prompts.STYLE_HINTS[cfg.prompt_style])
        task = {"kind": "revise", "prompt": state["prompt"], "edits": edit_list, "style": cfg.prompt_style}
        revised = calls.ask(schemas.RevisedPrompt, text, (), task).prompt.strip() or state["prompt"]
        record = CritiqueRecord(**(last | {"revised_prompt": revised}))
        return {"prompt": revised, "critiques": [record], **calls.update()}

    @_timed("finish")
    def finish(self, state: RepaintState) -> dict[str, Any]:
        """Pick the best candidate over all rounds (the result), never just the last round's."""
        best = best_overall(state.get("rounds", []), higher_is_better=self.scorer.higher_is_better)
        _emit({"event": "finished", "stop_reason": state.get("stop_reason")})
        if best is None:
            return {"best": None, "best_round": None}
        return {"best": best[1], "best_round": best[0]}

    def close(self) -> None:
        """Release the worker threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
