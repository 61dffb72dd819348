"""The benchmark's image-to-image metrics, resolved from names: :func:`resolve_metrics`.

A metric compares regenerated images with their reference and says which way is better
(:class:`~imagerepainter.bench.records.Metric`). **A metric is a scorer**: every name but
``judge`` resolves through the scorer registry
(:func:`~imagerepainter.backends.registry.resolve_scorer`), the same door ``--scorer`` uses, so
the two take the same names, check options in one place, load models once per process through
one cache, and a plug-in scorer registered once (entry point or
:func:`~imagerepainter.backends.registry.register_backend`) is a metric too. Names, as on the
command line (``--metrics paper,ssim,judge``):

=====================  =========  =========================================================
name                   direction  what it is
=====================  =========  =========================================================
``paper``              higher     the paper's ``0.5 * CLIP + 0.5 * DINOv2`` cosine; also
                                  gives ``paper.clip`` and ``paper.dinov2`` from the same pass
``clip``, ``dinov2``   higher     one embedding cosine alone (``clip:<hub id or folder>``)
``ssim``               higher     structural similarity, scikit-image's variant, float64
``psnr``               higher     peak signal-to-noise ratio in dB, capped at 100
``lpips``, ``dreamsim``  lower    learned perceptual distances (:mod:`imagerepainter.scorers.perceptual`)
any scorer spec        scorer's   ``sandbox``, ``blend:PATH``, ``clip:/models/clip``, a plug-in ...
``judge``              higher     an MLLM's 1-5 rating (mean of aesthetic and semantic);
                                  also ``judge.aesthetic`` and ``judge.semantic``, and with
                                  ``judge?repeats=N`` (N >= 2) ``judge.agreement`` and
                                  ``judge.spread``; needs ``mllm``. The one metric that is
                                  not a scorer (the loop refuses ``--scorer judge``)
``elements``           higher     element-level fidelity: one MLLM call per image checks
                                  every element of the reference's Image Understanding
                                  Tree (:mod:`imagerepainter.loop.elements`); needs ``mllm`` and
                                  the tree (``tree=``); its verdicts are in the details
=====================  =========  =========================================================

A metric's name is its spec without the ``?options`` (``paper?device=cuda`` is ``paper``);
name one yourself with ``NAME=SPEC`` (``dino_cls=dinov2?pooling=cls``). Each part of a
composite is a metric of its own (``paper.clip`` may be named alone), computed **in the same
pass** as the whole: the metrics of one pass share a small cache keyed by the pixels of the
reference and the images, so asking ``paper``, then ``paper.clip``, then ``paper.dinov2``
embeds each image once. A pass also keeps the prepared reference (its embedding) for the
next calls with the same reference, so M models compared on one reference embed it once.

Nothing heavy happens when metrics are resolved: models load on first use, or when
:meth:`BenchMetric.load` is called (the benchmark loads every metric before its first case,
so a missing package or weight fails before anything is spent).

The judge's details (each rating, its rationale, what the calls cost) come from
:func:`metric_details`; the runner keeps them in ``CaseResult.extra["metric_details"]``.

Example:
    >>> from PIL import Image
    >>> metrics = resolve_metrics(["ssim", "psnr"])
    >>> [(m.name, m.higher_is_better) for m in metrics]
    [('ssim', True), ('psnr', True)]
    >>> ref = Image.new("RGB", (32, 32), "white")
    >>> compute_metrics(metrics, ref, [ref, Image.new("RGB", (32, 32), "black")])["psnr"]
    [100.0, 0.0]
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from PIL import Image

from ..backends.base import MLLM, MLLMMessage, TokenUsage
from ..errors import CapabilityError, ConfigurationError, MetricUnavailableError, UnknownBackendError
from .batching import ScoreBatcher
from .metric_specs import (
    BUILTIN_METRICS,
    ELEMENTS_NEED_AN_MLLM,
    JUDGE_NEEDS_AN_MLLM,
    check_judge_options,
    check_metrics,
    judge_parts,
    metric_options,
    named_twice,
    parse_metric_names,
    unknown_metric,
)
from .records import Metric

__all__ = [
    "BUILTIN_METRICS",
    "JUDGE_INSTRUCTION",
    "BenchMetric",
    "MetricUnavailableError",
    "check_metrics",
    "compute_metrics",
    "describe_metrics",
    "judge_mllm",
    "metric_details",
    "resolve_metrics",
    "scoring_cases",
]

JUDGE_INSTRUCTION = (
    "You are grading an image-regeneration benchmark. The FIRST image is the reference; the SECOND is an "
    "attempt to regenerate it from a text description. Rate how closely the second matches the first, "
    "on two separate 1-5 scales, judging only what is visible:\n"
    "- aesthetic: style, medium, colour palette, lighting and rendering. 5 = indistinguishable; 4 = the same "
    "look with small differences; 3 = a clearly related look; 2 = a few shared traits; 1 = unrelated.\n"
    "- semantic: the same objects, attributes, counts, positions and relations. 5 = the same scene; 4 = one "
    "minor difference; 3 = the main subject right but several differences; 2 = only some elements shared; "
    "1 = different content.\n"
    "Do not reward image quality for its own sake: a beautiful image that differs from the reference scores "
    "low. Give whole numbers, and a rationale of one or two sentences naming the largest differences."
)
"""The judge's rubric (sent with the reference first and the regeneration second)."""

