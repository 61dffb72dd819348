"""The three narrow backend protocols the loop talks to.

* :class:`MLLM` — a multimodal language model that answers a list of messages (text and
  images) with an instance of a pydantic schema.
* :class:`TextToImage` — renders a batch of :class:`GenerationRequest` s.
* :class:`Scorer` — compares candidates with a reference image.

Each protocol carries a small *capabilities* record that the loop reads before any paid
call (llm and torchmetrics style), instead of ``isinstance`` checks. Any object with the
right attributes is a backend; nothing has to inherit from these classes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args, runtime_checkable

from PIL import Image
from pydantic import BaseModel, Field

from ..config import GenerationConfig
from ..errors import CapabilityError, ConfigurationError
from ..images import ImageFormat

__all__ = [
    "MLLM",
    "GeneratedImage",
    "GenerationRequest",
    "MLLMCapabilities",
    "MLLMMessage",
    "MLLMReply",
    "ScoreGroup",
    "Scorer",
    "T2ICapabilities",
    "TASK_KINDS",
    "TaskKind",
    "TextToImage",
    "TokenUsage",
    "GENERATION_FIELDS",
    "batches",
    "check_generation_settings",
    "check_loop_backends",
    "check_scorer_reference",
    "describe_backend",
    "describe_scorer",
    "fit_size",
    "score_groups",
]

SchemaT = TypeVar("SchemaT", bound=BaseModel)
T = TypeVar("T")


# ----------------------------------------------------------------------------- MLLM

TaskKind = Literal[
    "global_description",
    "global_features",
    "object_list",
    "object_details",
    "relationships",
    "rewrite",
    "variants",
    "revise",
    "critique",
    "critique_and_revise",
]
"""What a message's :attr:`MLLMMessage.task` asks for: the ``kind`` key, one of a closed set."""

TASK_KINDS: tuple[TaskKind, ...] = get_args(TaskKind)


@dataclass(frozen=True, kw_only=True)
class MLLMMessage:
    """One message to a multimodal model: text plus any number of images, in order."""

    role: str = "user"
    """``"system"`` or ``"user"``."""
    text: str
    """The text part of the message."""
    images: tuple[Image.Image, ...] = ()
    """Images sent after the text, in this order (e.g. reference first, candidate second)."""
    image_format: ImageFormat = "png"
    """How a backend that serialises images encodes them (``RepainterConfig.mllm_image_format``)."""
    task: Mapping[str, Any] | None = None
    """The structured facts of the request, beside its prose: what a rule-based model reads
    instead of parsing the text, so the wording of the instructions stays free to change.
    Models that follow prompts ignore it (``ChatModelMLLM`` does not send it). The loop fills
    it on the message that carries the instruction, with these keys where they apply:

    * ``kind`` — the request, a :data:`TaskKind`: ``"global_description"``, ``"global_features"``,
      ``"object_list"``, ``"object_details"``, ``"relationships"``, ``"rewrite"``, ``"variants"``,
      ``"revise"``, ``"critique"`` or ``"critique_and_revise"``;
    * ``prompt`` — the current prompt (the one to vary, revise, or that drew the candidate);
    * ``count`` — how many variants are wanted; ``max_objects`` — most objects to list;
    * ``object`` — ``{"name", "type"}`` of the object to detail; ``objects`` — names to relate;
    * ``description`` — the assembled Image Understanding Tree to rewrite;
    * ``edits`` — the edits to apply (a list of strings);
    * ``style`` — ``"sd"`` or ``"natural"``, how prompts are to be written;
    * ``history`` — earlier rounds, oldest first: ``{"round", "prompt", "score", "best_prompt",
      "edits"}`` each.

    A ``kind`` that is not a :data:`TaskKind` is refused when the message is built.
    """

    def __post_init__(self) -> None:
        kind = None if self.task is None else self.task.get("kind")
        if kind is not None and kind not in TASK_KINDS:
            raise ConfigurationError(f"Unknown MLLM task kind {kind!r}; the kinds: {', '.join(TASK_KINDS)}.")


