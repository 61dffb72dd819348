"""Metric names as the command line writes them (``--metrics paper,ssim,judge?repeats=2``), parsed and checked.

A metric is ``[NAME=]SPEC``: a built-in name (:data:`BUILTIN_METRICS`), a part of one
(``paper.clip``, ``judge.semantic``), or any scorer spec, each with ``?options``.
:func:`check_metrics` checks a list of them without loading or building anything, so the
benchmark refuses a typo before it writes a file; :func:`~imagerepainter.bench.metrics.resolve_metrics`
builds them, parsing with the same :func:`parse_metric_names` and checking options with the
same :func:`metric_options`.

Example:
    >>> [(m.label, m.base_name, m.part) for m in parse_metric_names("mine=ssim?kernel_size=7, paper.clip")]
    [('mine', 'ssim', ''), (None, 'paper', 'clip')]
    >>> metric_options("judge", {"repeats": "3"})
    {'repeats': 3}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, RepainterError, UnknownBackendError, close_names, did_you_mean

__all__ = [
    "BUILTIN_METRICS",
    "ELEMENTS_NEED_AN_MLLM",
    "JUDGE_NEEDS_AN_MLLM",
    "MetricItem",
    "check_judge_options",
    "check_metrics",
    "check_scorer_part",
    "judge_parts",
    "metric_options",
    "named_twice",
    "parse_metric_names",
    "unknown_metric",
]

BUILTIN_METRICS = ("paper", "clip", "dinov2", "ssim", "psnr", "judge", "elements", "lpips", "dreamsim")
"""Names :func:`~imagerepainter.bench.metrics.resolve_metrics` knows besides any scorer spec."""

JUDGE_NEEDS_AN_MLLM = (
    "The 'judge' metric needs an MLLM to ask: pass mllm= (a spec such as 'openai:gpt-4o', a LangChain chat "
    "model or an MLLM), or drop 'judge' from the metrics."
)

ELEMENTS_NEED_AN_MLLM = (
    "The 'elements' metric asks an MLLM to check each element of the reference's description on the "
    "regenerated image: pass mllm= (a spec such as 'openai:gpt-4o', a LangChain chat model or an MLLM), or "
    "drop 'elements' from the metrics."
)

_PART_NAME = re.compile(r"([a-z][a-z0-9_]*)\.([a-z0-9_#]+)")
_LABEL = re.compile(r"([A-Za-z_][\w.-]*)=(.+)", re.DOTALL)


@dataclass(frozen=True)
class MetricItem:
    """One metric asked for, parsed: ``[label=]base[.part][?options]``."""

    label: str | None
    """The name given with ``NAME=``, if any."""
    base_name: str
    """The metric (or scorer provider) without its part and options: ``paper`` for ``paper.clip?device=cpu``."""
    base_spec: str
    """The spec of the whole metric, options included: ``paper?device=cpu``."""
    part: str
    """The part asked for alone (``clip``), or ``""`` for the whole metric and its parts."""


def parse_metric_names(names: Sequence[str] | str) -> list[MetricItem]:
    """Split a list (or one comma-separated string) of metric names into :class:`MetricItem` s.

    Raises:
        ConfigurationError: no name at all.
    """
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
    items = [n for n in items if n]
    if not items:
        raise ConfigurationError("No metrics asked for: name at least one, e.g. 'paper' or 'ssim'.")
    parsed = []
    for item in items:
        label_match = _LABEL.fullmatch(item)
        label, spec = (label_match.group(1), label_match.group(2).strip()) if label_match else (None, item)
        head, sep, query = spec.partition("?")
        part_match = _PART_NAME.fullmatch(head.strip().lower())
        if part_match and part_match.group(1) in BUILTIN_METRICS:
            base_name, part = part_match.groups()
            parsed.append(MetricItem(label, base_name, base_name + sep + query, part))
        else:
            parsed.append(MetricItem(label, head.strip(), spec, ""))
    return parsed


# ----------------------------------------------------------------------------- options of the other metrics


def _judge_options(*, repeats: int = 1, max_side: int = 768) -> None:
    """The options of ``judge?...``: repeated ratings per image, and the longest side of the images sent."""


def _elements_options(*, max_side: int = 768) -> None:
    """The options of ``elements?...``: the longest side of the image sent."""


_OWN_OPTIONS: dict[str, tuple[Callable[..., None], str | None]] = {
    "judge": (_judge_options, None),
    "elements": (_elements_options, None),
}
"""The metrics that are not scorers (the judge and the element check: they need an MLLM): where their
options are declared, and the extra their device needs. Every other metric is a scorer row of the registry."""


def metric_options(provider: str, options: dict[str, str], *, device_here: bool = True) -> dict[str, Any]:
    """The options of ``judge`` or ``elements`` checked and converted by the registry's one
    option checker (names with a did-you-mean, types, a ``device`` this machine can use unless
    ``device_here`` is False)."""
    from ..backends.registry import BackendEntry, check_options

    declared, device_extra = _OWN_OPTIONS[provider]
    entry = BackendEntry("scorer", provider, declared, options=declared, model="none", device_extra=device_extra)
    return check_options(entry, options, device_here=device_here)


def check_judge_options(*, repeats: int = 1, max_side: int = 768, metric: str = "judge") -> None:
    """Refuse judge (or ``elements``) options out of range (their names and types are checked with the spec)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 20:
        raise ConfigurationError(f"The judge's repeats must be a whole number from 1 to 20, got {repeats!r}.")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or not 64 <= max_side <= 4096:
        raise ConfigurationError(
            f"The {metric} metric's max_side must be a whole number from 64 to 4096, got {max_side!r}."
        )


