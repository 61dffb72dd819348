"""Running one case: a reference, a model, a mode, from the shared description, to a scored record.

A :class:`Workbench` holds what the cases of an evaluation share in one process (or one Ray
actor): the MLLM, the loop's scorer, the metrics, and per model one :class:`ModelEngine` —
the model's backend, resolved and loaded once, inside one ``Repainter`` that all its cases
use. Its renderer (:class:`~imagerepainter.bench.batching.RenderBatcher`) lets at most
``device_slots`` renders of a model run at once (one by default: a GPU runs one pipeline call
at a time) and merges the renders of concurrent cases into batched calls, while the MLLM calls
of other cases go on. A model that cannot be loaded raises
:class:`~imagerepainter.errors.ModelLoadError` for each of its cases, which the scheduler's
circuit breaker turns into skipped cases (see :mod:`~imagerepainter.bench.breaker`).

The modes differ only in per-run settings of the same Repainter:

* ``single``: one round of one candidate, the description's prompt itself (no MLLM call);
* ``repaint``: the full loop from the same description.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .._secrets import redact
from ..config import RepainterConfig
from ..errors import ConfigurationError, ImageNotFoundError, MLLMError, ModelLoadError
from ..images import ImageRef, encode_png, image_sha256
from ..results import Description
from .batching import DEFAULT_WINDOW, RenderBatcher, ScoreBatcher
from .breaker import is_permanent, outlasted_retries
from .costs import DescriptionCost, MLLMUsage, case_cost, description_cost
from .datasets import Reference
from .metrics import compute_metrics, metric_details, scoring_cases
from .prices import mllm_key
from .records import DEFAULT_DESCRIBER, CaseResult, Metric, Mode

__all__ = [
    "MODE_SETTINGS",
    "CaseImages",
    "CaseJob",
    "CaseOutcome",
    "ModelEngine",
    "WorkerSpec",
    "Workbench",
    "failed_case",
]

MODE_SETTINGS: dict[str, dict[str, Any]] = {
    "single": {"max_rounds": 1, "variants": 1, "include_current_prompt": "always"},
    "repaint": {},
}
"""Per-run settings of each mode, on top of the evaluation's settings."""


@dataclass(frozen=True)
class CaseJob:
    """One case to compute (plain data: it travels to Ray actors)."""

    case_id: str
    dataset: str
    reference: Reference
    model: str
    model_spec: str
    mode: Mode
    seed: int
    primary_metric: str
    describer: str = DEFAULT_DESCRIBER
    """The MLLM that describes the reference and critiques (its name; see :attr:`WorkerSpec.describers`)."""


