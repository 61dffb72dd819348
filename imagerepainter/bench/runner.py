"""``evaluate``: regenerate every reference of a dataset with every model, in every mode, and record it.

For each reference the MLLM's description is computed once (see
:mod:`~imagerepainter.bench.describer`); then each (model, mode) case starts from it with the
same seed, is scored with every metric, and is written to ``results.sqlite`` in ``out``
(its best image under ``out/images``). Cases are keyed by what decides their result (see
:func:`~imagerepainter.bench.store.case_key`), so an evaluation

* resumes where it stopped after a crash or ``SIGKILL`` (finished cases are never recomputed);
* does nothing when run again;
* computes only the new model's cases when a model is added;
* records a failed case with its error and goes on; ``retry_failed=True`` retries those;
* keeps every model busy at once: cases interleave across models (see
  :mod:`~imagerepainter.bench.scheduler`), and the renders of concurrent cases of a model are
  merged into batched calls (see :mod:`~imagerepainter.bench.batching`);
* cuts off a model that keeps failing (see :mod:`~imagerepainter.bench.breaker`): its remaining
  cases are recorded as ``skipped`` at once, and the next run tries them again;
* records what each case used (see :mod:`~imagerepainter.bench.costs`) and, with ``prices``,
  stops starting cases once this call has spent ``budget`` dollars (see
  :mod:`~imagerepainter.bench.budget`): the next run computes the rest.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> folder = Path(tempfile.mkdtemp())
    >>> for i in range(2):
    ...     render_scene(random_scene(i), 96, 96).save(folder / f"scene_{i}.png")
    >>> report = evaluate(folder, mllm="sandbox", models={"sandbox": "sandbox"}, metrics=["sandbox"],
    ...                   out=Path(tempfile.mkdtemp()), settings={"max_rounds": 2})
    >>> report.computed, report.failed, report.descriptions_computed
    (4, 0, 2)
    >>> evaluate(folder, mllm="sandbox", models={"sandbox": "sandbox"}, metrics=["sandbox"],
    ...          out=report.out, settings={"max_rounds": 2}).computed
    0
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .._files import atomic_write
from ..config import RepainterConfig
from ..errors import ConfigurationError
from ..loop.prompts import PROMPT_VERSION
from .datasets import Dataset, load_dataset
from .describer import Describer, Describers
from .describer_specs import check_describer_specs, describer_specs
from .engine import MODE_SETTINGS, CaseJob, CaseOutcome, WorkerSpec
from .environment import EnvironmentChange, EnvironmentLog, environment_section
from .executors import Executor, LocalExecutor
from .prices import Prices, load_prices, mllm_key
from .records import DEFAULT_DESCRIBER, CaseResult, Mode
from .store import ResultsStore, case_key, stable_hash

__all__ = ["EvaluationReport", "ProgressEvent", "check_evaluation", "evaluate", "spec_text"]

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


@dataclass(frozen=True)
class ProgressEvent:
    """Where an evaluation stands; passed to ``on_progress`` after each case (and once at the start)."""

    done: int
    """Cases finished in this call (computed or failed)."""
    total: int
    """Cases to compute in this call (finished ones skipped)."""
    skipped: int
    """Cases already in the database."""
    failed: int
    """Cases of this call that failed, or were skipped because their model's circuit breaker opened."""
    case: CaseResult | None = None
    """The case that just finished (``None`` for the first event)."""


class EvaluationReport(BaseModel):
    """What :func:`evaluate` did, and every case of the evaluation (finished before or now)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    out: Path
    database: Path
    dataset: str
    models: list[str]
    describers: list[str] = [DEFAULT_DESCRIBER]
    """The describers' names (``--mllm NAME=SPEC``); one unnamed MLLM is
    :data:`~imagerepainter.bench.records.DEFAULT_DESCRIBER`."""
    modes: list[Mode]
    metrics: list[str]
    primary_metric: str
    cases: list[CaseResult]
    """Every case of this evaluation's plan that has a row, in database order."""
    computed: int
    """Cases computed by this call (ok or failed)."""
    skipped: int
    """Cases found finished in the database and not recomputed."""
    failed: int
    """Cases of this call that failed (see each case's ``error``)."""
    breaker_skipped: int = 0
    """Cases of this call skipped because their model's circuit breaker opened."""
    stopped_models: dict[str, str] = {}
    """The models whose circuit breaker opened in this call, with the reason."""
    descriptions_computed: int
    descriptions_reused: int
    seconds: float
    start_seconds: float = 0.0
    """What the executor spent starting (Ray: starting the cluster and the actors; 0 for local threads)."""
    prices: Prices | None = None
    """The prices given (dollars appear in the reports only with them)."""
    not_started: int = 0
    """Cases the budget kept from starting: the next call computes them."""
    budget_stop: dict[str, float] | None = None
    """When the budget stopped the call: ``limit`` and ``spent`` (dollars) and ``not_started`` (cases)."""
    environment_changes: list[EnvironmentChange] = []
    """How this call's environment differs from the last call that computed cases (see
    :mod:`~imagerepainter.bench.environment`); empty on a first call."""

    def write_reports(self) -> dict[str, Path]:
        """Write the leaderboard files into :attr:`out` (see :mod:`imagerepainter.bench.leaderboard`)."""
        from .leaderboard import write_reports

        return write_reports(
            self.cases,
            self.out,
            primary_metric=self.primary_metric,
            prices=self.prices,
            budget_stop=self.budget_stop,
            environment=environment_section(ResultsStore(self.out)),
        )


