"""The benchmark's typed records: one :class:`CaseResult` per (reference, model, mode), and the
:class:`Metric` protocol every image-to-image metric of the benchmark implements.

These are the contract between the runner (which computes and stores cases), the results
database and the reports (which aggregate them); each is plain, JSON-able data.

Example:
    >>> case = CaseResult(
    ...     case_id="c1", dataset="demo", reference_id="a", reference_sha256="0" * 64, model="m",
    ...     model_spec="sandbox", mode="single", seed=0, status="ok", metrics={"paper": 0.8},
    ...     higher_is_better={"paper": True}, primary_metric="paper")
    >>> case.primary
    0.8
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, get_args, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, field_validator

from ..errors import ConfigurationError
from .costs import CaseCost

__all__ = [
    "DEFAULT_DESCRIBER",
    "GROUP_ALL",
    "CaseResult",
    "CaseStatus",
    "Group",
    "GroupKind",
    "GroupText",
    "Metric",
    "Mode",
    "as_group",
]

GroupKind = Literal["all", "category", "style"]
"""What a leaderboard group gathers: every reference, one category's, or one style's."""


@dataclass(frozen=True)
class Group:
    """A leaderboard group: the references a row, gain or comparison averages over.

    The reports write it as text (``"all"``, ``"category:<name>"``, ``"style:<name>"``) through
    :meth:`__str__`, and :meth:`parse` reads that text back; the name keeps any colon it has.
    Groups are hashable and sort in report order (:attr:`sort_key`).

    Example:
        >>> Group.category("a:b"), str(Group.category("a:b"))
        (Group(kind='category', name='a:b'), 'category:a:b')
        >>> Group.parse("category:a:b") == Group.category("a:b"), Group.parse("all") == GROUP_ALL
        (True, True)
    """

    kind: GroupKind
    name: str | None = None
    """The category or style; None for ``"all"``."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(GroupKind):
            raise ConfigurationError(f"unknown leaderboard group kind {self.kind!r}: use 'all', 'category' or 'style'")
        if (self.kind == "all") != (self.name is None) or self.name == "":
            raise ConfigurationError(
                f"leaderboard group {self.kind!r} with name {self.name!r}: 'all' takes no name, "
                "'category' and 'style' take a non-empty one"
            )

    @classmethod
    def category(cls, name: str) -> Group:
        """The group of the references of category ``name``."""
        return cls("category", name)

    @classmethod
    def style(cls, name: str) -> Group:
        """The group of the references of style ``name``."""
        return cls("style", name)

    @classmethod
    def parse(cls, text: str) -> Group:
        """The group written as ``text`` by :meth:`__str__` (the ``group`` of the report files)."""
        if text == "all":
            return cls("all")
        kind, sep, name = text.partition(":")
        if not (sep and name) or kind not in ("category", "style"):
            raise ConfigurationError(
                f"not a leaderboard group: {text!r}; write 'all', 'category:<name>' or 'style:<name>'"
            )
        return cls(kind, name)  # type: ignore[arg-type]

    @property
    def sort_key(self) -> tuple[int, str]:
        """Report order: ``all`` first, then the categories, then the styles, each by name."""
        return (get_args(GroupKind).index(self.kind), self.name or "")

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind}:{self.name}"


GROUP_ALL = Group("all")
"""The leaderboard group of every reference (beside one group per category and per style)."""


def as_group(value: Group | str) -> Group:
    """``value`` as a :class:`Group`: a group as it is, its text (``"category:portrait"``) parsed."""
    if isinstance(value, Group):
        return value
    if isinstance(value, str):
        return Group.parse(value)
    raise ConfigurationError(f"a leaderboard group is a Group or its text, not {type(value).__name__}")


GroupText = Annotated[
    Group,
    PlainValidator(as_group),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "'all', 'category:<name>' or 'style:<name>'"}),
]
"""A :class:`Group` field of a pydantic model: written and read as its text form."""