@dataclass(frozen=True)
class CaseOutcome:
    """A computed case and its best image (``None`` when it has none), as PNG bytes or as the image.

    A local case hands its best image over as it is (:attr:`best_image`), and whoever stores it
    encodes it (:meth:`png`), so the case's thread goes on to its next case instead of spending
    the encoding's time (tens of milliseconds at 512 px) before it; what travels from a Ray actor
    is encoded there (:meth:`encoded`).
    """

    case: CaseResult
    best_png: bytes | None = None
    permanent: bool = False
    """The case failed in a way that retrying cannot fix (see :func:`~imagerepainter.bench.breaker.is_permanent`):
    the model's circuit breaker opens at once."""
    outlasted_retries: bool = False
    """The case failed in a way its backend retries, so its retries never got past it (see
    :func:`~imagerepainter.bench.breaker.outlasted_retries`): the breaker opens at once while no case
    of the model has succeeded."""
    model_failure: bool = True
    """A failure that says something about the model (not an unreadable reference, not the MLLM): the
    only kind the model's circuit breaker counts."""
    environment: dict[str, Any] | None = None
    """What the worker computed the case with (devices, dtypes, who answered the MLLM; see
    :func:`~imagerepainter.bench.environment.worker_environment`), for the evaluation's manifest."""
    best_image: Image.Image | None = field(default=None, compare=False, repr=False)
    """The best image not yet encoded (:attr:`best_png` is ``None`` then)."""

    def png(self) -> bytes | None:
        """The best image as lossless PNG bytes (``None`` when the case has none)."""
        if self.best_png is not None or self.best_image is None:
            return self.best_png
        return encode_png(self.best_image, compress_level=1)  # lossless; level 6 costs 4x the time

    def encoded(self) -> CaseOutcome:
        """This outcome with its best image as PNG bytes (what a Ray actor sends back)."""
        return self if self.best_image is None else dataclasses.replace(self, best_png=self.png(), best_image=None)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its :class:`Workbench` (picklable when specs are strings)."""

    mllm: Any
    models: Mapping[str, Any]
    scorer: Any
    metrics: Sequence[str]
    config: dict[str, Any]
    device_slots: int = 1
    batch_window: float = DEFAULT_WINDOW
    """Most seconds a render request waits, from when its case handed it in, for more cases'
    renders to merge into one call (see :mod:`~imagerepainter.bench.batching`)."""
    metric_objects: Sequence[Metric] | None = field(default=None, compare=False)
    """Metrics already resolved (used as they are instead of resolving ``metrics``)."""
    describers: Mapping[str, Any] = field(default_factory=dict)
    """The MLLM of each describer by name (``--mllm NAME=SPEC``); empty: :attr:`mllm` is the one
    describer, :data:`~imagerepainter.bench.records.DEFAULT_DESCRIBER`. ``mllm`` is then the first
    describer's, the one a judge metric asks."""

    def describer_specs(self) -> dict[str, Any]:
        """Each describer's MLLM by name."""
        return dict(self.describers) or {DEFAULT_DESCRIBER: self.mllm}


def failed_case(
    job: CaseJob, error: BaseException | str, *, seconds: float = 0.0, spent: Any = None, status: str = "failed"
) -> CaseResult:
    """The record of a case that failed: the error on one line, without secrets, and what the
    run had spent before it failed (``spent``: a partial result), so costs add up.
    ``status="skipped"``: a case not run because its model's circuit breaker opened (``error`` says why)."""
    if isinstance(error, BaseException):
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        error = f"{type(error).__name__}: {text}" if text else type(error).__name__
    usage = dict(getattr(spent, "usage", None) or {})
    return _base(
        job,
        status=status,
        error=redact(str(error))[:2000],
        seconds=seconds,
        rounds=len(getattr(spent, "rounds", None) or []),
        images=int(usage.get("images", 0)),
        mllm_calls=int(usage.get("mllm_calls", 0)),
        input_tokens=int(usage.get("input_tokens", 0)),
        output_tokens=int(usage.get("output_tokens", 0)),
    )


_JOB_FIELDS = ("case_id", "dataset", "model", "model_spec", "describer", "mode", "seed", "primary_metric")
"""The fields of a :class:`CaseJob` that its :class:`CaseResult` records under the same names."""


def _base(job: CaseJob, **fields: Any) -> CaseResult:
    ref = job.reference
    # where the reports find the reference image (the leaderboard's image grid)
    fields["extra"] = {"reference_path": str(Path(ref.path).resolve())} | fields.get("extra", {})
    return CaseResult(
        **{name: getattr(job, name) for name in _JOB_FIELDS},
        reference_id=ref.id,
        reference_sha256=ref.sha256,
        category=ref.category,
        style=ref.style,
        **fields,
    )


