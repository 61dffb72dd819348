"""The LangGraph state of the loop: plain, JSON-able data only, the same size every round.

Images are held as :class:`~imagerepainter.images.ImageRef` s (a hash and a size), never as
PIL objects or bytes, so any checkpointer can save the state and it stays small. What grows
with the run (each round's candidates, each critique, the log of model calls) is not in the
state: it is written once per record to the run's history (:mod:`imagerepainter.loop.history`),
and the state keeps the round in progress, pointers (the best candidate so far, the last
critique) and counters (usage, timings), which merge through reducers.

The records here are the same data the results expose: a :class:`~imagerepainter.results.Candidate`
validates from a :class:`CandidateRecord`, a ``Round`` from a :class:`RoundRecord`, a
``CritiqueResult`` from a :class:`CritiqueRecord`.

``RepaintInput`` is what a caller (or a parent graph) passes in; ``RepaintOutput`` is what
comes out; ``RepaintState`` is everything in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, NotRequired

from typing_extensions import TypedDict

from ..images import ImageRef

__all__ = [
    "CallRecord",
    "CandidateRecord",
    "CritiqueRecord",
    "RepaintInput",
    "RepaintOutput",
    "RepaintState",
    "RoundRecord",
    "Usage",
    "add_numbers",
    "run_finished",
]


def add_numbers(left: dict[str, float] | None, right: dict[str, float] | None) -> dict[str, float]:
    """Reducer: add counters key by key.

    Example:
        >>> add_numbers({"images": 3, "mllm_calls": 1}, {"images": 3})
        {'images': 6, 'mllm_calls': 1}
    """
    out = dict(left or {})
    for key, value in (right or {}).items():
        out[key] = out.get(key, 0) + value
    return out


def run_finished(values: Mapping[str, Any]) -> bool:
    """Whether a run's state (a checkpoint's values) is that of a finished run.

    Only the ``finish`` node writes ``finished``. Do not infer this from LangGraph's
    ``StateSnapshot.next``: after a crash between a node's saved writes and the next
    checkpoint, ``next`` is empty although the run has more to do.

    Example:
        >>> run_finished({"round": 3, "stop_reason": "max_rounds"})
        False
        >>> run_finished({"round": 3, "stop_reason": "max_rounds", "finished": True})
        True
    """
    return values.get("finished") is True


class Usage(TypedDict, total=False):
    """What a run has spent so far."""

    images: int
    """Images rendered by the text-to-image backend (blocked ones included)."""
    blocked_images: int
    """Images a safety checker blocked."""
    mllm_calls: int
    """Answers requested from the multimodal model."""
    mllm_requests: int
    """HTTP requests (or invocations) those answers took, retries and re-asks included."""
    input_tokens: int
    output_tokens: int


class CallRecord(TypedDict):
    """One answer from the multimodal model: where it was asked, what it cost, how long it took."""

    node: str
    round: int
    """The round it belongs to (0 for the description)."""
    schema: str
    images: int
    requests: int
    input_tokens: int
    output_tokens: int
    seconds: float


class CandidateRecord(TypedDict):
    """One rendered candidate."""

    round: int
    """1-based round number."""
    index: int
    prompt: str
    seed: int
    image: ImageRef
    blocked: bool
    score: float | None
    scores: NotRequired[dict[str, float]]
    """A composite scorer's parts (e.g. ``clip`` and ``dinov2`` of the paper scorer), by name."""


class RoundRecord(TypedDict):
    """One finished round."""

    index: int
    """1-based round number."""
    prompt: str
    """The round's current prompt (the candidates are it and/or its variants)."""
    candidates: list[CandidateRecord]
    best_index: int | None
    """Index of the round's best candidate (None if none could be scored)."""
    best_score_so_far: float | None
    """The best score over all rounds up to and including this one."""
    seconds: NotRequired[float]
    """Wall time from the start of rendering the round to its close."""