def judge_parts(repeats: int) -> dict[str, bool]:
    """The judge's parts and their directions (agreement and spread only with repeated ratings)."""
    parts = {"": True, "aesthetic": True, "semantic": True}
    if repeats >= 2:
        parts.update({"agreement": True, "spread": False})
    return parts


# ----------------------------------------------------------------------------- errors and the check


def unknown_metric(spec: str) -> UnknownBackendError:
    """The error for a metric spec whose name no metric or scorer answers to, with the closest names."""
    from ..backends.registry import available_backends, parse_spec

    known = sorted(set(BUILTIN_METRICS) | set(available_backends()["scorer"]))
    close = close_names(parse_spec(spec)[0], known, cutoff=0.5)
    return UnknownBackendError(
        f"Unknown metric {spec!r}.{did_you_mean(close)} Known: {', '.join(known)}, their parts (paper.clip, "
        "paper.dinov2, judge.semantic, ...), or any scorer spec (e.g. 'clip:/models/clip').",
        spec=spec,
        suggestions=close,
    )


def named_twice(name: str, first: str, second: str) -> ConfigurationError:
    """The error for two different metrics under one name."""
    return ConfigurationError(
        f"Two different metrics are named {name!r} ({first!r} and {second!r}): name one yourself, e.g. "
        f"'{name.split('.')[0]}_2={second}'."
    )


def check_scorer_part(name: str, spec: str, part: str) -> None:
    """Refuse ``name.part`` when the scorer of ``spec`` has no such part, without loading a model.

    Building a scorer is cheap (models load on first use), so its parts (a weighted scorer's
    ``component_names``) are read from the built object. A scorer that cannot be built here (a
    package missing: reported with the extras) is left to be checked when it is built.

    Example:
        >>> check_scorer_part("paper", "paper", "clip")
        >>> check_scorer_part("paper", "paper", "clpi")
        Traceback (most recent call last):
        ...
        imagerepainter.errors.ConfigurationError: The 'paper' metric has no part 'clpi'; its parts: clip, dinov2. ...
    """
    from ..backends.registry import resolve_scorer

    try:
        scorer = resolve_scorer(spec)
    except RepainterError:
        return
    parts = tuple(getattr(scorer, "component_names", ()))
    if part not in parts:
        known = ", ".join(sorted(parts)) or "none"
        raise ConfigurationError(
            f"The {name!r} metric has no part {part!r}; its parts: {known}.{did_you_mean(close_names(part, parts))}"
        )


def _check_elements(part: str, mllm: Any, *, max_side: int = 768) -> None:
    if mllm is None:
        raise ConfigurationError(ELEMENTS_NEED_AN_MLLM)
    check_judge_options(max_side=max_side, metric="elements")
    if part:
        raise ConfigurationError(
            f"The 'elements' metric has no part {part!r}: its fidelity per element kind is in the leaderboard's "
            "'elements' section (see docs/metrics.md)."
        )


def check_metrics(names: Sequence[str] | str, *, mllm: Any = None, device_here: bool = True) -> None:
    """Check metric names and options as ``resolve_metrics`` would, without loading or building anything.

    Names no metric or scorer answers to (with the closest names), unknown options, values of the
    wrong type or out of range, a part the judge does not give, two metrics under one name, and
    ``judge`` without ``mllm`` are refused here; a scorer spec is checked by
    :func:`~imagerepainter.backends.registry.check_spec` (its options when its packages are
    installed), and a part of a scorer (``paper.clip``) by :func:`check_scorer_part`. With
    ``device_here=False`` (metrics computed on other machines) a ``device`` is not checked here.

    Example:
        >>> check_metrics("sandbox, ssim?kernel_size=7, judge.semantic", mllm="sandbox")
        >>> check_metrics("sandbox,ssmi")
        Traceback (most recent call last):
        ...
        imagerepainter.errors.UnknownBackendError: Unknown metric 'ssmi'. Did you mean 'ssim'? ...
    """
    from ..backends.registry import check_spec, parse_spec

    specs: dict[str, str] = {}
    for item in parse_metric_names(names):
        name = item.label or (f"{item.base_name}.{item.part}" if item.part else item.base_name)
        if specs.setdefault(name, item.base_spec) != item.base_spec:
            raise named_twice(name, specs[name], item.base_spec)
        provider, model, options = parse_spec(item.base_spec)
        if provider not in _OWN_OPTIONS or model is not None:
            try:
                check_spec("scorer", item.base_spec, device_here=device_here)
            except UnknownBackendError:
                raise unknown_metric(item.base_spec) from None
            if item.part:
                check_scorer_part(item.base_name, item.base_spec, item.part)
            continue
        checked = metric_options(provider, options, device_here=device_here)
        if provider == "elements":
            _check_elements(item.part, mllm, **checked)
        if provider == "judge":
            if mllm is None:
                raise ConfigurationError(JUDGE_NEEDS_AN_MLLM)
            check_judge_options(**checked)
            parts = judge_parts(checked.get("repeats", 1))
            if item.part not in parts:
                known = ", ".join(sorted(p for p in parts if p))
                raise ConfigurationError(f"The 'judge' metric has no part {item.part!r}; its parts: {known}.")