_CACHE_SIZE = 16
_PREPARED_SIZE = 4


# ----------------------------------------------------------------------------- passes


@dataclass(frozen=True)
class _PassResult:
    values: dict[str, list[float]]
    """Values by part ("" is the whole)."""
    details: list[dict[str, Any]] = field(default_factory=list)
    """Per image, anything worth keeping besides the values (empty dicts when nothing)."""


def _fingerprint(image: Image.Image) -> str:
    if not isinstance(image, Image.Image):
        raise ConfigurationError(f"Metrics take PIL images, got {type(image).__name__}.")
    digest = hashlib.sha256(f"{image.mode}|{image.size}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _tree_key(tree: Mapping[str, Any] | None) -> str:
    """A cache key of a reference's tree ("" without one)."""
    return "" if tree is None else hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()


class _Pass:
    """One computation shared by the metrics it yields, cached per (reference, images) pixels."""

    name: str
    """The base metric's name (the parts are ``<name>.<part>``)."""
    spec: str

    def __init__(self, name: str, spec: str) -> None:
        self.name, self.spec = name, spec
        self._lock = threading.Lock()
        self._results: OrderedDict[tuple[str, tuple[str, ...], str], Future[_PassResult]] = OrderedDict()
        self._metrics: dict[str, BenchMetric] = {}

    # What the subclasses define.
    def parts(self) -> dict[str, bool]:
        """``{part: higher_is_better}``; the part ``""`` is the whole."""
        raise NotImplementedError

    def _compute(self, reference: Image.Image, images: Sequence[Image.Image]) -> _PassResult:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def load(self) -> None:
        """Load whatever the pass needs (models) now."""

    def case(self) -> AbstractContextManager[None]:
        """Count a case as in flight for the pass's merged scoring (see :func:`scoring_cases`)."""
        return nullcontext()

    def metric(self, part: str = "", name: str | None = None) -> BenchMetric:
        """The metric of ``part`` (one object per part)."""
        if part not in self.parts():
            known = ", ".join(sorted(p for p in self.parts() if p)) or "none"
            raise ConfigurationError(f"The {self.name!r} metric has no part {part!r}; its parts: {known}.")
        if part not in self._metrics:
            label = name or (f"{self.name}.{part}" if part else self.name)
            self._metrics[part] = BenchMetric(label, self.parts()[part], self, part)
        return self._metrics[part]

    def _compute_for(
        self, reference: Image.Image, images: Sequence[Image.Image], tree: Mapping[str, Any] | None
    ) -> _PassResult:
        """What :meth:`run` computes; a pass that reads the reference's tree overrides it."""
        return self._compute(reference, images)

    def run(
        self, reference: Image.Image, images: Sequence[Image.Image], tree: Mapping[str, Any] | None = None
    ) -> _PassResult:
        images = list(images)
        key = (_fingerprint(reference), tuple(_fingerprint(i) for i in images), _tree_key(tree))
        with self._lock:
            future = self._results.get(key)
            owner = future is None
            if future is None:
                future = self._results[key] = Future()
                while len(self._results) > _CACHE_SIZE:
                    self._results.popitem(last=False)
            else:
                self._results.move_to_end(key)
        if owner:
            try:
                result = self._compute_for(reference, images, tree)
                for part, values in result.values.items():
                    if len(values) != len(images):
                        raise ConfigurationError(
                            f"Metric {self.name!r} ({part or 'whole'}) returned {len(values)} values for "
                            f"{len(images)} images."
                        )
            except BaseException as exc:
                with self._lock:
                    self._results.pop(key, None)  # a failure is not cached: the next call tries again
                future.set_exception(exc)
                raise
            future.set_result(result)
        return future.result()


class BenchMetric:
    """A metric of the benchmark (implements :class:`~imagerepainter.bench.records.Metric`).

    Built by :func:`resolve_metrics`. Metrics built from the same spec (``paper``,
    ``paper.clip``, ``paper.dinov2``) share one computation.
    """

    def __init__(self, name: str, higher_is_better: bool, pass_: _Pass, part: str = "") -> None:
        self.name = name
        self.higher_is_better = higher_is_better
        self.part = part
        """Which part of its pass this metric is (``""``: the whole)."""
        self._pass = pass_

    @property
    def spec(self) -> str:
        """The spec its pass was resolved from, with options (e.g. ``"paper?device=cuda"``)."""
        return self._pass.spec

    @property
    def needs_tree(self) -> bool:
        """Whether it reads the reference's Image Understanding Tree (``tree=``): the ``elements`` metric."""
        return isinstance(self._pass, _ElementsPass)

    def compute(
        self, reference: Image.Image, images: Sequence[Image.Image], *, tree: Mapping[str, Any] | None = None
    ) -> list[float]:
        """One value per image, in order (every image compared with ``reference``, in one batch).

        ``tree`` is the reference's Image Understanding Tree, which :attr:`needs_tree` metrics read.
        """
        return list(self._pass.run(reference, images, tree).values[self.part])

    def details(
        self, reference: Image.Image, images: Sequence[Image.Image], *, tree: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Per image, what the pass recorded besides values (e.g. the judge's ratings); from the same cache."""
        return self._pass.run(reference, images, tree).details

    def load(self) -> BenchMetric:
        """Load models now (they otherwise load on first use), so a missing model fails early; return ``self``."""
        self._pass.load()
        return self

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of what computes this metric."""
        return {
            "name": self.name,
            "part": self.part or None,
            "higher_is_better": self.higher_is_better,
            "spec": self.spec,
            **{k: v for k, v in self._pass.describe().items() if k not in ("name", "higher_is_better", "spec")},
        }

    def __repr__(self) -> str:
        return f"BenchMetric({self.name!r}, higher_is_better={self.higher_is_better}, spec={self.spec!r})"


class _ScorerPass(_Pass):
    """A :class:`~imagerepainter.backends.base.Scorer` as a metric; a weighted scorer's children are its parts."""

    def __init__(self, name: str, spec: str, scorer: Any) -> None:
        super().__init__(name, spec)
        self.scorer = scorer
        self._prepared: OrderedDict[str, Any] = OrderedDict()
        self._prepared_lock = threading.Lock()
        self._composite = callable(getattr(scorer, "score_components", None)) and hasattr(scorer, "component_names")
        # A scorer that batches across references scores concurrent cases' images in one merged call.
        self._batcher = ScoreBatcher(scorer) if callable(getattr(scorer, "score_groups", None)) else None

    def case(self) -> AbstractContextManager[None]:
        return self._batcher.case() if self._batcher is not None else nullcontext()

    def parts(self) -> dict[str, bool]:
        parts = {"": bool(self.scorer.higher_is_better)}
        if self._composite:
            for key, child in zip(self.scorer.component_names, self.scorer.scorers, strict=True):
                parts[key] = bool(child.higher_is_better)
        return parts

    def load(self) -> None:
        load = getattr(self.scorer, "load", None)
        if callable(load):
            load()

    def _prepare(self, reference: Image.Image) -> Any:
        key = _fingerprint(reference)
        with self._prepared_lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        prepared = self.scorer.prepare(reference)
        with self._prepared_lock:
            self._prepared[key] = prepared
            while len(self._prepared) > _PREPARED_SIZE:
                self._prepared.popitem(last=False)
        return prepared

    def _compute(self, reference: Image.Image, images: Sequence[Image.Image]) -> _PassResult:
        if not images:
            return _PassResult({part: [] for part in self.parts()}, [])
        prepared = self._prepare(reference)
        if self._batcher is not None:
            parts = self._batcher.score_parts(prepared, images)
            return _PassResult({part: [float(v) for v in vals] for part, vals in parts.items()}, [{} for _ in images])
        if self._composite:
            components = self.scorer.score_components(prepared, images)
            values = {"": [float(v) for v in self.scorer.combine(components)]}
            values.update({key: [float(v) for v in vals] for key, vals in components.items()})
        else:
            values = {"": [float(v) for v in self.scorer.score(prepared, images)]}
        return _PassResult(values, [{} for _ in images])

    def describe(self) -> dict[str, Any]:
        describe = getattr(self.scorer, "describe", None)
        record = describe() if callable(describe) else {"scorer": getattr(self.scorer, "name", type(self.scorer))}
        return {"scorer": record}


# ----------------------------------------------------------------------------- judge


def judge_mllm(mllm: MLLM) -> tuple[MLLM, float | None]:
    """``mllm`` set to answer at temperature 0 where its backend allows; and the temperature it will use.

    A :class:`~imagerepainter.backends.langchain_mllm.ChatModelMLLM` whose chat model has a
    ``temperature`` field gets a *copy* of that model with ``temperature=0`` (the model passed in
    is never changed; a copy of a ``ChatOpenAI`` shares its HTTP client), wrapped with the same
    settings. Models that take no other temperature than their default are left alone, as the
    model class itself decides (``ChatOpenAI`` drops it for ``gpt-5``), and so are reasoning
    models (``o1``, ``o3``, ``o4`` ..., or a model with a reasoning effort set). Any other MLLM
    is used as is; the temperature is then reported as ``None`` (the backend's default). The
    sandbox MLLM is deterministic anyway.

    Example:
        >>> from imagerepainter.testing import FakeMLLM
        >>> fake = FakeMLLM()
        >>> judge_mllm(fake) == (fake, None)
        True
    """
    from ..backends.langchain_mllm import ChatModelMLLM

    if not isinstance(mllm, ChatModelMLLM):
        return mllm, None
    model = mllm.model
    if getattr(model, "temperature", None) == 0:
        return mllm, 0.0
    if not _takes_temperature_zero(model):
        return mllm, None
    copy = model.model_copy(update={"temperature": 0.0})
    wrapped = ChatModelMLLM(
        copy,
        methods=mllm.methods,
        max_reasks=mllm.max_reasks,
        retry=mllm.retry,
        max_images_per_call=mllm.capabilities.max_images_per_call,
        name=mllm.name,
        model_retries=mllm.model_retries,
    )
    return wrapped, 0.0


def _takes_temperature_zero(model: Any) -> bool:
    fields = getattr(type(model), "model_fields", None)
    if not isinstance(fields, dict) or "temperature" not in fields or not callable(getattr(model, "model_copy", None)):
        return False
    name = str(getattr(model, "model_name", None) or getattr(model, "model", None) or "")
    if re.match(r"o\d", name.lower()) or getattr(model, "reasoning_effort", None) or getattr(model, "reasoning", None):
        return False
    validate = getattr(type(model), "validate_temperature", None)  # ChatOpenAI's own per-model rules
    if callable(validate):
        try:
            checked = validate({"model": name, "temperature": 0.0})
        except Exception:
            return False
        return isinstance(checked, dict) and checked.get("temperature") == 0.0
    return True


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` in RGB with its longest side at most ``max_side`` (what an MLLM request sends)."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    if max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return image


def _needs_images(mllm: MLLM, what: str, images: int) -> None:
    caps = mllm.capabilities
    if not caps.accepts_images or caps.max_images_per_call < images:
        raise CapabilityError(
            f"The {what} metric sends {images} image(s) per request, but {mllm.name} takes "
            f"{'no images' if not caps.accepts_images else f'at most {caps.max_images_per_call}'}. "
            f"Use a multimodal model, or drop {what!r} from the metrics."
        )


class _AskingPass(_Pass):
    """A pass that asks an MLLM about each image (the judge, the element check), shrunk to ``max_side``."""

    mllm: MLLM
    temperature: float | None
    max_side: int

    def _asking(self, key: str, scale: str, instruction: str, **settings: Any) -> dict[str, Any]:
        """What :meth:`describe` records under ``key``: the MLLM, ``settings``, its temperature and image size,
        the scale of the values and a fingerprint of ``instruction`` (another wording, another fingerprint)."""
        return {
            key: {
                "mllm": self.mllm.name,
                **settings,
                "temperature": self.temperature,
                "max_side": self.max_side,
                "scale": scale,
                "instruction_sha256": hashlib.sha256(instruction.encode()).hexdigest()[:16],
            }
        }


class _JudgePass(_AskingPass):
    """Asks an MLLM for a :class:`~imagerepainter.loop.schemas.SimilarityRating` of each image, ``repeats`` times."""

    def __init__(self, name: str, spec: str, mllm: MLLM, *, repeats: int = 1, max_side: int = 768) -> None:
        super().__init__(name, spec)
        check_judge_options(repeats=repeats, max_side=max_side)
        caps = mllm.capabilities
        if not caps.accepts_images or caps.max_images_per_call < 2:
            raise CapabilityError(
                f"The judge metric sends two images per request (reference and regeneration), but {mllm.name} takes "
                f"{'no images' if not caps.accepts_images else f'at most {caps.max_images_per_call}'}. "
                "Use a multimodal model that accepts two images, or drop 'judge' from the metrics."
            )
        self.repeats = repeats
        self.max_side = max_side
        self.source_mllm = mllm
        self.mllm, self.temperature = judge_mllm(mllm)

    def parts(self) -> dict[str, bool]:
        return judge_parts(self.repeats)

    def describe(self) -> dict[str, Any]:
        scale = "1-5 (mean of aesthetic and semantic, averaged over repeats)"
        return self._asking("judge", scale, JUDGE_INSTRUCTION, repeats=self.repeats)

    def _compute(self, reference: Image.Image, images: Sequence[Image.Image]) -> _PassResult:
        from ..loop.schemas import SimilarityRating

        ref = _shrink(reference, self.max_side)
        values: dict[str, list[float]] = {part: [] for part in self.parts()}
        details: list[dict[str, Any]] = []
        for image in images:
            message = MLLMMessage(text=JUDGE_INSTRUCTION, images=(ref, _shrink(image, self.max_side)))
            ratings, usage, requests = [], TokenUsage(), 0
            for _ in range(self.repeats):
                reply = self.mllm.structured([message], SimilarityRating)
                ratings.append(reply.value)
                usage, requests = usage + reply.usage, requests + reply.requests
            aesthetic = [float(r.aesthetic) for r in ratings]
            semantic = [float(r.semantic) for r in ratings]
            values[""].append(statistics.fmean((a + s) / 2 for a, s in zip(aesthetic, semantic, strict=True)))
            values["aesthetic"].append(statistics.fmean(aesthetic))
            values["semantic"].append(statistics.fmean(semantic))
            if self.repeats >= 2:
                agreement, spread = repeat_agreement([aesthetic, semantic])
                values["agreement"].append(agreement)
                values["spread"].append(spread)
            details.append(
                {
                    self.name: {
                        "ratings": [
                            {"aesthetic": r.aesthetic, "semantic": r.semantic, "rationale": r.rationale}
                            for r in ratings
                        ],
                        "requests": requests,
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                        "temperature": self.temperature,
                    }
                }
            )
        return _PassResult(values, details)


def repeat_agreement(dimensions: Sequence[Sequence[float]]) -> tuple[float, float]:
    """How well repeated ratings agree: (exact-agreement rate, mean absolute difference).

    Over every pair of repeats, in every dimension: the share of pairs that gave the same
    rating (1.0 = always the same), and their mean absolute difference in rating points
    (0.0 = always the same). With fewer than two repeats there is nothing to compare: (1.0, 0.0).

    Example:
        >>> repeat_agreement([[4, 4], [5, 3]])   # aesthetic agreed, semantic differed by 2
        (0.5, 1.0)
    """
    pairs = [(a, b) for ratings in dimensions for a, b in combinations(ratings, 2)]
    if not pairs:
        return 1.0, 0.0
    return (
        sum(a == b for a, b in pairs) / len(pairs),
        math.fsum(abs(a - b) for a, b in pairs) / len(pairs),
    )


# ----------------------------------------------------------------------------- elements


class _ElementsPass(_AskingPass):
    """Checks every element of the reference's tree on each image: one
    :class:`~imagerepainter.loop.schemas.ElementVerdicts` request per image
    (see :mod:`imagerepainter.loop.elements`)."""

    def __init__(self, name: str, spec: str, mllm: MLLM, *, max_side: int = 768) -> None:
        super().__init__(name, spec)
        check_judge_options(max_side=max_side, metric="elements")
        _needs_images(mllm, "elements", 1)
        self.max_side = max_side
        self.mllm, self.temperature = judge_mllm(mllm)

    def parts(self) -> dict[str, bool]:
        return {"": True}

    def describe(self) -> dict[str, Any]:
        from ..loop.elements import ELEMENTS_INSTRUCTION, VERDICT_SCORES

        scale = f"0-1: mean verdict score over the reference's elements ({VERDICT_SCORES})"
        return self._asking("elements", scale, ELEMENTS_INSTRUCTION)

    def _compute(self, reference: Image.Image, images: Sequence[Image.Image]) -> _PassResult:
        raise ConfigurationError(
            "The 'elements' metric checks the reference's Image Understanding Tree on each image: compute it with "
            "tree= (the benchmark passes each reference's shared description), e.g. "
            "compute_metrics(metrics, reference, images, tree=description.understanding)."
        )

    def _compute_for(
        self, reference: Image.Image, images: Sequence[Image.Image], tree: Mapping[str, Any] | None
    ) -> _PassResult:
        from ..loop.elements import checklist, element_request, score_verdicts
        from ..loop.schemas import ElementVerdicts

        if tree is None:
            return self._compute(reference, images)
        elements = checklist(tree)
        values, details = [], []
        for image in images:
            if not elements:  # nothing described: nothing to check, nothing paid
                values.append(math.nan)
                details.append({self.name: {"checks": [], "kinds": {}, "calls": 0, "requests": 0}})
                continue
            message = MLLMMessage(
                text=element_request(elements),
                images=(_shrink(image, self.max_side),),
                task={"elements": [e.as_task() for e in elements]},
            )
            reply = self.mllm.structured([message], ElementVerdicts)
            scores = score_verdicts(elements, [v.model_dump() for v in reply.value.verdicts])
            values.append(scores.fidelity)
            details.append(
                {
                    self.name: {
                        "fidelity": scores.fidelity,
                        "kinds": scores.kinds,
                        "checks": scores.checks,
                        "unanswered": scores.unanswered,
                        "calls": 1,
                        "requests": reply.requests,
                        "input_tokens": reply.usage.input_tokens,
                        "output_tokens": reply.usage.output_tokens,
                        "temperature": self.temperature,
                    }
                }
            )
        return _PassResult({"": values}, details)


# ----------------------------------------------------------------------------- resolution


def _judge_pass(name: str, spec: str, options: dict[str, str], mllm: Any) -> _Pass:
    if mllm is None:
        raise ConfigurationError(JUDGE_NEEDS_AN_MLLM)
    from ..backends.registry import resolve_mllm

    return _JudgePass(name, spec, resolve_mllm(mllm), **metric_options("judge", options))


def _elements_pass(name: str, spec: str, options: dict[str, str], mllm: Any) -> _Pass:
    if mllm is None:
        raise ConfigurationError(ELEMENTS_NEED_AN_MLLM)
    from ..backends.registry import resolve_mllm

    return _ElementsPass(name, spec, resolve_mllm(mllm), **metric_options("elements", options))


def _base_pass(name: str, spec: str, mllm: Any) -> _Pass:
    """The judge or the element check (they need an MLLM), or the scorer the registry resolves ``spec`` to."""
    from ..backends.registry import parse_spec, resolve_scorer

    provider, model, options = parse_spec(spec)
    if provider == "judge" and model is None:
        return _judge_pass(name, spec, options, mllm)
    if provider == "elements" and model is None:
        return _elements_pass(name, spec, options, mllm)
    try:
        scorer = resolve_scorer(spec)
    except UnknownBackendError:
        raise unknown_metric(spec) from None
    return _ScorerPass(name, spec, scorer)


def resolve_metrics(names: Sequence[str] | str, *, mllm: Any = None) -> list[Metric]:
    """Build the metrics ``names`` asks for, in order (see the module docstring for the names).

    Args:
        names: Metric names or specs, e.g. ``["paper", "ssim", "judge?repeats=2"]``, or one
            comma-separated string. ``NAME=SPEC`` names a metric yourself.
        mllm: The judge's MLLM (a spec string, a LangChain chat model or an MLLM); needed
            only when ``judge`` is asked for.

    Returns:
        One metric per name, plus the parts a composite brings along (``paper`` is followed by
        ``paper.clip`` and ``paper.dinov2``; ``judge`` by its parts). A metric asked for twice
        appears once.

    Raises:
        UnknownBackendError: A name no metric or scorer answers to (with suggestions).
        ConfigurationError: A bad option, two different metrics under one name, no names,
            ``judge`` without ``mllm``.
        CapabilityError: The judge's MLLM cannot take two images.
        MissingDependencyError: A scorer's package is not installed (e.g. ``lpips`` without the
            ``perceptual`` extra).

    Example:
        >>> [m.name for m in resolve_metrics("paper.clip, psnr, mine=ssim?kernel_size=7")]
        ['paper.clip', 'psnr', 'mine']
        >>> resolve_metrics(["ssim?kernel_size=7", "ssim"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        imagerepainter.errors.ConfigurationError: Two different metrics are named 'ssim' ... e.g. 'ssim_2=ssim'.
    """
    passes: dict[str, _Pass] = {}
    chosen: dict[str, BenchMetric] = {}
    for item in parse_metric_names(names):
        label, part = item.label, item.part
        pass_key = f"{label or ''}={item.base_spec}"
        pass_ = passes.get(pass_key)
        if pass_ is None:
            pass_ = passes[pass_key] = _base_pass(label or item.base_name, item.base_spec, mllm)
        wanted = [pass_.metric(part, name=label)] if part else [pass_.metric(p) for p in pass_.parts()]
        for metric in wanted:
            prior = chosen.get(metric.name)
            if prior is None:
                chosen[metric.name] = metric
            elif prior is not metric:
                raise named_twice(metric.name, prior.spec, metric.spec)
    return list(chosen.values())


# ----------------------------------------------------------------------------- helpers for the runner


def compute_metrics(
    metrics: Sequence[Metric],
    reference: Image.Image,
    images: Sequence[Image.Image],
    *,
    tree: Mapping[str, Any] | None = None,
) -> dict[str, list[float]]:
    """Every metric of every image, by metric name: ``{name: [value per image]}``.

    Metrics that share a pass (``paper`` and its parts) compute it once. ``tree`` is the
    reference's Image Understanding Tree, for the metrics that read it (``elements``).

    Raises:
        ConfigurationError: A metric returned the wrong number of values.
    """
    out: dict[str, list[float]] = {}
    for metric in metrics:
        if _reads_tree(metric):
            computed = metric.compute(reference, images, tree=tree)  # type: ignore[call-arg]
        else:
            computed = metric.compute(reference, images)
        values = [float(v) for v in computed]
        if len(values) != len(images):
            raise ConfigurationError(f"Metric {metric.name!r} returned {len(values)} values for {len(images)} images.")
        out[metric.name] = values
    return out


def _reads_tree(metric: Metric) -> bool:
    return bool(getattr(metric, "needs_tree", False))


def metric_details(
    metrics: Sequence[Metric],
    reference: Image.Image,
    images: Sequence[Image.Image],
    *,
    tree: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Per image, what the metrics recorded besides their values, merged (e.g. ``{"judge": {"ratings": ...}}``).

    Served from the cache of :func:`compute_metrics` when it already ran on the same images:
    the judge is not asked again.
    """
    merged: list[dict[str, Any]] = [{} for _ in images]
    seen: set[int] = set()
    for metric in metrics:
        details = getattr(metric, "details", None)
        pass_ = getattr(metric, "_pass", None)
        if not callable(details) or id(pass_) in seen:
            continue
        seen.add(id(pass_))
        found = details(reference, images, tree=tree) if _reads_tree(metric) else details(reference, images)
        for target, extra in zip(merged, found, strict=True):
            target.update(extra)
    return merged


@contextmanager
def scoring_cases(metrics: Sequence[Metric]) -> Iterator[None]:
    """Count a case as in flight for every metric while the block runs.

    A metric whose scorer batches across references (``score_groups``: CLIP, DINOv2, a weighted
    sum of them) merges the scoring of concurrent cases' images into one call
    (:class:`~imagerepainter.bench.batching.ScoreBatcher`); a merged call stops waiting for more
    cases once every case in flight has handed its images in. Wrap each whole case in it.
    """
    passes = {id(p): p for p in (getattr(m, "_pass", None) for m in metrics) if isinstance(p, _Pass)}
    with ExitStack() as stack:
        for pass_ in passes.values():
            stack.enter_context(pass_.case())
        yield


def describe_metrics(metrics: Sequence[Metric]) -> list[dict[str, Any]]:
    """A JSON-able record of every metric (name, direction, spec, what computes it), for results and config hashes."""
    records = []
    for metric in metrics:
        describe = getattr(metric, "describe", None)
        records.append(
            describe() if callable(describe) else {"name": metric.name, "higher_is_better": metric.higher_is_better}
        )
    return records