class CaseImages:
    """An in-memory image store that forgets a case's images once the case is recorded.

    Like :class:`~imagerepainter.images.MemoryImageStore` (decoded images keyed by their
    pixels), but the Repainter of a model serves many cases: the store counts each ``put``
    and :meth:`release` drops an image once every case that put it has released it, so
    memory stays bounded by the cases in flight.
    """

    def __init__(self) -> None:
        self._data: dict[str, tuple[Image.Image, int]] = {}
        self._lock = threading.Lock()

    def put(self, image: Image.Image) -> ImageRef:
        ref = ImageRef(sha256=image_sha256(image), width=image.width, height=image.height)
        with self._lock:
            old = self._data.get(ref["sha256"])
            self._data[ref["sha256"]] = (image.copy(), 1) if old is None else (old[0], old[1] + 1)
        return ref

    def get(self, ref: ImageRef) -> Image.Image:
        with self._lock:
            entry = self._data.get(ref["sha256"])
        if entry is None:
            raise ImageNotFoundError(f"Image {ref['sha256'][:12]} is not in this case store (already released).")
        return entry[0].copy()

    def release(self, refs: Sequence[Mapping[str, Any]]) -> None:
        """Forget one ``put`` of each of ``refs`` (anything with a ``sha256``)."""
        with self._lock:
            for ref in refs:
                entry = self._data.get(ref["sha256"])
                if entry is None:
                    continue
                if entry[1] <= 1:
                    del self._data[ref["sha256"]]
                else:
                    self._data[ref["sha256"]] = (entry[0], entry[1] - 1)

    def __len__(self) -> int:
        return len(self._data)


class ModelEngine:
    """One model's backend, loaded once, and the Repainters all of its cases share: one per describer
    (its MLLM critiques the cases it described), every one rendering through the same backend.

    The backend sits behind a :class:`~imagerepainter.bench.batching.RenderBatcher`: at most
    ``device_slots`` renders at once, and the renders of concurrent cases merged into batches.
    ``mllm`` is the MLLM of :data:`~imagerepainter.bench.records.DEFAULT_DESCRIBER`, ``describers``
    the resolved MLLM of each named describer instead.

    Raises:
        ModelLoadError: the backend could not be built or loaded (a missing package is raised as it is).
    """

    def __init__(
        self,
        name: str,
        t2i: Any,
        *,
        mllm: Any,
        scorer: Any,
        config: RepainterConfig,
        device_slots: int = 1,
        batch_window: float = DEFAULT_WINDOW,
        describers: Mapping[str, Any] | None = None,
    ) -> None:
        from ..repainter import Repainter

        self.name = name
        self.t2i = load_model(name, t2i)
        self.store = CaseImages()
        self.renderer = RenderBatcher(self.t2i, slots=device_slots, window=batch_window)
        self.repainters = {
            describer: Repainter(mllm=each, t2i=self.renderer, scorer=scorer, config=config, store=self.store)
            for describer, each in (describers or {DEFAULT_DESCRIBER: mllm}).items()
        }
        self.repainter = next(iter(self.repainters.values()))
        """The first describer's Repainter."""

    def regenerate(
        self, image: Image.Image, description: Description, mode: Mode, seed: int, describer: str = DEFAULT_DESCRIBER
    ) -> Any:
        """Run ``mode`` on ``image`` from ``description`` with ``describer`` as the critic; the one
        place that starts the loop."""
        repainter = self.repainters.get(describer)
        if repainter is None:
            raise ConfigurationError(f"Model {self.name!r} has no describer {describer!r}: {sorted(self.repainters)}.")
        with self.renderer.case():
            return repainter.run(image, description=description, seed=seed, progress=False, **MODE_SETTINGS[mode])

    def close(self) -> None:
        self.renderer.close()
        for repainter in self.repainters.values():
            repainter.close()


def load_model(name: str, spec: Any) -> Any:
    """Resolve and load the text-to-image backend of model ``name``.

    Raises:
        ModelLoadError: it could not be built or loaded; the message names the model and the cause.
        MissingDependencyError: a package it needs is not installed.
        ConfigurationError: the spec is wrong.
    """
    from ..backends.registry import resolve_t2i
    from ..errors import MissingDependencyError

    try:
        return resolve_t2i(spec)
    except (MissingDependencyError, ConfigurationError):
        raise
    except Exception as exc:
        raise _load_error(name, exc) from exc