class CritiqueRecord(TypedDict):
    """The model's critique after a round (the :class:`~imagerepainter.loop.schemas.Critique` fields),
    and the prompt it led to."""

    round: int
    """The round after which the critique was made (one record per round)."""
    critiqued_round: int
    """The round whose image was critiqued: ``round`` itself, or an earlier one when the
    best image so far is critiqued (``critique_history``) and the last round did no better."""
    candidate: int
    """Index of the critiqued candidate within ``critiqued_round``."""
    style: str
    composition: str
    content: str
    edits: list[str]
    is_match: bool
    revised_prompt: str | None


class RepaintInput(TypedDict):
    """What starts a run."""

    reference: ImageRef | str | bytes
    """The reference image: a ref into the Repainter's image store (``rp.store.put(image)``), or what
    ``Repainter.run`` takes (a file path, image bytes, a PIL image) or a ``data:`` URL, which the
    ``start`` node reads, checks and puts in the store before any model call (a bad one raises
    ``InvalidImageError`` there). The output's ``reference`` is always the ref."""
    prompt: NotRequired[str | None]
    """Start from this prompt instead of describing the reference."""
    understanding: NotRequired[dict[str, Any] | None]
    """The Image Understanding Tree the given ``prompt`` came from (``Repainter.describe``), recorded as is."""
    overrides: NotRequired[dict[str, Any]]
    """Per-run settings that beat the Repainter's config, for a parent graph that runs this one as a
    subgraph (``Repainter`` itself passes the validated settings as runtime context)."""
    config: NotRequired[dict[str, Any]]
    """The run's validated settings, dumped (``Repainter`` records them so a resume in a new process
    rebuilds them; the nodes read the runtime context)."""
    notes: NotRequired[list[str]]
    """What ``Repainter`` decided on the user's behalf when it sized the run (a clamped size, a reduced
    reference), in words; the result's ``notes``."""


class RepaintOutput(TypedDict, total=False):
    """What a run returns to a parent graph; ``Repainter.result_from(output)`` makes it a ``RepaintResult``."""

    run_id: str
    reference: ImageRef
    config: dict[str, Any]
    initial_prompt: str
    round: int
    best: CandidateRecord | None
    stop_reason: str | None
    finished: bool
    usage: Usage
    timings: dict[str, float]
    notes: list[str]
    """What was changed on the user's behalf (e.g. the rendered size fitted to a thin reference)."""


class RepaintState(RepaintInput, total=False):
    """The full state between nodes: the round in progress and pointers, never the history."""

    run_id: str
    """Key of the run's history (:class:`~imagerepainter.loop.history.RunHistory`), fixed by ``start``."""
    initial_prompt: str
    """The first prompt: the rewritten IUT prompt, or the given prompt (the tree is in the history)."""
    round: int
    """Rounds closed so far."""
    round_prompts: list[str]
    """Prompts proposed for the next round (filled by a combined critique, or by ``propose``)."""
    approved_prompts: list[str]
    """The exact prompts the next round renders, as a person approved or edited them (``review``
    includes ``"prompt"``); empty otherwise, and once the round closes."""
    needs_revision: bool
    """Set by the critique review: the prompt is revised next (separate calls, or edits a person wrote)."""
    pending: list[CandidateRecord]
    """Candidates of the round in progress, between ``generate`` and ``score``."""
    round_started: float
    """When rendering the round in progress began (seconds since the epoch)."""
    best: CandidateRecord | None
    """The best candidate over the rounds closed so far."""
    round_best: dict[str, int] | None
    """Where the last closed round's best candidate is: ``{"round": r, "index": i}``."""
    best_scores: list[float | None]
    """The best score so far after each round (what the convergence policy reads)."""
    stop_reason: str | None
    finished: bool
    """Written by ``finish`` alone: the run is over."""
    usage: Annotated[Usage, add_numbers]
    timings: Annotated[dict[str, float], add_numbers]
    """Seconds spent in each node, summed over the run (the seconds budget reads their total)."""
