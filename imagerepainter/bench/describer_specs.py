"""Which MLLMs describe the references: one unnamed MLLM, or several named *describers*.

An evaluation's MLLM describes every reference once and, in ``repaint`` mode, critiques (the
paper uses one MLLM for both). Give several, each with a name, and the evaluation becomes a
grid: one description per (reference, describer), every model regenerating from each, and
the leaderboard ranks the describers per model (see :mod:`~imagerepainter.bench.describer_board`)::

    imagerepainter eval refs/ --mllm gpt4o=openai:gpt-4o \\
        --mllm qwen="openai:qwen2.5-vl?base_url=http://localhost:8000/v1" --t2i sdxl=... --out eval-mllms

In Python, ``evaluate(mllm={"gpt4o": "openai:gpt-4o", "qwen": ...})``. A single unnamed MLLM
(``--mllm openai:gpt-4o``, ``evaluate(mllm="openai:gpt-4o")`` or an object) is the describer
:data:`~imagerepainter.bench.records.DEFAULT_DESCRIBER`, keyed as before describers had names.

Example:
    >>> describers_from_flags(["sharp=sandbox", "dull=sandbox?acuity=0.3"])
    {'sharp': 'sandbox', 'dull': 'sandbox?acuity=0.3'}
    >>> describers_from_flags(["sandbox?acuity=0.3"])  # one unnamed spec: kept as it is
    'sandbox?acuity=0.3'
    >>> describer_specs({"sharp": "sandbox"}), describer_specs("sandbox")
    ({'sharp': 'sandbox'}, {'mllm': 'sandbox'})
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError, UnknownBackendError
from .records import DEFAULT_DESCRIBER

__all__ = ["DESCRIBER_NAME", "check_describer_specs", "describer_specs", "describers_from_flags", "split_named"]

DESCRIBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
"""What a describer's name may be: letters, digits and ``. _ + -``, up to 64 (as a model's)."""

_HOW = "name each describer once: --mllm NAME=SPEC, repeated (e.g. --mllm gpt4o=openai:gpt-4o --mllm qwen=...)"


def split_named(item: str) -> tuple[str | None, str]:
    """``NAME=SPEC`` as ``(name, spec)``; a bare spec as ``(None, spec)``.

    An ``=`` is a name's only when what stands before it is a plain name: the ``=`` of a spec's
    option (``sandbox?acuity=0.3``, ``openai:gpt-4o?base_url=...``) follows a ``?``.

    Example:
        >>> split_named("dull=sandbox?acuity=0.3"), split_named("sandbox?acuity=0.3")
        (('dull', 'sandbox?acuity=0.3'), (None, 'sandbox?acuity=0.3'))
    """
    head, sep, spec = item.partition("=")
    if sep and not any(mark in head for mark in ":?/&"):
        return head.strip(), spec.strip()
    return None, item.strip()


def describers_from_flags(items: Sequence[str]) -> str | dict[str, str]:
    """The ``--mllm`` flags as :func:`~imagerepainter.bench.evaluate` takes them: one unnamed spec as
    it is, named ones as ``{name: spec}``.

    Raises:
        ConfigurationError: named and unnamed mixed, a name given twice, or an empty name or spec
            (before anything is loaded or paid for). Several unnamed: the last one counts, as always.
    """
    pairs = [split_named(item) for item in items]
    if not pairs:
        raise ConfigurationError(f"--mllm is missing; give one MLLM spec, or {_HOW}.")
    unnamed = [spec for name, spec in pairs if name is None]
    if len(unnamed) == len(pairs):
        return unnamed[-1]  # the last one, as a repeated --mllm always meant (a later flag overrides)
    if unnamed:
        raise ConfigurationError(f"--mllm {unnamed[0]!r} has no name beside other --mllm flags; {_HOW}.")
    describers: dict[str, str] = {}
    for name, spec in pairs:
        assert name is not None
        if not name or not spec:
            raise ConfigurationError(f"--mllm takes NAME=SPEC (e.g. gpt4o=openai:gpt-4o), not {name}={spec!r}.")
        if name in describers:
            raise ConfigurationError(f"--mllm name {name!r} is given twice; {_HOW}.")
        describers[name] = spec
    return describers


def describer_specs(mllm: Any) -> dict[str, Any]:
    """The describers of ``evaluate(mllm=...)`` by name: a mapping's names checked, anything else
    (one spec or object) as the one describer :data:`~imagerepainter.bench.records.DEFAULT_DESCRIBER`.

    Raises:
        ConfigurationError: an empty mapping, a name that is not usable, or two names that differ
            only in case (their files would collide on some systems, and they read as one).
    """
    if not isinstance(mllm, Mapping):
        return {DEFAULT_DESCRIBER: mllm}
    if not mllm:
        raise ConfigurationError(f"mllm is an empty mapping; give one MLLM spec, or {_HOW}.")
    seen: dict[str, str] = {}
    for name in mllm:
        if not isinstance(name, str) or not DESCRIBER_NAME.match(name):
            raise ConfigurationError(
                f"Describer name {name!r} is not usable; use letters, digits and . _ + - (up to 64, e.g. 'gpt4o')."
            )
        if name.lower() in seen:
            raise ConfigurationError(
                f"Describer names {seen[name.lower()]!r} and {name!r} differ only in case; {_HOW}."
            )
        seen[name.lower()] = name
    return dict(mllm)


def check_describer_specs(describers: Mapping[str, Any]) -> None:
    """Check every describer's spec (provider and options, the sandbox's ``acuity`` range), building
    nothing paid; the error names the describer, and a name that is a provider (``--mllm openai=gpt-4o``)
    is pointed out.

    Raises:
        UnknownBackendError, ConfigurationError: a bad spec.
    """
    from ..backends.registry import available_backends, check_spec, parse_spec, resolve_mllm

    many = len(describers) > 1 or DEFAULT_DESCRIBER not in describers
    for name, spec in describers.items():
        label = f"Describer {name!r}: " if many else ""
        try:
            check_spec("mllm", spec)
            if isinstance(spec, str) and parse_spec(spec)[0] == "sandbox":
                resolve_mllm(spec)  # no weights, no calls: reads its options' ranges now
        except UnknownBackendError as exc:
            hint = ""
            if name in available_backends()["mllm"] and isinstance(spec, str):
                hint = f" Did you mean the spec '{name}:{spec}' (a colon, not '=')?"
            raise UnknownBackendError(f"{label}{exc}{hint}", spec=exc.spec, suggestions=exc.suggestions) from None
        except ConfigurationError as exc:
            if not label:
                raise
            raise ConfigurationError(f"{label}{exc}") from None