@dataclass(frozen=True)
class TokenUsage:
    """Token counts of one or more model calls, as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class MLLMReply(Generic[SchemaT]):
    """A validated answer and what it cost."""

    value: SchemaT
    """The answer, an instance of the requested schema."""
    usage: TokenUsage = field(default_factory=TokenUsage)
    """Tokens of every request made for this answer, retries and re-asks included."""
    requests: int = 1
    """HTTP requests (or model invocations) this answer took."""


@dataclass(frozen=True, kw_only=True)
class MLLMCapabilities:
    """What a multimodal model can take; read by the loop before it starts."""

    max_images_per_call: int = 8
    """Most images one request may carry. The critique step needs 2 (reference and candidate)."""
    accepts_images: bool = True
    """False for a text-only model: it cannot describe or critique images."""


@runtime_checkable
class MLLM(Protocol):
    """A multimodal language model answering with structured (pydantic) output.

    ``imagerepainter.backends.ChatModelMLLM`` adapts any LangChain chat model to this
    protocol; ``imagerepainter.testing`` and ``imagerepainter.sandbox`` have others.
    Implementations must be safe to call from several threads at once: the loop issues
    independent requests concurrently.

    Optional method — ``prepare_images(self, images: Sequence[PIL.Image.Image], *, image_format: str) -> None``:
        Do now the per-image work a later request will need (e.g. encode them as data URLs in
        ``image_format``, ``"jpeg"`` or ``"png"``), so it overlaps other work. The loop calls it
        in the background with a round's candidates as it will send them (same objects);
        backends without it are not called.
    """

    name: str
    capabilities: MLLMCapabilities

    def structured(self, messages: Sequence[MLLMMessage], schema: type[SchemaT]) -> MLLMReply[SchemaT]:
        """Answer ``messages`` with an instance of ``schema``."""
        ...


# ----------------------------------------------------------------------------- T2I


class GenerationRequest(GenerationConfig):
    """One image to render: a prompt, its seed, and the run's generation settings as a whole.

    The settings are :class:`~imagerepainter.config.GenerationConfig` itself (this class extends
    it), so their names are diffusers' pipeline arguments and they are declared in one place.

    Example:
        >>> from imagerepainter.config import GenerationConfig
        >>> request = GenerationRequest.of("a red cat", seed=3, settings=GenerationConfig(height=64, width=96))
        >>> request.prompt, request.seed, request.height, request.settings == GenerationConfig(height=64, width=96)
        ('a red cat', 3, 64, True)
    """

    prompt: str
    seed: int = Field(ge=0, lt=2**32)
    """Seed of this image's random generator; recorded with the candidate."""

    @classmethod
    def of(cls, prompt: str, *, seed: int, settings: GenerationConfig) -> GenerationRequest:
        """The request for ``prompt`` with ``seed`` under ``settings``."""
        return cls(prompt=prompt, seed=seed, **settings.model_dump())

    @property
    def settings(self) -> GenerationConfig:
        """The generation settings this request carries."""
        return GenerationConfig(**{name: getattr(self, name) for name in GENERATION_FIELDS})


