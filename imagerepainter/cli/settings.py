"""Command-line flags generated from the settings (:class:`~imagerepainter.config.RepainterConfig`).

A flag such as ``--num-inference-steps`` is the field ``num_inference_steps`` of
:class:`~imagerepainter.config.GenerationConfig` (or of ``RepainterConfig``): its type comes
from the field's annotation, its help from the field's docstring, and the help shows the
preset defaults. Adding a field to the config and its name to a command's list adds the flag;
nothing else lists the settings.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="x")
    >>> add_setting_flags(parser, ("max_rounds", "height"))
    >>> args = parser.parse_args(["--max-rounds", "2"])
    >>> setting_overrides(args, ("max_rounds", "height"))
    {'max_rounds': 2}
    >>> "hard cap on rounds" in parser.format_help() and "(default: 6; paper preset: 3)" in parser.format_help()
    True
"""

from __future__ import annotations

import argparse
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic.fields import FieldInfo

from ..config import PRESETS, GenerationConfig, RepainterConfig

__all__ = [
    "GENERATION_SETTINGS",
    "LOOP_SETTINGS",
    "HelpFormatter",
    "add_setting_flags",
    "choice_list",
    "help_formatter",
    "int_in",
    "setting_overrides",
]

LOOP_SETTINGS = ("max_rounds", "variants", "seed", "target_score", "review")
"""Loop settings that ``run`` and ``demo`` take as flags."""
GENERATION_SETTINGS = tuple(GenerationConfig.model_fields)
"""Every generation setting is a flag of ``run`` and ``demo``."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions and help as usual, but keeps an epilog's lines (the examples) as written.

    Every command of the package uses it (through :func:`help_formatter`), so ``imagerepainter``,
    ``imagerepainter eval`` and the judging commands share one help layout.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """The help layout of every command: :class:`HelpFormatter` at a fixed width of 100 columns
    (``docs/cli.md`` embeds this help, so it must not depend on the terminal); pass it as an
    ``argparse`` parser's ``formatter_class``."""
    return HelpFormatter(prog, width=100)


PARSER_CHECKED = frozenset({"seed", "max_reference_pixels"})
"""Settings whose range the parser checks (a usage error naming the flag); the config checks the others'."""


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]``, else a usage error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {low} to {high}")
        return value

    return parse


def finite_float(text: str) -> float:
    """An argparse ``type``: a finite float (``nan`` and ``inf`` parse as floats but mean nothing here)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse ``type``: a comma-separated list of ``choices`` (a flag given twice adds to it).

    >>> choice_list(("prompt", "critique"))("critique,prompt")
    ['critique', 'prompt']
    """

    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        wrong = [v for v in values if v not in choices]
        if wrong or not values:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(choices)}, or several separated by commas)"
            )
        return values

    return parse


def _choices(annotation: Any) -> tuple[str, ...] | None:
    """``tuple[Literal["a", "b"], ...]`` -> ``("a", "b")``; else ``None``."""
    if typing.get_origin(annotation) is not tuple:
        return None
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if len(args) != 1 or typing.get_origin(args[0]) is not typing.Literal:
        return None
    return tuple(str(a) for a in typing.get_args(args[0]))


def _field(name: str) -> FieldInfo:
    fields = RepainterConfig.model_fields
    return fields[name] if name in fields else GenerationConfig.model_fields[name]


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else str
    return annotation


def _parser_type(name: str, info: FieldInfo) -> Callable[[str], Any]:
    base = _base_type(info.annotation)
    if base is int and name in PARSER_CHECKED:
        low, high = 0, 2**62
        for rule in info.metadata:  # annotated_types' Ge / Gt / Le / Lt
            if (ge := getattr(rule, "ge", None)) is not None:
                low = int(ge)
            elif (gt := getattr(rule, "gt", None)) is not None:
                low = int(gt) + 1
            elif (le := getattr(rule, "le", None)) is not None:
                high = int(le)
            elif (lt := getattr(rule, "lt", None)) is not None:
                high = int(lt) - 1
        return int_in(low, high)
    if base is float and any(getattr(rule, "allow_inf_nan", True) is False for rule in info.metadata):
        return finite_float
    return base if base in (int, float) else str  # type: ignore[no-any-return]


def _shown(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _default_text(name: str) -> str:
    """``default: 6; paper preset: 3``, from the presets."""
    generation = name in GenerationConfig.model_fields
    values = {preset: getattr(config.generation if generation else config, name) for preset, config in PRESETS.items()}
    if len(set(map(repr, values.values()))) == 1:
        value = next(iter(values.values()))
        if value == ():
            return "default: none"
        if value is None:
            if name in ("height", "width"):
                return "default: the reference's shape at the model's native size, else the backend's own"
            return "default: the backend's own" if generation else "default: none"
        return f"default: {_shown(value)}"
    return "; ".join(
        f"default: {_shown(v)}" if preset == "default" else f"{preset} preset: {_shown(v)}"
        for preset, v in values.items()
    )


def _help(name: str, info: FieldInfo, default: str | None) -> str:
    """The first sentence of the field's docstring, as a flag's help, with the default."""
    text = " ".join((info.description or name.replace("_", " ")).split()).replace("``", "")
    sentence = re.split(r"(?<=[a-z)\]])\. ", text, maxsplit=1)[0].rstrip(".")
    sentence = sentence[:1].lower() + sentence[1:]
    return f"{sentence} ({default or _default_text(name)})".replace("%", "%%")


def add_setting_flags(
    parser: argparse.ArgumentParser, names: Sequence[str], *, defaults: Mapping[str, str] | None = None
) -> None:
    """Add a flag for each setting in ``names`` (``--max-rounds`` for ``max_rounds``).

    Args:
        parser: The (sub)command's parser.
        names: Fields of ``RepainterConfig`` or ``GenerationConfig``.
        defaults: Replaces the default shown in a flag's help, e.g. ``{"seed": "demo: random"}``.

    A flag left out is not an override: the preset's value applies.
    """
    for name in names:
        info = _field(name)
        flag, help_text = "--" + name.replace("_", "-"), _help(name, info, (defaults or {}).get(name))
        if (choices := _choices(info.annotation)) is not None:  # a tuple of choices: repeatable, or a comma list
            metavar = "{" + ",".join(choices) + "}"
            parser.add_argument(flag, type=choice_list(choices), action="extend", metavar=metavar, help=help_text)
        else:
            parser.add_argument(flag, type=_parser_type(name, info), help=help_text)


def setting_overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The settings among ``names`` given on the command line, as ``with_overrides`` keywords."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
