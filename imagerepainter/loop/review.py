"""Human review: the loop pauses for a person, with LangGraph's ``interrupt()``, and goes on with their answer.

Turn it on per run with the ``review`` setting (:attr:`~imagerepainter.config.RepainterConfig.review`):

* ``"prompt"``: before a round renders, the reviewer sees every prompt it will render and
  approves them, edits them (``prompt``: the round's prompt; ``prompts``: the exact list to
  render) or stops the run;
* ``"critique"``: after a critique, the reviewer sees it (and the revised prompt, when the
  critique wrote one) and approves it, edits it (``edits``: the next prompt is revised from
  them; ``prompt``: the next round's prompt as written) or stops the run.

What the reviewer sees is a :class:`ReviewRequest` (the interrupt's value, plain JSON); what
they answer is a :class:`ReviewAnswer`, or the same as a plain ``dict`` (what LangGraph users
send with ``Command(resume=...)``). A bad answer is refused with a :class:`ReviewError` that
says what to send. Each answer is recorded as a :class:`ReviewRecord` (who changed what),
in ``RepaintResult.reviews`` and in the round it belongs to.

A value sent with ``Command(resume=...)`` straight to the graph that is not a valid answer does
not fail the run: the run pauses again with the same request, its ``error`` saying what was
wrong (LangGraph's validation idiom), so the reviewer can answer again.

The pause happens in a node of its own that pays for nothing (it reads the state and the
run's history), so resuming it, in this process or in another one from a persistent
checkpointer, repeats no model call and renders no image twice.

Example:
    >>> request = ReviewRequest(kind="prompt", round=1, prompt="a red cube", prompts=["a red cube"],
    ...                         critique=None, best=None, best_scores=[])
    >>> parse_answer({"action": "edit", "prompt": "a red cube on grass", "by": "ana"}, request).prompt
    'a red cube on grass'
    >>> parse_answer("approve", request).action
    'approve'
    >>> parse_answer({"action": "edit"}, request)
    Traceback (most recent call last):
    ...
    imagerepainter.errors.ReviewError: An edit of the prompts before round 1 changes something: give prompt or prompts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from typing_extensions import TypedDict  # pydantic reads typing_extensions' TypedDict on Python < 3.12

from ..errors import ReviewError
from ..images import ImageRef

__all__ = [
    "ANSWER_SCHEMA",
    "ReviewAction",
    "ReviewAnswer",
    "ReviewCandidate",
    "ReviewError",
    "ReviewKind",
    "ReviewRecord",
    "ReviewRequest",
    "describe_request",
    "parse_answer",
]

ReviewKind = Literal["prompt", "critique"]
"""Where the loop pauses: before a round renders (``"prompt"``), after a critique (``"critique"``)."""
ReviewAction = Literal["approve", "edit", "stop"]
"""What a reviewer answers: go on as shown, go on with their changes, or end the run."""


class ReviewCandidate(TypedDict):
    """The best image so far, as a reviewer sees it."""

    round: int
    index: int
    prompt: str
    score: float | None
    image: ImageRef
    """The image in the Repainter's image store (``rp.store.get(ref)``)."""


class ReviewRequest(TypedDict):
    """What a paused run shows its reviewer: the interrupt's value (plain JSON)."""

    kind: ReviewKind
    """``"prompt"``: before round ``round`` renders; ``"critique"``: after the critique of round ``round``."""
    round: int
    """The round about to render (prompt review), or the round the critique followed (critique review)."""
    prompt: str
    """The prompt the loop goes on with: the round's prompt (prompt review); the critique's revised
    prompt, or with separate critique and revise calls the critiqued prompt the revise step rewrites."""
    prompts: list[str]
    """Prompt review: every prompt the round renders, in order. Critique review: the variants the
    critique proposed for the next round (empty when it proposes none)."""
    critique: dict[str, Any] | None
    """Critique review: ``style``, ``composition``, ``content``, ``edits``, ``is_match``,
    ``revised_prompt`` and which image it looked at (``critiqued_round``, ``candidate``)."""
    best: ReviewCandidate | None
    """The best candidate so far (``None`` before the first round)."""
    best_scores: list[float | None]
    """The best score after each round so far."""
    error: NotRequired[str]
    """Why the last answer was refused: the run asks again (an invalid ``Command(resume=...)`` sent to
    the graph directly; ``Repainter.resume`` refuses one before sending it)."""


