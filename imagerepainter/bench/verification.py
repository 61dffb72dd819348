"""``verify``: score a sample of an evaluation's stored best images again, here and now, and say what drifted.

An evaluation stores every case's best image (``out/images``) and its metric values
(``results.sqlite``). :func:`verify` draws a deterministic sample of the finished cases, loads
the metrics the evaluation used (the same specs, each loaded once), scores each sampled best
image against its reference again, and compares every value with the stored one. A value that
moved by more than its tolerance is a **drift**: the metric's models, its library or the
hardware now compute something else than when the evaluation ran, so today's numbers should
not be mixed with the stored ones. The report also lists how the environment differs from the
last recorded manifest (:mod:`~imagerepainter.bench.environment`), which usually says why.

Tolerances are absolute differences, per metric kind (:data:`DEFAULT_TOLERANCES`, by the
metric's scorer: ``paper.clip`` uses ``paper``'s, ``mine=ssim?...`` uses ``ssim``'s); NaN
stored and NaN now agree. The ``judge`` asks an MLLM (paid, and not bit-for-bit repeatable),
so it is skipped unless an ``mllm`` is given.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from imagerepainter.bench.runner import evaluate
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> refs = Path(tempfile.mkdtemp())
    >>> render_scene(random_scene(1), 96, 96).save(refs / "scene.png")
    >>> out = evaluate(refs, mllm="sandbox", models={"m": "sandbox"}, metrics=["sandbox", "ssim"],
    ...                out=Path(tempfile.mkdtemp()), modes=["single"]).out
    >>> report = verify(out)
    >>> report.checked, report.drifts, report.ok
    (1, [], True)
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigurationError
from .environment import EnvironmentChange, collect_environment, environment_changes, recorded_environments
from .records import CaseResult
from .store import DATABASE_NAME, ResultsStore

__all__ = [
    "DEFAULT_TOLERANCE",
    "DEFAULT_TOLERANCES",
    "MetricDrift",
    "VerifyReport",
    "format_verify_report",
    "parse_tolerance",
    "verify",
]

DEFAULT_TOLERANCES: dict[str, float] = {
    "paper": 2e-3,
    "clip": 2e-3,
    "dinov2": 2e-3,
    "lpips": 2e-3,
    "dreamsim": 2e-3,
    "ssim": 1e-4,
    "psnr": 1e-2,
    "sandbox": 1e-6,
    "judge": 0.5,
}
"""Largest absolute difference that is not a drift, by metric kind. Embedding cosines and learned
distances move by about 1e-4 between runs on one GPU and by up to 1e-3 across GPUs or
batch sizes; pixel metrics are exact up to float rounding; the judge rates in whole points."""

DEFAULT_TOLERANCE = 1e-4
"""The tolerance of a metric kind not in :data:`DEFAULT_TOLERANCES` (a plug-in scorer)."""


class MetricDrift(BaseModel):
    """A stored metric value that today's environment does not reproduce."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_id: str
    model: str
    mode: str
    reference_id: str
    metric: str
    stored: float
    now: float
    difference: float
    """``abs(now - stored)`` (``inf`` when only one of them is NaN)."""
    tolerance: float


class VerifyReport(BaseModel):
    """What :func:`verify` found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path
    sampled: int
    """Cases drawn from the finished ones."""
    checked: int
    """Sampled cases scored again (the others are in :attr:`unchecked`)."""
    metrics: list[str]
    """The metrics scored again."""
    drifts: list[MetricDrift] = Field(default_factory=list)
    skipped_metrics: dict[str, str] = Field(default_factory=dict)
    """Metrics not scored again, and why (the judge without an MLLM; the element check)."""
    unchecked: dict[str, str] = Field(default_factory=dict)
    """Sampled cases that could not be scored again (a missing image, a changed reference), by case id."""
    environment_changes: list[EnvironmentChange] = Field(default_factory=list)
    """How this environment differs from the evaluation's last recorded one."""
    environment_recorded: bool = False
    """Whether the evaluation recorded a manifest to compare with (older evaluations did not)."""

    @property
    def ok(self) -> bool:
        """No metric drifted."""
        return not self.drifts