class Workbench:
    """The shared backends of one process (or Ray actor) and the code that runs a case."""

    def __init__(self, spec: WorkerSpec) -> None:
        from ..backends.registry import resolve_mllm, resolve_scorer
        from .metrics import resolve_metrics

        self.spec = spec
        self.config = RepainterConfig.validated(dict(spec.config))
        self.mllms = {name: resolve_mllm(each) for name, each in spec.describer_specs().items()}
        """Each describer's MLLM, resolved once."""
        self.mllm = next(iter(self.mllms.values()))
        self.mllm_keys = {name: mllm_key(each) for name, each in spec.describer_specs().items()}
        """How each describer's MLLM is named in the cost ledger and in prices."""
        self.scorer = resolve_scorer(spec.scorer)
        load = getattr(self.scorer, "load", None)
        if callable(load):  # load once, before cases run in parallel
            load()
        # A scorer that batches across references scores concurrent cases' rounds in merged calls.
        self.loop_scorer: Any = (
            ScoreBatcher.wrap(self.scorer, window=spec.batch_window)
            if callable(getattr(self.scorer, "score_groups", None))
            else None
        )
        self.metrics: list[Metric] = (
            list(spec.metric_objects)
            if spec.metric_objects is not None
            else resolve_metrics(list(spec.metrics), mllm=self.mllm)
        )
        for metric in self.metrics:  # load weights now: a missing one fails before any case
            load_metric = getattr(metric, "load", None)
            if callable(load_metric):
                load_metric()
        self._engines: dict[str, ModelEngine] = {}
        self._broken: dict[str, Exception] = {}
        self._placed: dict[str, dict[str, Any]] = {}  # per model, what environment() describes once
        self._lock = threading.Lock()

    def engine(self, model: str) -> ModelEngine:
        """The engine of ``model``, built (its backend loaded) on first use, once.

        A model that fails to load fails the same way for every later call of this workbench
        (it is not loaded again for each case); a new evaluation tries again.

        Raises:
            ModelLoadError: the model could not be loaded (or its package is missing).
        """
        with self._lock:
            engine = self._engines.get(model)
            if engine is not None:
                return engine
            if model in self._broken:
                raise _own_error(self._broken[model])
            if model not in self.spec.models:
                raise ConfigurationError(f"Unknown model {model!r}; this worker has {sorted(self.spec.models)}.")
            try:
                engine = ModelEngine(
                    model,
                    self.spec.models[model],
                    mllm=self.mllm,
                    scorer=self.loop_scorer or self.scorer,
                    config=self.config,
                    device_slots=self.spec.device_slots,
                    batch_window=self.spec.batch_window,
                    describers=self.mllms,
                )
            except Exception as exc:
                self._broken[model] = exc if isinstance(exc, ModelLoadError) else _load_error(model, exc)
                raise _own_error(self._broken[model]) from None
            self._engines[model] = engine
            return engine

    def run_case(self, job: CaseJob, image: Image.Image, description: Description) -> CaseOutcome:
        """Regenerate ``image`` with the job's model and mode, and score the best image with every metric.

        Never raises for a failure of the case itself: it is returned as a failed record.
        """
        with scoring_cases(self.metrics), self.loop_scorer.case() if self.loop_scorer is not None else nullcontext():
            outcome = self._run_case(job, image, description)
        return dataclasses.replace(outcome, environment=self.environment(job.model))

    def environment(self, model: str) -> dict[str, Any]:
        """What this worker computes ``model``'s cases with: its backend, the loop scorer and the metrics
        (device, dtype; described once per loaded model), torch's runtime, and who answered the MLLM so far."""
        from .environment import merge_environment, worker_environment

        engine = self._engines.get(model)
        placed = self._placed.get(model)
        if placed is None:
            t2i = {model: engine.t2i} if engine is not None else {}
            placed = worker_environment(t2i=t2i, scorer=self.scorer, metrics=self.metrics)
            if engine is not None:  # a loaded backend keeps its device and dtype
                self._placed[model] = placed
        return merge_environment(dict(placed), worker_environment(mllm=self.mllm))

    def _run_case(self, job: CaseJob, image: Image.Image, description: Description) -> CaseOutcome:
        start = time.perf_counter()
        key = self.mllm_keys[job.describer]
        described = description_cost(description, key)
        try:
            engine = self.engine(job.model)
            result = engine.regenerate(image, description, job.mode, job.seed, job.describer)
        except Exception as exc:
            partial = getattr(exc, "partial_result", None)
            if partial is not None and job.model in self._engines:
                self._engines[job.model].store.release(_refs_of(partial))
            seconds = time.perf_counter() - start
            case = failed_case(job, exc, seconds=seconds, spent=partial)
            case = case.model_copy(update={"cost": case_cost(partial, mllm=key, description=described)})
            return CaseOutcome(
                case,
                permanent=is_permanent(exc),
                outlasted_retries=outlasted_retries(exc),
                model_failure=not isinstance(exc, MLLMError),
            )
        try:
            return self._record(job, image, result, start, described, tree=description.understanding)
        finally:
            engine.store.release(_refs_of(result))

    def _record(
        self,
        job: CaseJob,
        image: Image.Image,
        result: Any,
        start: float,
        described: DescriptionCost,
        *,
        tree: Any = None,
    ) -> CaseOutcome:
        # a case that fails after its run still spent what the run did
        key = self.mllm_keys[job.describer]
        spent = {"cost": case_cost(result, mllm=key, description=described)}
        best = result.best
        if best is None:
            return CaseOutcome(
                failed_case(
                    job, "no image could be scored (every candidate was blocked)", seconds=time.perf_counter() - start
                ).model_copy(update=spent)
            )
        best_image = best.image
        try:
            values = compute_metrics(self.metrics, image, [best_image], tree=tree)
            details = metric_details(self.metrics, image, [best_image], tree=tree)[0]
        except Exception as exc:
            return CaseOutcome(failed_case(job, exc, seconds=time.perf_counter() - start).model_copy(update=spent))
        metrics = {name: v[0] for name, v in values.items()}
        judged = [d for d in details.values() if isinstance(d, dict) and ("ratings" in d or "checks" in d)]
        higher = {m.name: bool(m.higher_is_better) for m in self.metrics}
        # the loop's calls plus a judge's and an element check's (model calls of this case too)
        cost = case_cost(result, mllm=key, description=described, judged=judged)
        own = cost.mllm.get(key, MLLMUsage())
        case = _base(
            job,
            status="ok",
            metrics=metrics,
            higher_is_better=higher,
            best_prompt=best.prompt,
            rounds=len(result.rounds),
            images=cost.images,
            mllm_calls=own.calls,
            input_tokens=own.input_tokens,
            output_tokens=own.output_tokens,
            seconds=time.perf_counter() - start,
            stop_reason=result.stop_reason,
            cost=cost,
            extra={
                "loop_scorer": self.scorer.name,
                "loop_score": best.score,
                "best_round": best.round,
                "best_seed": best.seed,
                "scores_per_round": result.scores,
                "initial_prompt": result.initial_prompt,
            }
            | ({"metric_details": details} if details else {}),
        )
        return CaseOutcome(case, best_image=best_image)  # encoded where it is stored, off this case's thread

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        if self.loop_scorer is not None:
            self.loop_scorer.close()


def _load_error(model: str, exc: Exception) -> ModelLoadError:
    """A load failure that is not already a :class:`ModelLoadError` (a missing package, a bad spec) as one."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    error = ModelLoadError(f"Model {model!r} could not be loaded: {type(exc).__name__}: {redact(text)}")
    error.__cause__ = exc
    return error


def _own_error(exc: Exception) -> Exception:
    """A copy of a kept error for one case (a case's run annotates its error)."""
    error = copy.copy(exc)
    error.__cause__ = exc.__cause__
    return error


def _refs_of(result: Any) -> list[ImageRef]:
    """Every image a case put into its model's store: the reference and each candidate."""
    return [result.reference, *(c.image_ref for c in [*result.candidates, *result.pending])]