GENERATION_FIELDS: tuple[str, ...] = tuple(GenerationConfig.model_fields)
"""Names of the generation settings (diffusers' argument names), in declaration order."""


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive chunks of at most ``size`` items: the one rule for splitting work into batches.

    Example:
        >>> chunks = [list(b) for b in batches([1, 2, 3, 4, 5], 2)]
        >>> chunks
        [[1, 2], [3, 4], [5]]
    """
    size = max(1, size)
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class GeneratedImage:
    """One rendered image, or the news that a safety checker blocked it."""

    image: Image.Image
    blocked: bool = False
    """True when a safety checker replaced the image (for example with a black frame).
    A blocked image is recorded but never scored as a result."""


@dataclass(frozen=True, kw_only=True)
class T2ICapabilities:
    """What a text-to-image backend supports."""

    max_batch_size: int = 1
    """Most requests :meth:`TextToImage.generate` renders in one call; the loop splits larger batches."""
    supports_negative_prompt: bool = False
    supports_seed: bool = True
    """False when the service cannot be seeded (results are then not reproducible)."""
    native_pixels: int | None = None
    """The pixel count the model renders best (e.g. ``1024 * 1024`` for SDXL). When a run sets no
    ``width`` / ``height``, the loop renders at the reference's aspect ratio at about this many
    pixels (:func:`fit_size`); ``None`` leaves the size to the backend."""
    size_multiple: int = 8
    """What ``width`` and ``height`` must be multiples of."""
    min_side: int = 8
    """The smallest ``width`` or ``height`` the model renders (never below the settings' 8)."""
    max_side: int = 4096
    """The largest ``width`` or ``height`` the model renders (never above the settings' 4096)."""


SIDE_LIMITS = (8, 4096)
"""The smallest and largest ``width`` / ``height`` any run may render (``GenerationConfig``'s bounds)."""


def side_limits(capabilities: Any) -> tuple[int, int]:
    """The smallest and largest side a backend with ``capabilities`` renders, within :data:`SIDE_LIMITS`
    and rounded inwards to its ``size_multiple``.

    Example:
        >>> side_limits(T2ICapabilities(size_multiple=16, max_side=2010))
        (16, 2000)
    """
    multiple = max(1, int(getattr(capabilities, "size_multiple", 8) or 1))
    low = max(SIDE_LIMITS[0], int(getattr(capabilities, "min_side", SIDE_LIMITS[0])))
    high = min(SIDE_LIMITS[1], int(getattr(capabilities, "max_side", SIDE_LIMITS[1])))
    low, high = -(-low // multiple) * multiple, high // multiple * multiple
    if low > high:
        raise ConfigurationError(
            f"No size fits the model: sides from {low} to {high} pixels in multiples of {multiple}. "
            "Check its T2ICapabilities (min_side, max_side, size_multiple)."
        )
    return low, high


def fit_size(
    width: int,
    height: int,
    *,
    native_pixels: int,
    multiple: int = 8,
    min_side: int = SIDE_LIMITS[0],
    max_side: int = SIDE_LIMITS[1],
) -> tuple[int, int]:
    """``(width, height)`` with the aspect ratio of ``width`` x ``height`` at about ``native_pixels``
    pixels, each a multiple of ``multiple`` from ``min_side`` to ``max_side``.

    A shape too long for the limits (a 1x300 line, a 20000x20 strip) is scaled down until its
    longest side fits, and its shortest side is then raised to ``min_side`` if it must be: the
    aspect ratio is kept as closely as the limits allow (:func:`size_clamped` tells when it is not).

    Example:
        >>> fit_size(451, 300, native_pixels=1024 * 1024, multiple=8)
        (1256, 832)
        >>> fit_size(300, 451, native_pixels=256 * 256, multiple=1)
        (209, 314)
        >>> fit_size(1, 300, native_pixels=256 * 256, multiple=1), fit_size(20000, 20, native_pixels=256 * 256)
        ((14, 4096), (4096, 8))
    """
    low = -(-max(min_side, 1) // multiple) * multiple
    high = max(low, max_side // multiple * multiple)
    scale = (native_pixels / (width * height)) ** 0.5
    scale = min(scale, max_side / max(width, height))  # the longest side fits

    def side(value: int) -> int:
        return min(high, max(low, round(value * scale / multiple) * multiple))

    return side(width), side(height)


def size_clamped(width: int, height: int, *, native_pixels: int, min_side: int, max_side: int) -> bool:
    """Whether :func:`fit_size` had to leave the native pixel count's size to fit ``min_side`` to
    ``max_side`` (so the rendered aspect ratio may differ from the reference's).

    Example:
        >>> size_clamped(1, 300, native_pixels=256 * 256, min_side=8, max_side=4096)
        True
        >>> size_clamped(451, 300, native_pixels=1024 * 1024, min_side=8, max_side=4096)
        False
    """
    scale = (native_pixels / (width * height)) ** 0.5
    return max(width, height) * scale > max_side or min(width, height) * scale < min_side


@runtime_checkable
class TextToImage(Protocol):
    """A text-to-image backend that renders a batch of requests.

    Optional method — ``check_settings(self, settings: GenerationConfig) -> None``:
        Raise :class:`~imagerepainter.errors.ConfigurationError` when the backend would
        refuse to render with ``settings`` (for example a height its pipeline rejects, or a
        size the service does not offer); return None when they are fine. The loop calls it
        (through :func:`check_generation_settings`) before any paid call, so a bad setting
        costs nothing. It is *optional*: it is not a member of this protocol (a backend
        without it still passes ``isinstance(obj, TextToImage)``), and backends without it
        are simply not checked. It must be cheap and make no paid or network call.
        ``DiffusersT2I`` and ``OpenAIImagesT2I`` implement it.
    """

    name: str
    capabilities: T2ICapabilities

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render every request, in order; ``len(result) == len(requests)``."""
        ...


def check_generation_settings(t2i: Any, settings: GenerationConfig) -> None:
    """Call ``t2i.check_settings(settings)`` when the backend has it; do nothing otherwise.

    Raises:
        ConfigurationError: the backend says it would refuse ``settings``.

    Example:
        >>> from imagerepainter.config import GenerationConfig
        >>> class Picky:
        ...     def check_settings(self, settings):
        ...         if settings.height and settings.height % 8:
        ...             raise ValueError("height must be divisible by 8")
        >>> check_generation_settings(object(), GenerationConfig(height=63))  # no check_settings: not checked
        >>> check_generation_settings(Picky(), GenerationConfig(height=63))
        Traceback (most recent call last):
        ...
        ValueError: height must be divisible by 8
    """
    check = getattr(t2i, "check_settings", None)
    if callable(check):
        check(settings)


# ----------------------------------------------------------------------------- scorers


@runtime_checkable
class Scorer(Protocol):
    """Image-to-image similarity, torchmetrics style.

    ``prepare`` does the once-per-reference work (e.g. the reference embedding) and
    ``score`` compares a batch of candidates with the prepared reference. The loop
    prepares each reference once per run and scores each round's candidates in one call.
    """

    name: str
    higher_is_better: bool
    """Whether a larger score means more similar (read by selection and convergence)."""
    bounds: tuple[float, float]
    """The smallest and largest value the score can take (e.g. ``(-1, 1)`` for a cosine)."""

    def prepare(self, reference: Image.Image) -> Any:
        """Compute and return whatever ``score`` needs about ``reference``."""
        ...

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """Score every candidate against the prepared reference, in order."""
        ...


def check_scorer_reference(scorer: Any, reference: Image.Image) -> None:
    """Ask ``scorer`` whether it can compare with ``reference``, before any paid call.

    A scorer may define ``check_reference(reference)``, a cheap check that raises
    :class:`~imagerepainter.errors.ConfigurationError` for a reference it cannot score against
    (SSIM refuses one not larger than its window). A run calls it when it prepares, so such a
    reference is refused before the MLLM describes it, not in the first ``score`` step.
    Scorers without the method accept every reference; a composite asks each of its parts.

    Example:
        >>> from PIL import Image
        >>> from imagerepainter.scorers import SSIMScorer
        >>> check_scorer_reference(SSIMScorer(), Image.new("RGB", (64, 64)))  # fine
        >>> check_scorer_reference(SSIMScorer(), Image.new("RGB", (1, 300)))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        imagerepainter.errors.ConfigurationError: The reference is 1x300, ...; choose another scorer (e.g. 'psnr' ...).
    """
    for part in getattr(scorer, "scorers", None) or (scorer,):
        check = getattr(part, "check_reference", None)
        if callable(check):
            check(reference)


ScoreGroup = tuple[Any, Sequence[Image.Image]]
"""One reference's work for :func:`score_groups`: the value ``prepare`` returned and its candidates."""


def score_groups(scorer: Any, groups: Sequence[ScoreGroup]) -> list[list[float]]:
    """Score several ``(prepared reference, candidates)`` groups; one list of scores per group, in order.

    A scorer that can batch across references defines ``score_groups(groups)`` itself (the
    embedding scorers embed every candidate of every group in one set of forward passes); for
    any other this calls ``score`` once per group. Either way each group's scores equal what
    ``scorer.score(prepared, candidates)`` returns.

    Example:
        >>> from PIL import Image
        >>> from imagerepainter.scorers import PSNRScorer
        >>> scorer = PSNRScorer(max_db=40.0)
        >>> gray, black = Image.new("RGB", (8, 8), "gray"), Image.new("RGB", (8, 8), "black")
        >>> groups = [(scorer.prepare(gray), [gray]), (scorer.prepare(black), [black, gray])]
        >>> first, second = score_groups(scorer, groups)
        >>> first, len(second), round(second[1], 1)
        ([40.0], 2, 6.0)
    """
    method = getattr(scorer, "score_groups", None)
    if callable(method):
        return [list(values) for values in method(groups)]
    return [list(scorer.score(prepared, candidates)) for prepared, candidates in groups]


# ----------------------------------------------------------------------------- the loop's backends together


def check_loop_backends(mllm: MLLM, scorer: Scorer) -> None:
    """Refuse backends the loop cannot work with: an MLLM that takes no images or fewer than two per
    request (the critique shows the reference and a candidate together), or a scorer that does not
    declare ``higher_is_better`` as a bool.

    Raises:
        CapabilityError: the MLLM cannot see the images the loop sends.
        ConfigurationError: the scorer does not say which way is better.
    """
    caps = mllm.capabilities
    if not caps.accepts_images:
        raise CapabilityError(
            f"The MLLM {mllm.name!r} does not accept images, so it cannot describe or critique the "
            "reference. Use a vision model (e.g. 'openai:gpt-4o-mini')."
        )
    if caps.max_images_per_call < 2:
        raise CapabilityError(
            f"The MLLM {mllm.name!r} takes {caps.max_images_per_call} image per request, but the critique "
            "shows the reference and a candidate together. Use a model that accepts two images per request."
        )
    if not isinstance(scorer.higher_is_better, bool):
        raise ConfigurationError(f"The scorer {scorer.name!r} must declare higher_is_better as a bool.")


def describe_backend(backend: Any) -> dict[str, Any]:
    """A backend's name, class and what its ``describe()`` adds, as results record them (a backend whose
    ``describe`` fails is still named: describing must never break a run)."""
    info: dict[str, Any] = {"name": getattr(backend, "name", type(backend).__name__), "class": type(backend).__name__}
    describe = getattr(backend, "describe", None)
    if callable(describe):
        with contextlib.suppress(Exception):  # describing must never break a run
            info.update(describe())
    return info


def describe_scorer(scorer: Any) -> dict[str, Any]:
    """The part of every scorer's ``describe()`` record that any scorer can give: its name, its spec
    (the one it was built from, else its name), which way is better and its bounds, an infinite
    bound written as ``None`` (JSON has no infinity). A scorer's ``describe`` adds its own settings.

    Example:
        >>> from imagerepainter.scorers import LPIPSScorer
        >>> describe_scorer(LPIPSScorer())
        {'name': 'lpips', 'spec': 'lpips', 'higher_is_better': False, 'bounds': [0.0, None]}
    """
    return {
        "name": scorer.name,
        "spec": getattr(scorer, "spec", scorer.name),
        "higher_is_better": scorer.higher_is_better,
        "bounds": [b if math.isfinite(b) else None for b in scorer.bounds],
    }