def parse_tolerance(text: str | float | Mapping[str, float] | None) -> dict[str, float]:
    """Tolerances from the command line: one number for every metric, or ``NAME=VALUE`` pairs by metric
    name or kind (``0.01``; ``paper=0.005,ssim=0``); ``{"*": value}`` stands for every metric.

    Raises:
        ConfigurationError: not a number, or a negative one.

    Example:
        >>> parse_tolerance("paper=0.005, ssim=0"), parse_tolerance("0.01")
        ({'paper': 0.005, 'ssim': 0.0}, {'*': 0.01})
    """
    if text is None:
        return {}
    pairs: dict[str, Any]
    if isinstance(text, Mapping):
        pairs = {str(k): v for k, v in text.items()}
    elif isinstance(text, (int, float)):
        pairs = {"*": text}
    else:
        pairs = {}
        for item in filter(None, (part.strip() for part in str(text).split(","))):
            name, sep, value = item.rpartition("=")
            pairs[name.strip() if sep else "*"] = value.strip()
    out: dict[str, float] = {}
    for name, value in pairs.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not number >= 0:
            shown = repr(value) if name == "*" else f"{name}={value!r}"
            raise ConfigurationError(
                f"tolerance {shown} is not a number >= 0; write e.g. --tolerance 0.01 or "
                "--tolerance paper=0.005,ssim=0."
            )
        out[name] = number
    return out


def verify(
    out: str | os.PathLike[str],
    *,
    sample: int = 16,
    seed: int = 0,
    tolerance: str | float | Mapping[str, float] | None = None,
    mllm: Any = None,
) -> VerifyReport:
    """Score ``sample`` of the evaluation's stored best images again and report every drifted metric.

    Args:
        out: The evaluation's output folder (its ``results.sqlite`` and ``images``).
        sample: How many finished cases to score again (all of them when fewer); the same ``seed``
            draws the same cases.
        seed: Seed of the draw.
        tolerance: Override :data:`DEFAULT_TOLERANCES`: one number, or per metric name or kind
            (see :func:`parse_tolerance`).
        mllm: The judge's MLLM (a spec or object); without it the ``judge`` metrics are skipped.

    Raises:
        ConfigurationError: no evaluation in ``out``, nothing finished to verify, a bad argument,
            or a metric that can no longer be built (its message says which).
    """
    from .metrics import compute_metrics, resolve_metrics

    store = _open(out, sample)
    tolerances = parse_tolerance(tolerance)
    cases = _sample([c for c in store.cases() if c.status == "ok" and c.best_image], sample, seed)
    if not cases:
        raise ConfigurationError(f"{str(store.out)!r} holds no finished case with a stored image; nothing to verify.")
    specs, skipped = _specs(store, cases, judged=mllm is not None)
    metrics = resolve_metrics(specs, mllm=mllm) if specs else []
    for metric in metrics:
        load = getattr(metric, "load", None)
        if callable(load):
            load()
    drifts: list[MetricDrift] = []
    unchecked: dict[str, str] = {}
    for case in cases:
        images = _images(store.out, case)
        if isinstance(images, str):
            unchecked[case.case_id] = images
            continue
        now = {name: values[0] for name, values in compute_metrics(metrics, images[0], [images[1]]).items()}
        drifts += _compare(case, now, metrics, tolerances)
    history = recorded_environments(store)
    current = collect_environment(_placements(metrics))
    return VerifyReport(
        out=store.out,
        sampled=len(cases),
        checked=len(cases) - len(unchecked),
        metrics=[m.name for m in metrics],
        drifts=drifts,
        skipped_metrics=skipped,
        unchecked=unchecked,
        environment_changes=environment_changes(history[-1]["manifest"], current) if history else [],
        environment_recorded=bool(history),
    )


def _open(out: str | os.PathLike[str], sample: int) -> ResultsStore:
    if sample < 1:
        raise ConfigurationError(f"--sample must be at least 1, got {sample}.")
    folder = Path(out)
    if not (folder / DATABASE_NAME).is_file():
        raise ConfigurationError(f"{str(folder)!r} holds no {DATABASE_NAME}; give the --out folder of an evaluation.")
    return ResultsStore(folder)


def _sample(cases: Sequence[CaseResult], size: int, seed: int) -> list[CaseResult]:
    """``size`` of ``cases``, the same for the same seed whatever order the database returns them in."""
    ordered = sorted(cases, key=lambda c: c.case_id)
    if len(ordered) <= size:
        return ordered
    return sorted(random.Random(seed).sample(ordered, size), key=lambda c: c.case_id)