class ReviewAnswer(BaseModel):
    """A reviewer's answer, sent as ``Repainter.resume(thread_id, review=...)`` or ``Command(resume=...)``.

    ``action`` is ``"approve"`` (``"accept"`` is the same), ``"edit"`` or ``"stop"``. An edit gives
    at least one of:

    * ``prompt`` (either review): the prompt the loop goes on with. Before a round, every
      candidate then renders it (each with its own seed): the variants shown paraphrased the old
      prompt. With ``prompts`` too, it is only the round's recorded prompt;
    * ``prompts`` (prompt review): the exact prompts the round renders, at most as many as shown
      (the round's prompt is then the first of them, when the round renders its prompt);
    * ``edits`` (critique review): the critique's edits as they should be; without ``prompt``,
      the next prompt is revised from them (one text-only model call).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: ReviewAction
    by: str | None = None
    """Who answered (recorded with the review)."""
    note: str | None = None
    """Why (recorded with the review)."""
    prompt: str | None = None
    prompts: list[str] | None = None
    edits: list[str] | None = None

    @field_validator("action", mode="before")
    @classmethod
    def _accept_is_approve(cls, value: Any) -> Any:
        return "approve" if value == "accept" else value

    @field_validator("prompt", "by", "note")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank (leave it out instead)")
        return None if value is None else value.strip()

    @field_validator("prompts", "edits")
    @classmethod
    def _texts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value or any(not v.strip() for v in value):
            raise ValueError("must be a non-empty list of non-blank strings")
        return [v.strip() for v in value]


ANSWER_SCHEMA: dict[str, Any] = {k: v for k, v in ReviewAnswer.model_json_schema().items() if k != "description"}
"""The JSON Schema of a :class:`ReviewAnswer`, sent with each pause (``Interrupt.response_schema``) so a
client can render a form for it."""


class ReviewRecord(TypedDict):
    """One review answer, as the run records it: who changed what, where."""

    kind: ReviewKind
    round: int
    """As in :class:`ReviewRequest`: the round about to render, or the round the critique followed."""
    action: ReviewAction
    by: str | None
    note: NotRequired[str | None]
    before: dict[str, Any]
    """What the reviewer was shown: ``prompt`` and ``prompts`` (prompt review), ``prompt``, ``prompts``
    and ``edits`` (critique review)."""
    after: dict[str, Any]
    """What the reviewer set (the same keys; only those changed; empty unless the action is ``"edit"``)."""


_WHERE = {"prompt": "the prompts before round {round}", "critique": "the critique after round {round}"}


def describe_request(request: ReviewRequest) -> str:
    """``the prompts before round 2`` or ``the critique after round 1``."""
    return _WHERE[request["kind"]].format(round=request["round"])


def parse_answer(value: Any, request: ReviewRequest) -> ReviewAnswer:
    """Validate a reviewer's answer to ``request``: a :class:`ReviewAnswer`, a mapping of its fields,
    or an action alone (``"approve"``, ``"stop"``).

    Raises:
        ReviewError: the answer is not one ``request`` takes; the message says what to send.
    """
    where = describe_request(request)
    if isinstance(value, str):
        value = {"action": value}
    if isinstance(value, ReviewAnswer):
        answer = value
    elif isinstance(value, Mapping):
        try:
            answer = ReviewAnswer.model_validate(dict(value))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()
            )
            raise ReviewError(
                f"Invalid answer to the review of {where}: {problems}. Send e.g. {{'action': 'approve'}}, "
                "{'action': 'edit', 'prompt': '...', 'by': 'your name'} or {'action': 'stop'}."
            ) from None
    else:
        raise ReviewError(
            f"The answer to the review of {where} must be a ReviewAnswer, a dict of its fields or an action "
            f"('approve', 'edit', 'stop'), not {type(value).__name__}."
        )
    changes = [k for k in ("prompt", "prompts", "edits") if getattr(answer, k) is not None]
    if answer.action != "edit" and changes:
        raise ReviewError(
            f"{answer.action!r} takes no {', '.join(changes)}: to change the review of {where}, send action 'edit'."
        )
    if answer.action == "edit":
        takes = "prompt or prompts" if request["kind"] == "prompt" else "prompt or edits"
        if not changes:
            raise ReviewError(f"An edit of {where} changes something: give {takes}.")
        if request["kind"] == "prompt" and answer.edits is not None:
            raise ReviewError(
                f"A review of {where} takes prompt or prompts, not edits (edits answer a critique review)."
            )
        if request["kind"] == "critique" and answer.prompts is not None:
            raise ReviewError(
                f"A review of {where} takes prompt or edits, not prompts (the prompts a round renders are "
                "reviewed before it renders: review=('prompt', ...))."
            )
        shown = len(request["prompts"])
        if answer.prompts is not None and len(answer.prompts) > shown:
            raise ReviewError(
                f"The review of {where} showed {shown} prompt{'s' if shown != 1 else ''}; send at most that many "
                f"(got {len(answer.prompts)}): the run's budgets were checked for them."
            )
    return answer
