"""Typed results of a run: every round, every candidate, and how to save and re-read them.

A :class:`RepaintResult` is built from the graph's final state. Images stay in the image
store until asked for (``candidate.image``); :meth:`RepaintResult.save` writes them next to a
``result.json`` from which :meth:`RepaintResult.load` rebuilds the same result.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from ._files import atomic_write
from .config import RepainterConfig
from .errors import ConfigurationError, ImageNotFoundError
from .images import DirectoryImageStore, ImageRef, ImageStore, MemoryImageStore
from .loop.convergence import StopReason
from .loop.history import History
from .loop.review import ReviewRecord, ReviewRequest, describe_request
from .loop.sizing import config_from_state, repair_recorded_size
from .loop.state import run_finished

__all__ = ["Candidate", "CritiqueResult", "Description", "RepaintResult", "Round", "RESULT_FILE"]

RESULT_FILE = "result.json"
"""Name of the JSON record :meth:`RepaintResult.save` writes."""


@dataclass(frozen=True)
class _DirectoryStoreAt:
    """A pickled record's directory image store: reopened by its folder when unpickled."""

    folder: str
    compress_level: int

    def open(self) -> DirectoryImageStore:
        return DirectoryImageStore(self.folder, compress_level=self.compress_level)


class _WithStore(BaseModel):
    """A record whose images live in a bound image store.

    Copies and pickles work: ``copy.deepcopy`` shares the store (a store is where the images
    live, not part of the value); a pickle keeps a :class:`~imagerepainter.images.DirectoryImageStore`
    (by its folder, valid in any process) and the result's own images (a finished run of a
    Repainter's default store), and drops any other store, whose images are in this process's
    memory only: ``bind(store)`` the unpickled record to read its images.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    _store: ImageStore | None = PrivateAttr(default=None)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        memo = {} if memo is None else memo
        memo[id(self._store)] = self._store  # shared, not copied (it holds a lock and every run's images)
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        store = private.get("_store")
        if isinstance(store, DirectoryImageStore):
            private["_store"] = _DirectoryStoreAt(str(store.folder), store.compress_level)
        elif isinstance(store, MemoryImageStore) and store.travels_with_results:
            pass  # the result's own images (a finished run of a Repainter's default store): they go along
        else:
            private["_store"] = None
        return {**state, "__pydantic_private__": private}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        private = dict(state.get("__pydantic_private__") or {})
        if isinstance(private.get("_store"), _DirectoryStoreAt):
            private["_store"] = private["_store"].open()
        super().__setstate__({**state, "__pydantic_private__": private})

    def _bind(self, store: ImageStore | None) -> None:
        self._store = store

    @property
    def is_bound(self) -> bool:
        """Whether this record's images are at hand: it was bound to an image store (``bind``, or
        loaded with ``RepaintResult.load``)."""
        return self._store is not None

    def _bound_store(self) -> ImageStore:
        if self._store is None:
            raise ImageNotFoundError(
                f"This {type(self).__name__} is not bound to an image store; bind(store) it, or load it with "
                "RepaintResult.load(folder)."
            )
        return self._store


def _with_failed(usage: dict[str, int], history: History) -> dict[str, int]:
    """The run's usage plus what its failed calls cost: every request is counted, failed ones too."""
    for key, spent in history.failed_usage().items():
        if spent:
            usage[key] = usage.get(key, 0) + spent
    return usage


class Description(BaseModel):
    """The Image Understanding stage's output for one reference (``Repainter.describe``).

    Pass it to ``Repainter.run(reference, description=...)`` to start the loop from it: the
    benchmark describes each reference once and shares the description between models.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    prompt: str
    """The first prompt, rewritten from the tree in the text-to-image model's style."""
    understanding: dict[str, Any] | None
    """The Image Understanding Tree (global description, features, objects, relations)."""
    usage: dict[str, int] = {}
    """What describing cost: ``mllm_calls``, ``mllm_requests``, ``input_tokens``, ``output_tokens``."""
    calls: list[dict[str, Any]] = []
    """Every answer of the stage: schema, requests, tokens, seconds."""
    prompt_version: str = ""
    """The version of the instructions that produced it (a new version means describe again)."""
    mllm: dict[str, Any] = {}
    """Name and settings of the model that described it."""

    def __repr__(self) -> str:
        calls = self.usage.get("mllm_calls", len(self.calls))
        return f"Description({calls} MLLM call{'' if calls == 1 else 's'}, prompt={shorten(self.prompt)!r})"