def _specs(store: ResultsStore, cases: Sequence[CaseResult], *, judged: bool) -> tuple[list[str], dict[str, str]]:
    """The metric specs the evaluation used (recorded; else the names its cases hold) and the skipped ones."""
    from .metric_specs import parse_metric_names

    recorded = store.get_meta("metrics")
    names = list(recorded) if recorded else sorted({name for c in cases for name in c.metrics if "." not in name})
    specs, skipped = [], {}
    for spec in names:
        base = parse_metric_names([spec])[0].base_name
        if base == "judge" and not judged:
            skipped[spec] = "asks an MLLM; give --mllm to score it again"
        elif base == "elements":  # its verdicts are the record: asking again is a new, paid judgment
            skipped[spec] = "asks an MLLM about each element of the reference's description; its stored verdicts stand"
        else:
            specs.append(spec)
    return specs, skipped


def _images(out: Path, case: CaseResult) -> tuple[Any, Any] | str:
    """The case's reference and best image, or why they cannot be compared again."""
    from ..images import load_image
    from .datasets import file_sha256

    reference = Path(str(case.extra.get("reference_path", "")))
    best = out / str(case.best_image)
    if not reference.is_file():
        return f"its reference {str(reference)!r} is gone"
    if file_sha256(reference) != case.reference_sha256:
        return f"its reference {str(reference)!r} changed since the evaluation (another SHA-256)"
    if not best.is_file():
        return f"its best image {str(best)!r} is gone"
    return load_image(reference), load_image(best)


def _kind(metric: Any) -> str:
    from ..backends.registry import parse_spec

    return str(parse_spec(str(getattr(metric, "spec", metric.name)))[0])


def _tolerance(metric: Any, tolerances: Mapping[str, float]) -> float:
    kind = _kind(metric)
    for key in (metric.name, kind, "*"):
        if key in tolerances:
            return tolerances[key]
    return DEFAULT_TOLERANCES.get(kind, DEFAULT_TOLERANCE)


def _compare(
    case: CaseResult, now: Mapping[str, float], metrics: Sequence[Any], tolerances: Mapping[str, float]
) -> list[MetricDrift]:
    drifts = []
    for metric in metrics:
        if metric.name not in case.metrics or metric.name not in now:
            continue
        stored, value = float(case.metrics[metric.name]), float(now[metric.name])
        if stored == value or (math.isnan(stored) and math.isnan(value)):
            continue
        difference = abs(value - stored)
        difference = math.inf if math.isnan(difference) else difference  # NaN against a number, or inf against -inf
        limit = _tolerance(metric, tolerances)
        if difference > limit:
            drifts.append(
                MetricDrift(case_id=case.case_id, model=case.model, mode=case.mode, reference_id=case.reference_id,
                            metric=metric.name, stored=stored, now=value, difference=difference, tolerance=limit)
            )  # fmt: skip
    return drifts


def _placements(metrics: Sequence[Any]) -> dict[str, Any]:
    from .environment import worker_environment

    return worker_environment(metrics=metrics)


def format_verify_report(report: VerifyReport) -> str:
    """The report as ``imagerepainter verify`` prints it: a summary line, the drifted metrics as a
    table, what was skipped or could not be checked, and the environment's changes."""
    from .environment import describe_changes

    verdict = f"{len(report.drifts)} metric value(s) drifted" if report.drifts else "no drift"
    lines = [
        f"verified {report.checked} of {report.sampled} sampled cases of {report.out} "
        f"({', '.join(report.metrics) or 'no metric'}): {verdict}."
    ]
    if report.drifts:
        rows = [("metric", "model", "mode", "reference", "stored", "now", "|diff|", "tolerance")]
        rows += [(d.metric, d.model, d.mode, d.reference_id, f"{d.stored:.6g}", f"{d.now:.6g}",
                  f"{d.difference:.3g}", f"{d.tolerance:g}") for d in report.drifts]  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += [f"skipped {name}: {why}." for name, why in report.skipped_metrics.items()]
    lines += [f"not checked {case_id[:12]}: {why}." for case_id, why in report.unchecked.items()]
    if report.environment_changes:
        lines += ["the environment differs from the one recorded:", describe_changes(report.environment_changes)]
    elif report.environment_recorded:
        lines.append("the environment matches the one recorded.")
    else:
        lines.append("the evaluation recorded no environment to compare with.")
    return "\n".join(lines)