def spec_text(spec: Any) -> str:
    """How a backend given as ``spec`` is named in keys and records: the spec string, or the
    object's class and name (an object's settings are not visible: rename it when they change)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, os.PathLike):
        return os.fspath(spec)
    return f"object:{type(spec).__module__}.{type(spec).__qualname__}:{getattr(spec, 'name', '')}"


def evaluate(
    dataset: Dataset | str | os.PathLike[str],
    *,
    mllm: Any,
    models: Mapping[str, Any],
    out: str | os.PathLike[str],
    modes: Sequence[Mode] = ("single", "repaint"),
    metrics: Sequence[str] = ("paper",),
    scorer: Any = None,
    preset: str = "default",
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    limit: int | None = None,
    categories: Sequence[str] | None = None,
    per_category: int | None = None,
    executor: Literal["local", "ray"] | Any = "local",
    max_concurrency: int = 4,
    device_slots: int = 1,
    retry_failed: bool = False,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    prices: Prices | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    budget: float | None = None,
) -> EvaluationReport:
    """Evaluate ``models`` on ``dataset`` and record every case in ``out/results.sqlite``.

    Args:
        dataset: A :class:`Dataset`, or what :func:`~imagerepainter.bench.datasets.load_dataset`
            takes (a folder, a JSONL manifest, ``"evalref-100"``).
        mllm: The MLLM that describes (once per reference) and critiques: a spec or an object; or several
            by name, to rank them (``{"gpt4o": spec, ...}``; see :mod:`~imagerepainter.bench.describer_specs`).
        models: The text-to-image models by name (``{"sdxl": "diffusers:stabilityai/sdxl-turbo"}``):
            specs, or objects (used as they are).
        out: The output folder (created; reused to resume).
        modes: ``"single"`` (describe once, generate once) and/or ``"repaint"`` (the full loop).
        metrics: Metric names; the first is the primary one (the leaderboard's ranking).
        scorer: The loop's own scorer (which picks each case's best image); default: the first
            metric when it names a scorer, else ``"paper"``.
        preset: The loop preset (``"default"`` or ``"paper"``).
        settings: Loop settings for every case (e.g. ``{"max_rounds": 3, "height": 512}``).
        seed: The base seed; every model and mode of a reference uses the same seeds.
        limit: Evaluate only the first ``limit`` references (after ``categories``).
        categories: Evaluate only the references of these categories.
        per_category: Evaluate at most this many references of each category (the first ones).
        executor: ``"local"`` (threads in this process), ``"ray"``, or an executor object
            such as :class:`~imagerepainter.bench.ray_executor.RayExecutor`.
        max_concurrency: Cases in flight at once (their MLLM calls overlap).
        device_slots: Renders of one model that may run at once (1 protects a GPU).
        retry_failed: Compute again the cases recorded as failed (cases skipped because their
            model's circuit breaker opened are computed again by every run).
        on_progress: Called with a :class:`ProgressEvent` at the start and after each case.
        prices: A prices TOML file or its contents (:mod:`~imagerepainter.bench.prices`): the
            reports then show dollars. Every model and the MLLM need a price.
        budget: Dollars this call may spend (needs ``prices``); then no case starts, and the
            next call computes the rest (:mod:`~imagerepainter.bench.budget`).

    Raises:
        ConfigurationError: a bad argument, found before any model is loaded or called.
    """
    start = time.perf_counter()
    checked = _check_arguments(mllm=mllm, models=models, modes=modes, metrics=metrics, scorer=scorer, preset=preset,
                               settings=settings, seed=seed, max_concurrency=max_concurrency,
                               device_slots=device_slots, executor=executor, prices=prices,
                               budget=budget)  # fmt: skip
    plan = _plan(dataset, checked, models=models, seed=seed, limit=limit, categories=categories,
                 per_category=per_category, device_slots=device_slots)  # fmt: skip
    store, environment = _open_store(out, plan)
    todo = _todo(plan, store, retry_failed=retry_failed)
    skipped = len(plan.jobs) - len(todo)
    if on_progress is not None:
        on_progress(ProgressEvent(done=0, total=len(todo), skipped=skipped, failed=0))
    ran = _Ran()
    if todo:
        ran = _run(todo, plan, store, executor=_executor(executor, max_concurrency), on_progress=on_progress,
                   skipped=skipped, budget=budget, prices=checked.prices, environment=environment)  # fmt: skip
    stop = _budget_stop(ran.spend, not_started := len(todo) - ran.done)
    store.set_meta("budget_stop", stop)  # the reports say it until a call leaves nothing undone
    return EvaluationReport(
        out=store.out,
        database=store.path,
        dataset=plan.dataset.name,
        models=list(plan.worker.models),
        describers=list(plan.describers),
        modes=list(plan.modes),
        metrics=list(plan.metrics),
        primary_metric=primary_metric(plan.metrics),
        cases=store.cases(job.case_id for job in plan.jobs),
        computed=ran.done,
        skipped=skipped,
        failed=ran.failed,
        breaker_skipped=ran.cut_off,
        stopped_models=ran.stopped,
        descriptions_computed=ran.described,
        descriptions_reused=ran.reused,
        seconds=time.perf_counter() - start,
        start_seconds=ran.start_seconds,
        prices=checked.prices,
        not_started=not_started,
        budget_stop=stop,
        environment_changes=environment.finish(cases=ran.done, mllm=ran.described_with),
    )


def _todo(plan: _Plan, store: ResultsStore, *, retry_failed: bool) -> list[CaseJob]:
    """The planned cases this call computes: those not recorded, skipped by a breaker, or (``retry_failed``) failed."""
    status = store.case_status(job.case_id for job in plan.jobs)
    redo = {None, "skipped", *(["failed"] if retry_failed else [])}
    return [j for j in plan.jobs if status.get(j.case_id) in redo]


@dataclass
class _Ran:
    """What running an evaluation's cases did."""

    done: int = 0
    failed: int = 0
    cut_off: int = 0
    stopped: dict[str, str] = field(default_factory=dict)
    described: int = 0
    reused: int = 0
    start_seconds: float = 0.0
    spend: Any = None
    described_with: Any = None


def _run(todo: list[CaseJob], plan: _Plan, store: ResultsStore, *, executor: Executor,
         on_progress: Callable[[ProgressEvent], None] | None, skipped: int, budget: float | None,
         prices: Prices | None, environment: EnvironmentLog) -> _Ran:  # fmt: skip
    """Run ``todo`` on ``executor``, saving each case as it ends; stop starting cases at ``budget``."""
    ran = _Ran()
    describer = _describers(plan, store)
    ran.spend = _budget(budget, prices, describer)
    try:
        for outcome in executor(todo, plan.worker, describer, **({"budget": ran.spend} if ran.spend else {})):
            case = _save(store, outcome, environment)
            ran.done += 1
            ran.failed, ran.cut_off = ran.failed + (case.status == "failed"), ran.cut_off + (case.status == "skipped")
            if case.status == "skipped":
                ran.stopped.setdefault(case.model, case.error or "")
            if on_progress is not None:
                on_progress(ProgressEvent(ran.done, len(todo), skipped, ran.failed + ran.cut_off, case))
    finally:
        describer.close()
    ran.described, ran.reused = describer.computed, describer.reused
    ran.described_with = describer.described_with
    ran.start_seconds = float(getattr(executor, "start_seconds", 0.0))
    return ran


def _budget(budget: float | None, prices: Prices | None, describers: Describers) -> Any:
    """The call's :class:`~imagerepainter.bench.budget.Budget`, or None without one."""
    if budget is None or prices is None:
        return None
    from .budget import Budget

    return Budget(budget, prices, describer=describers)


def _budget_stop(spend: Any, not_started: int) -> dict[str, float] | None:
    """What the reports say when the budget stopped the call (kept in the store for a rebuild)."""
    if spend is None or not not_started:
        return None
    return {"limit": spend.limit, "spent": spend.spent, "not_started": not_started}


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Plan:
    dataset: Dataset
    modes: tuple[Mode, ...]
    metrics: tuple[str, ...]
    describers: dict[str, Any]
    config: RepainterConfig
    worker: WorkerSpec
    jobs: list[CaseJob]


@dataclass(frozen=True)
class _Checked:
    modes: tuple[Mode, ...]
    metrics: tuple[str, ...]
    scorer: Any
    config: RepainterConfig
    describers: dict[str, Any]
    prices: Prices | None = None


def check_evaluation(*, mllm: Any, models: Mapping[str, Any], modes: Sequence[Mode] = ("single", "repaint"),
                     metrics: Sequence[str] = ("paper",), scorer: Any = None, preset: str = "default",
                     settings: Mapping[str, Any] | None = None, seed: int = 0, max_concurrency: int = 4,
                     device_slots: int = 1, executor: Any = "local", prices: Any = None,
                     budget: float | None = None) -> None:  # fmt: skip
    """Check the arguments of :func:`evaluate` that are not the dataset, loading, building and writing nothing.

    :func:`evaluate` runs the same checks first; call this before an expensive step of your own
    (the command line calls it before it loads or downloads the dataset). In order: model names,
    every spec (models, MLLM, metrics, scorer; a typo is named with the closest names), modes,
    settings, then the packages of what is really used (every missing extra in one error), then
    the prices (readable, one for every model and every describer's MLLM) and the budget. Named
    describers (``mllm={"a": spec, ...}``) are checked by name first. A
    ``device`` in a spec is checked against this machine only with the local executor.

    Raises:
        ConfigurationError: a bad argument (UnknownBackendError for a name nothing answers to).
        MissingDependencyError: a package that a backend or metric needs is not installed.

    Example:
        >>> check_evaluation(mllm="sandbox", models={"a": "sandbox?fidelty=0.6"}, metrics=["sandbox"])
        Traceback (most recent call last):
        ...
        imagerepainter.errors.ConfigurationError: Model 'a': Unknown option 'fidelty' in the 'sandbox' \
text-to-image spec. Did you mean 'fidelity'? Accepted options: default_size, drop, fidelity, jitter, noise.
    """
    _check_arguments(mllm=mllm, models=models, modes=modes, metrics=metrics, scorer=scorer, preset=preset,
                     settings=settings, seed=seed, max_concurrency=max_concurrency,
                     device_slots=device_slots, executor=executor, prices=prices, budget=budget)  # fmt: skip


def _check_arguments(*, mllm: Any, models: Mapping[str, Any], modes: Sequence[Mode], metrics: Sequence[str],
                     scorer: Any, preset: str, settings: Mapping[str, Any] | None, seed: int, max_concurrency: int,
                     device_slots: int, executor: Any, prices: Any = None,
                     budget: float | None = None) -> _Checked:  # fmt: skip
    from ..backends.registry import check_spec
    from .metric_specs import check_metrics

    here = executor == "local" or isinstance(executor, LocalExecutor)  # else devices are checked where cases run

    if not models:
        raise ConfigurationError(
            "models is empty; give at least one text-to-image model, e.g. {'sd': 'diffusers:...'}."
        )
    for name in models:
        if not _MODEL_NAME.match(str(name)):
            raise ConfigurationError(
                f"Model name {name!r} is not usable; use letters, digits and . _ + - (up to 64, e.g. 'sdxl-turbo')."
            )
    describers = describer_specs(mllm)
    mllm = next(iter(describers.values()))  # the judge's
    for name, each in describers.items():
        _refuse_credentials(each, models, scorer, mllm_label="MLLM" if name == DEFAULT_DESCRIBER else f"{name!r} MLLM")
    _check_model_specs(models, device_here=here)
    check_describer_specs(describers)
    metrics = tuple(dict.fromkeys(str(m) for m in metrics))
    if not metrics:
        raise ConfigurationError("metrics is empty; give at least one, e.g. ['paper'].")
    check_metrics(metrics, mllm=mllm, device_here=here)
    check_spec("scorer", scorer, device_here=here)
    modes = tuple(dict.fromkeys(modes))
    if not modes or any(m not in MODE_SETTINGS for m in modes):
        raise ConfigurationError(f"modes must be among {sorted(MODE_SETTINGS)}, got {list(modes)!r}.")
    if max_concurrency < 1 or device_slots < 1:
        raise ConfigurationError("max_concurrency and device_slots must be at least 1.")
    if not 0 <= seed < 2**32:
        raise ConfigurationError(f"seed must be in [0, 2**32), got {seed}.")
    if "seed" in (settings or {}):
        raise ConfigurationError("Give the seed as evaluate(seed=...), not in settings.")
    config = RepainterConfig.from_preset(preset).with_overrides(**dict(settings or {}))
    if scorer is None:
        scorer = _default_scorer(metrics[0], describers, models)
    _check_installed(describers, models, scorer, metrics)
    return _Checked(
        modes, metrics, scorer, config, describers, _check_prices(prices, budget, describers, models, executor)
    )


def _check_prices(prices: Any, budget: float | None, describers: Mapping[str, Any], models: Mapping[str, Any],
                  executor: Any) -> Any:  # fmt: skip
    """The prices loaded and covering the run, and a budget that can be kept."""
    from .budget import check_budget

    check_budget(budget, prices)
    if prices is None:
        return None
    loaded = load_prices(prices)
    loaded.check_covers(mllm=[mllm_key(each) for each in describers.values()], models=models)
    if budget is not None and executor not in ("local", "ray") and not _takes_budget(executor):
        raise ConfigurationError(
            f"The executor {type(executor).__name__} takes no budget= keyword, so it cannot stop at a budget; "
            "drop the budget or use the local or Ray executor."
        )
    return loaded


def _takes_budget(executor: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(executor).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "budget" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _plan(dataset: Any, checked: _Checked, *, models: Mapping[str, Any], seed: int, limit: int | None,
          categories: Sequence[str] | None, per_category: int | None, device_slots: int) -> _Plan:  # fmt: skip
    """List the cases of the checked arguments, before any model is loaded or called: one per
    reference, model, mode and describer."""
    modes, metrics, scorer, config = checked.modes, checked.metrics, checked.scorer, checked.config
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    data = data.select(categories=categories, per_category=per_category, limit=limit)
    describers = checked.describers
    worker = WorkerSpec(
        mllm=next(iter(describers.values())),
        models=dict(models),
        scorer=scorer,
        metrics=metrics,
        config=config.model_dump(mode="json"),
        device_slots=device_slots,
        describers=describers,
    )
    jobs = []
    for mode, (describer, mllm) in itertools.product(modes, describers.items()):
        mode_config = config.with_overrides(**MODE_SETTINGS[mode])
        config_hash = stable_hash(
            {"config": mode_config.model_dump(mode="json"), "mllm": spec_text(mllm), "scorer": spec_text(scorer),
             "prompt_version": PROMPT_VERSION}
        )  # fmt: skip
        named = None if describer == DEFAULT_DESCRIBER else describer  # one unnamed MLLM: keys as before
        for name, spec in models.items():
            for ref in data:
                key = case_key(reference_sha256=ref.sha256, model=name, model_spec=spec_text(spec), mode=mode,
                               metrics=metrics, seed=seed, config_hash=config_hash, describer=named)  # fmt: skip
                jobs.append(CaseJob(key, data.name, ref, name, spec_text(spec), mode, seed, primary_metric(metrics),
                                    describer))  # fmt: skip
    order = list(describers)
    jobs.sort(
        key=lambda j: (j.reference.id, modes.index(j.mode), list(models).index(j.model), order.index(j.describer))
    )
    return _Plan(data, modes, metrics, describers, config, worker, jobs)


def _check_installed(describers: Mapping[str, Any], models: Mapping[str, Any], scorer: Any,
                     metrics: Sequence[str]) -> None:  # fmt: skip
    """Name every missing extra of the MLLMs, the models, the scorer and the scorer-spec metrics in one error,
    before anything is loaded or downloaded (the registry's one check)."""
    from ..backends.registry import check_installed

    first, *others = describers.values()
    specs: list[tuple[Any, Any]] = [("mllm", spec) for spec in others] + [("t2i", spec) for spec in models.values()]
    specs += [("scorer", scorer), *(("scorer", _scorer_spec(metric)) for metric in metrics)]
    check_installed(mllm=first, specs=specs)


def _check_model_specs(models: Mapping[str, Any], *, device_here: bool) -> None:
    """Check each model's spec (provider and options), without loading anything; the error names the model."""
    from ..backends.registry import check_spec
    from ..errors import UnknownBackendError

    for name, spec in models.items():
        try:
            check_spec("t2i", spec, device_here=device_here)
        except UnknownBackendError as exc:
            raise UnknownBackendError(f"Model {name!r}: {exc}", spec=exc.spec, suggestions=exc.suggestions) from None
        except ConfigurationError as exc:
            raise ConfigurationError(f"Model {name!r}: {exc}") from None


def _refuse_credentials(mllm: Any, models: Mapping[str, Any], scorer: Any, *, mllm_label: str = "MLLM") -> None:
    """Refuse specs holding a credential (the package's one rule): results.sqlite records them."""
    from .._secrets import refuse_credentials

    texts = [spec if isinstance(spec, str) else "sandbox" for spec in (mllm, scorer or "paper")]
    for spec in models.values():
        labelled = {
            mllm_label: texts[0],
            "text-to-image": spec if isinstance(spec, str) else "sandbox",
            "scorer": texts[1],
        }
        refuse_credentials(labelled, recorded_in="The benchmark records specs in results.sqlite")


def primary_metric(metrics: Sequence[str]) -> str:
    """The name of the first metric: its ``NAME=`` label, else its spec without ``?options``.

    Example:
        >>> primary_metric(["paper?device=cuda", "ssim"]), primary_metric(["mine=ssim?kernel_size=7"])
        ('paper', 'mine')
    """
    head = metrics[0].split("?", 1)[0]
    return head.split("=", 1)[0].strip() if "=" in head else head.strip()


def _default_scorer(metric: str, describers: Mapping[str, Any], models: Mapping[str, Any]) -> str:
    """The loop's scorer when none is given: the first metric when it is a scorer spec, else the
    backends' default (``sandbox`` when every MLLM and every model are sandbox specs, else ``paper``)."""
    from ..backends.registry import default_scorer

    if spec := _scorer_spec(metric):
        return spec
    pairs = itertools.product(describers.values(), models.values())
    return "sandbox" if all(default_scorer(mllm, spec) == "sandbox" for mllm, spec in pairs) else "paper"


def _scorer_spec(metric: str) -> str | None:
    """The scorer spec a metric names (``mine=ssim?kernel_size=7`` -> ``ssim?kernel_size=7``), or None
    for metrics that are not scorers (``judge``, ``lpips``) or parts of one (``paper.clip``)."""
    from ..backends.registry import available_backends, parse_spec

    spec = metric.split("=", 1)[1] if "=" in metric.split("?", 1)[0] else metric
    provider = parse_spec(spec)[0]
    return spec if "." not in provider and provider in available_backends()["scorer"] else None


# ----------------------------------------------------------------------------- executing


def _describers(plan: _Plan, store: ResultsStore) -> Describers:
    """One :class:`~imagerepainter.bench.describer.Describer` per describer of the plan, storing into ``store``."""
    return Describers(
        {name: Describer(mllm=spec, mllm_key=spec_text(spec), config=plan.config, store=store, name=name)
         for name, spec in plan.describers.items()}
    )  # fmt: skip


def _executor(executor: Any, max_concurrency: int) -> Executor:
    if executor == "local":
        return LocalExecutor(max_concurrency=max_concurrency)
    if executor == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(max_concurrency=max_concurrency)
    if callable(executor):
        return executor  # type: ignore[no-any-return]
    raise ConfigurationError(f"executor must be 'local', 'ray' or an executor object, not {executor!r}.")


def _open_store(out: str | os.PathLike[str], plan: _Plan) -> tuple[ResultsStore, EnvironmentLog]:
    """The results database, remembering the evaluation's metrics, and this call's environment log
    (compared with the last call's as it opens: a warning names what changed)."""
    store = ResultsStore(out)
    store.set_meta("primary_metric", primary_metric(plan.metrics))
    store.set_meta("metrics", list(plan.metrics))  # the specs, for `verify` to compute them again
    environment = EnvironmentLog(store)
    environment.start()
    return store, environment


def _save(store: ResultsStore, outcome: CaseOutcome, environment: EnvironmentLog) -> CaseResult:
    """Write the best image (atomically), then the case's row: a row never names a missing image; keep
    what the worker reported of its environment for the call's manifest."""
    environment.add(outcome.environment)
    case = outcome.case
    png = outcome.png()
    if png is not None:
        rel = Path("images") / _safe(case.model) / case.mode / f"{_safe(case.reference_id)}-{case.case_id[:10]}.png"
        target = store.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, png)
        case = case.model_copy(update={"best_image": rel.as_posix()})
    store.put_case(case)
    return case


def _safe(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("._")[:80] or "x"
