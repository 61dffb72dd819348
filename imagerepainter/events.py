"""The kinds of a streamed run's events, a closed set, and the data each kind carries.

:class:`~imagerepainter.repainter.RepaintEvent` has a ``kind`` (one of :data:`EventKind`) and a
``data`` dict whose keys depend on the kind: the :class:`typing.TypedDict` of that kind in
:data:`EVENT_DATA`. The dict is what it always was (``event.data["best_score"]`` works); the
types say what is in it, for a type checker (``cast(RoundData, event.data)``) and at run time
(:func:`check_event_data`, which the tests run on every event a run emits).

======================  ===============================================================
kind                    data
======================  ===============================================================
``node``                :class:`NodeData`: a node finished
``call``                :class:`CallData`: a model call answered (the describe stage's one by one)
``described``           :class:`DescribedData`: the reference's description and its prompt
``generated``           :class:`GeneratedData`: ``done`` of ``total`` images rendered
``round``               :class:`RoundData`: a round closed
``critique``            :class:`CritiqueData`: the critique after a round
``finished``            :class:`FinishedData`: the run ended
``result``              :class:`ResultData` (empty): the last event; ``event.result`` is the run's result
``review``              :class:`~imagerepainter.loop.review.ReviewRequest`: the run paused for a person
``resumed``             :class:`ResumedData`: a run folder resumed (what it kept)
======================  ===============================================================

Example:
    >>> check_event_data("round", {"round": 2, "scores": [0.6, None], "round_best": 0, "best_score": 0.7,
    ...                            "stop_reason": None})["best_score"]
    0.7
    >>> check_event_data("roundd", {})
    Traceback (most recent call last):
    ...
    ValueError: Unknown event kind 'roundd'; the kinds: node, call, described, generated, round, critique, \
finished, result, review, resumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, NotRequired, get_args

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict  # pydantic reads typing_extensions' TypedDict on Python < 3.12

from .loop.convergence import StopReason
from .loop.review import ReviewRequest

__all__ = [
    "EVENT_DATA",
    "EVENT_KINDS",
    "CallData",
    "CritiqueData",
    "DescribedData",
    "EventKind",
    "FinishedData",
    "GeneratedData",
    "NodeData",
    "ResultData",
    "ResumedData",
    "RoundData",
    "check_event_data",
]

EventKind = Literal[
    "node", "call", "described", "generated", "round", "critique", "finished", "result", "review", "resumed"
]
"""Every kind of :class:`~imagerepainter.repainter.RepaintEvent`; no other is emitted."""

EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)
"""The kinds, in the order a run meets them."""

_STRICT = ConfigDict(extra="forbid")


@with_config(_STRICT)
class NodeData(TypedDict):
    """A node finished."""

    node: str
    round: int
    """The round the node worked for (1 for the describe stage's)."""
    seconds: float


@with_config(_STRICT)
class CallData(TypedDict):
    """A model call answered."""

    node: str
    round: int
    call: str
    """The answer's schema, e.g. ``"ObjectList"``."""
    seconds: float
    reused: NotRequired[bool]
    """True for an answer a resumed node already had (no call was made)."""


@with_config(_STRICT)
class DescribedData(TypedDict):
    """The describe stage finished: the base prompt and the objects it found."""

    prompt: str
    objects: list[str]


@with_config(_STRICT)
class GeneratedData(TypedDict):
    """After each rendering call: ``done`` of the round's ``total`` images."""

    round: int
    done: int
    total: int
    seconds: float
    """The call's time."""


@with_config(_STRICT)
class RoundData(TypedDict):
    """A round closed."""

    round: int
    scores: list[float | None]
    """Each candidate's score, in order (``None``: blocked)."""
    round_best: int | None
    """The index of the round's best candidate (by the scorer's direction)."""
    best_score: float | None
    """The best score so far, over every round."""
    stop_reason: StopReason | None


@with_config(_STRICT)
class CritiqueData(TypedDict):
    """The critique after round ``round``."""

    round: int
    of_round: int
    """The round of the image the critique looked at (the best so far may be an earlier round's)."""
    edits: list[str]
    is_match: bool
    stop: bool
    """The critique ends the run (a judged match with ``stop_on_match``)."""


@with_config(_STRICT)
class FinishedData(TypedDict):
    """The run ended."""

    stop_reason: StopReason | None


@with_config(_STRICT)
class ResultData(TypedDict):
    """Nothing: the ``result`` event's :attr:`~imagerepainter.repainter.RepaintEvent.result` holds the result."""


@with_config(_STRICT)
class ResumedData(TypedDict):
    """A run folder resumed: whether the run had finished, and what it kept."""

    finished: bool
    rounds: int
    images: int
    mllm_calls: int


EVENT_DATA: Mapping[EventKind, Any] = {
    "node": NodeData,
    "call": CallData,
    "described": DescribedData,
    "generated": GeneratedData,
    "round": RoundData,
    "critique": CritiqueData,
    "finished": FinishedData,
    "result": ResultData,
    "review": ReviewRequest,
    "resumed": ResumedData,
}
"""The type of each kind's ``data``."""


@cache
def _adapter(kind: EventKind) -> TypeAdapter[Any]:
    return TypeAdapter(EVENT_DATA[kind])


def check_event_data(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` checked against its kind's type (keys, and value types); returned as a new dict.

    Raises:
        ValueError: an unknown kind.
        pydantic.ValidationError: a key missing, unknown, or of the wrong type.
    """
    if kind not in EVENT_DATA:
        raise ValueError(f"Unknown event kind {kind!r}; the kinds: {', '.join(EVENT_KINDS)}.")
    return dict(_adapter(kind).validate_python(dict(data), strict=False))  # type: ignore[arg-type]