class Candidate(_WithStore):
    """One rendered image: the prompt and seed that made it, and its score."""

    round: int
    """1-based round number."""
    index: int
    """Position within its round."""
    prompt: str
    seed: int
    image_ref: ImageRef = Field(validation_alias=AliasChoices("image_ref", "image"))
    """The image in the store (``image`` in the state's record)."""
    blocked: bool = False
    """A safety checker blocked the image; it is kept but never scored."""
    score: float | None = None
    scores: dict[str, float] = {}
    """The parts of a composite score by name (e.g. ``clip`` and ``dinov2`` of the paper scorer)."""

    @property
    def image(self) -> Image.Image:
        """The image (loaded from the image store; a copy you may modify)."""
        return self._bound_store().get(self.image_ref)

    def __repr__(self) -> str:
        state = " blocked" if self.blocked else ""
        return (
            f"Candidate(round {self.round}, #{self.index}, score {_score(self.score)}, seed {self.seed}{state}, "
            f"prompt={shorten(self.prompt)!r})"
        )


class CritiqueResult(BaseModel):
    """The model's critique of a best image and the prompt it led to.

    It belongs to the round after which it was made (:attr:`Round.critique`); the image it
    looked at is ``rounds[critiqued_round - 1].candidates[candidate]``, which is an earlier
    round's when the last round did no better than the best so far. (In the state's
    :class:`~imagerepainter.loop.state.CritiqueRecord`, ``round`` is the round *after which*; the
    critiqued image's round is ``critiqued_round`` in both, so one name means one thing.)
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    critiqued_round: int = Field(validation_alias=AliasChoices("critiqued_round", "round"))
    """The round of the critiqued image. Results stored before this field was renamed wrote it as
    ``round``; they still load."""
    candidate: int
    """The critiqued image's index within that round."""
    style: str = ""
    composition: str = ""
    content: str = ""
    edits: list[str] = []
    is_match: bool = False
    revised_prompt: str | None = None

    def __repr__(self) -> str:
        n = len(self.edits)
        verdict = "judged a match" if self.is_match else f"{n} edit{'' if n == 1 else 's'}"
        revised = "" if self.revised_prompt is None else f", revised_prompt={shorten(self.revised_prompt)!r}"
        return f"CritiqueResult(of round {self.critiqued_round}, #{self.candidate}, {verdict}{revised})"

    @property
    def round(self) -> int:
        """Deprecated: :attr:`critiqued_round` (the name ``round`` means "the round after which" elsewhere)."""
        warnings.warn(
            "CritiqueResult.round is deprecated: use CritiqueResult.critiqued_round (the critiqued image's round).",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.critiqued_round


class Round(_WithStore):
    """One round: its prompt, every candidate, the critique that followed (if any)."""

    index: int
    prompt: str
    candidates: list[Candidate]
    best_index: int | None
    best_score_so_far: float | None
    seconds: float | None = None
    """Wall time from the start of rendering the round to its close (rendering and scoring)."""
    critique: CritiqueResult | None = None
    reviews: list[ReviewRecord] = []
    """A person's answers about this round (the ``review`` setting): to its prompts before it
    rendered, and to the critique after it."""

    @property
    def best(self) -> Candidate | None:
        """The round's best candidate."""
        return None if self.best_index is None else self.candidates[self.best_index]

    def __repr__(self) -> str:
        best, n = self.best, len(self.candidates)
        return (
            f"Round({self.index}, {n} candidate{'' if n == 1 else 's'}, best {_score(best.score if best else None)}, "
            f"prompt={shorten(self.prompt)!r})"
        )


class RepaintResult(_WithStore):
    """Everything a run produced.

    Attributes of note: ``best`` (the best candidate over *all* rounds), ``rounds`` (each
    with every candidate's prompt, seed and score), ``stop_reason``, ``config`` (the
    effective settings), ``usage`` (images, model calls, requests, tokens) and ``timings``
    (seconds per node).
    """

    reference: ImageRef
    best: Candidate | None
    rounds: list[Round]
    stop_reason: StopReason | None
    initial_prompt: str
    understanding: dict[str, Any] | None
    config: RepainterConfig
    pending: list[Candidate] = []
    """Candidates of a round that was interrupted after rendering (empty for a finished run):
    images already paid for, kept even though the round did not close."""
    backends: dict[str, Any] = {}
    """Names and settings of the MLLM, T2I backend and scorer (device, dtype, model ids)."""
    usage: dict[str, int] = {}
    calls: list[dict[str, Any]] = []
    """Every answer from the multimodal model: node, round, schema, requests, tokens, seconds."""
    timings: dict[str, float] = {}
    thread_id: str | None = None
    run_id: str | None = None
    """Key of the run's history in the Repainter's history store."""
    higher_is_better: bool = True
    """The scorer's direction: which way ``score`` is better."""
    prompt_version: str = ""
    library_version: str = ""
    finished: bool = False
    """The run ended (``stop_reason`` says why). A partial result (a failed, interrupted or paused
    run, or one read while it runs) has ``finished`` false and ``best`` the best so far."""
    reviews: list[ReviewRecord] = []
    """Every answer a person gave to the run's reviews (the ``review`` setting), in order: who
    (``by``) changed what (``before`` and ``after``), where (``kind`` and ``round``)."""
    review: ReviewRequest | None = None
    """What the run is paused for a person to review (``Repainter.resume(thread_id, review=...)``
    answers it); ``None`` unless paused."""
    notes: list[str] = []
    """What the library decided on the user's behalf before any call, in words: a rendered size
    the model's limits kept from the reference's shape, a large reference reduced (with the
    original's size and SHA-256). See :mod:`imagerepainter.loop.sizing`."""

    @field_validator("config", mode="before")
    @classmethod
    def _repair_size(cls, value: Any) -> Any:
        """Records written before sizes were clamped may hold a size the settings refuse: read it within them."""
        return repair_recorded_size(value) if isinstance(value, dict) else value

    # ------------------------------------------------------------------ views

    @property
    def scores(self) -> list[float | None]:
        """The best score over all rounds, after each round."""
        return [r.best_score_so_far for r in self.rounds]

    @property
    def candidates(self) -> list[Candidate]:
        """Every candidate of every round, in order."""
        return [c for r in self.rounds for c in r.candidates]

    @property
    def reference_image(self) -> Image.Image:
        """The (normalised) reference image."""
        return self._bound_store().get(self.reference)

    def _ended(self) -> str:
        if self.finished:
            return f"stopped: {self.stop_reason}"
        return f"paused for review of {describe_request(self.review)}" if self.review else "not finished"

    def __repr__(self) -> str:
        ended = self._ended()
        best = self.best
        where = f" (round {best.round}, #{best.index})" if best else ""
        return f"RepaintResult({len(self.rounds)} rounds, {ended}, best {_score(best.score if best else None)}{where})"

    def summary(self) -> str:
        """A one-paragraph summary for people."""
        best = self.best
        score = "n/a" if best is None or best.score is None else f"{best.score:.4f}"
        where = f" (round {best.round}, candidate {best.index})" if best else ""
        ended = self._ended()
        return (
            f"{len(self.rounds)} rounds, {ended}. Best score {score}{where}.\n"
            f"Best prompt: {best.prompt if best else '-'}"
        )

    def _repr_html_(self) -> str:  # notebooks
        """The reference, the best image and a strip of rounds with their scores, as small self-contained
        HTML (:func:`imagerepainter.report.render_summary`); every text is escaped (prompts are
        model-written, and a reference image can steer what a model writes)."""
        from .report import render_summary

        return render_summary(self)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        *,
        history: History | None = None,
        review: ReviewRequest | None = None,
        store: ImageStore | None,
        config: RepainterConfig | None = None,
        backends: dict[str, Any] | None = None,
        thread_id: str | None = None,
        prompt_version: str = "",
        library_version: str = "",
    ) -> RepaintResult:
        """Build a result from the graph's (final or partial) state and the run's history.

        The state's and history's records validate into the result's models as they are;
        ``config`` is the run's validated settings (without it, they are read from the state);
        ``review`` what a paused run waits for.
        """
        history = history or History()
        critiques = {c["round"]: c for c in history.critiques}
        rounds = [
            Round.model_validate(
                r
                | {
                    "critique": critiques.get(r["index"]),
                    "reviews": [v for v in history.reviews if v["round"] == r["index"]],
                }
            )
            for r in history.rounds
        ]
        best = state.get("best")  # the best so far: kept by each round's select, final once finished
        scorer = (backends or {}).get("scorer")
        result = cls(
            reference=state["reference"],
            best=None if best is None else Candidate.model_validate(best),
            finished=run_finished(state),
            rounds=rounds,
            pending=[Candidate.model_validate(c) for c in state.get("pending") or []],
            stop_reason=state.get("stop_reason"),
            initial_prompt=state.get("initial_prompt") or "",
            understanding=history.understanding,
            config=config if config is not None else _recorded_config(state),
            backends=backends or {},
            usage=_with_failed(dict(state.get("usage") or {}), history),
            calls=[dict(c) for c in history.calls],
            timings=dict(state.get("timings") or {}),
            thread_id=thread_id,
            run_id=state.get("run_id"),
            higher_is_better=bool(scorer.get("higher_is_better", True)) if isinstance(scorer, dict) else True,
            notes=list(state.get("notes") or []),
            prompt_version=prompt_version,
            library_version=library_version,
            reviews=list(history.reviews),
            review=review,
        )
        result.bind(store)
        return result

    def bind(self, store: ImageStore | None) -> RepaintResult:
        """Attach the image store that holds this result's images (returns ``self``)."""
        self._bind(store)
        for r in self.rounds:
            r._bind(store)
            for c in r.candidates:
                c._bind(store)
        for c in self.pending:
            c._bind(store)
        if self.best is not None:
            self.best._bind(store)
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the reference, every candidate image and ``result.json`` into ``folder``.

        Images are written as ``images/<sha256>.png``; the folder can be re-read with
        :meth:`load`, in any process.
        """
        store = self._bound_store()
        folder = Path(folder)
        target = DirectoryImageStore(folder / "images")
        for ref in [self.reference, *(c.image_ref for c in [*self.candidates, *self.pending])]:
            target.put(store.get(ref))
        target.compact()  # every image a PNG before the result that names them
        return atomic_write(folder / RESULT_FILE, json.dumps(self.model_dump(mode="json"), indent=2))

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> RepaintResult:
        """Re-read a result written by :meth:`save`, or the result in a run folder's ``run.json``.

        Both hold the same JSON (this model's dump): a run folder's record adds the run's status,
        specs and versions around it.
        """
        folder = Path(folder)
        if (folder / RESULT_FILE).is_file():
            result = cls.model_validate_json((folder / RESULT_FILE).read_text())
        elif (folder / "run.json").is_file():
            record = json.loads((folder / "run.json").read_text())
            if "result" not in record:
                raise ConfigurationError(f"The run in {str(folder)!r} has not finished a round yet; no result to load.")
            result = cls.model_validate(record["result"])
        else:
            raise ConfigurationError(
                f"No {RESULT_FILE} or run.json in {str(folder)!r}: pass a folder from RepaintResult.save or a run."
            )
        return result.bind(DirectoryImageStore(folder / "images"))


def _recorded_config(state: dict[str, Any]) -> RepainterConfig:
    return config_from_state(state["config"]) if state.get("config") else RepainterConfig()


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def shorten(text: str, width: int = 60) -> str:
    """``text`` on one line, cut at a word boundary with an ellipsis when longer than ``width``.

    Example:
        >>> shorten("a red cat on a blue sofa, soft light, flat vector art", 30)
        'a red cat on a blue sofa,…'
    """
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0] if " " in text[: width - 1] else text[: width - 1]
    return cut + "…"