DEFAULT_DESCRIBER = "mllm"
"""The describer name of an evaluation with one unnamed MLLM (``--mllm SPEC``, ``evaluate(mllm=spec)``).

Its cases and descriptions are keyed exactly as before describers had names, so result folders
written before resume as they are; naming the one MLLM ``mllm`` (``--mllm mllm=SPEC``) is the same."""

Mode = Literal["single", "repaint"]
"""``single``: describe once, generate once (the paper's one-shot regeneration);
``repaint``: the full ImageRepainter loop starting from the same description."""

CaseStatus = Literal["ok", "failed", "skipped"]
"""``skipped``: not run, because its model's circuit breaker opened (see :mod:`~imagerepainter.bench.breaker`);
the next evaluation of the folder computes it."""


class CaseResult(BaseModel):
    """What one case (a reference regenerated by one model in one mode) produced."""

    # NaN and ±inf are written as the JSON strings "NaN", "Infinity", "-Infinity" and read back as
    # the same floats: a metric that failed on one case is kept as it was, and the store stays readable.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    case_id: str
    """Stable key of the case: a hash of (reference sha256, model name, spec and settings, mode,
    metric set, seed, config hash). The results database's primary key."""
    dataset: str
    reference_id: str
    """The reference's id within its dataset (a manifest ``id``, or the file's relative path)."""
    reference_sha256: str
    category: str | None = None
    style: str | None = None
    model: str
    """The name the user gave the model (``--t2i NAME=SPEC``)."""
    model_spec: str
    describer: str = DEFAULT_DESCRIBER
    """The MLLM that described the reference and, in ``repaint``, critiqued: its name (``--mllm NAME=SPEC``),
    :data:`DEFAULT_DESCRIBER` for one unnamed MLLM (and in records written before describers had names)."""
    mode: Mode
    seed: int
    status: CaseStatus
    error: str | None = None
    """Why a failed case failed (one line, no secrets)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    """Every metric of the best image against the reference, by metric name. A value may be NaN or
    ±inf (a degenerate image, a plug-in scorer dividing by zero): it is stored as it is, and the
    leaderboard lists it as missing instead of averaging it."""
    higher_is_better: dict[str, bool] = Field(default_factory=dict)
    """The direction of each metric in :attr:`metrics`."""
    primary_metric: str = "paper"
    best_prompt: str | None = None
    best_image: str | None = None
    """Path of the best image, relative to the evaluation's output folder."""
    rounds: int = 0
    images: int = 0
    """Images rendered for this case."""
    mllm_calls: int = 0
    """MLLM calls this case made itself (the shared description is counted once, in its own record)."""
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    stop_reason: str | None = None
    cost: CaseCost | None = None
    """What the case used (calls, tokens, images, seconds; see :mod:`~imagerepainter.bench.costs`);
    ``None`` in stores written before the ledger, and for cases a circuit breaker skipped."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Anything else worth keeping (e.g. the judge's rationale, repeated-call agreement)."""

    @field_validator("metrics", mode="before")
    @classmethod
    def _null_is_nan(cls, value: Any) -> Any:
        """A ``null`` (how earlier versions wrote NaN) reads back as NaN, so their stores stay readable."""
        if isinstance(value, dict):
            return {name: float("nan") if v is None else v for name, v in value.items()}
        return value

    @property
    def primary(self) -> float | None:
        """The value of the primary metric, or ``None`` when the case failed."""
        return self.metrics.get(self.primary_metric)


@runtime_checkable
class Metric(Protocol):
    """An image-to-image metric: compares regenerated images with their reference.

    Any scorer (``imagerepainter.backends.Scorer``) can be wrapped as one; the judge metric asks
    an MLLM. ``compute`` returns one value per image, in order.
    """

    name: str
    higher_is_better: bool

    def compute(self, reference: Image.Image, images: Sequence[Image.Image]) -> list[float]:
        """Compare each of ``images`` with ``reference``."""
        ...
