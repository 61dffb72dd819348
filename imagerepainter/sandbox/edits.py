"""Prompt edits in plain words, applied to a scene; and prompt variants.

The sandbox critique proposes edits as short imperative sentences that name a shape the
way the current prompt does (``"the red circle at top left"``):

* ``change the background to navy``
* ``change the color of the red circle at top left to crimson``
* ``move the red circle at top left to 31% 27%``
* ``resize the red circle at top left to size 33%`` (or ``make the ... larger|smaller``)
* ``change the red circle at top left into a star`` / ``rotate the ... to 90 degrees``
* ``add a small navy star at 70% 60%``
* ``remove the green square at center``

:func:`apply_edits` applies the ones it understands (all references are resolved against
the prompt *before* any edit, so edit order does not matter) and ignores the rest.

Example:
    >>> from imagerepainter.sandbox.scene import parse_prompt
    >>> scene = parse_prompt("a large red circle at top left, on a blue background")
    >>> edits = ["change the background to navy", "move the red circle at top left to 31% 27%",
    ...          "add a tiny gold star at center"]
    >>> apply_edits(scene, edits).to_prompt()
    'a large red circle at 31% 27%, a tiny gold star at center, on a navy background, flat vector art'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from .colors import RGB, delta_e, format_color, mix, parse_color
from .scene import (
    SIZE_WORDS,
    Scene,
    Shape,
    format_position,
    format_shape,
    parse_prompt,
    parse_reference,
    with_article,
)

__all__ = [
    "add_edit",
    "apply_edits",
    "background_edit",
    "move_edit",
    "prompt_variants",
    "recolor_edit",
    "remove_edit",
    "resize_edit",
    "rekind_edit",
    "shape_ref",
    "split_edits",
]

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc"),
    "square": ("square", "box"),
    "rectangle": ("rectangle", "bar"),
    "ring": ("ring", "donut"),
    "diamond": ("diamond", "rhombus"),
    "blob": ("blob", "patch"),
}


def _noun(shape: Shape) -> str:
    if shape.kind == "rectangle" and shape.rotation % 180 == 90:
        return "vertical rectangle"
    return shape.kind


def shape_ref(shape: Shape) -> str:
    """How an edit names ``shape``: ``"red circle at top left"``."""
    return f"{format_color(shape.color)} {_noun(shape)} at {format_position(shape.x, shape.y)}"


def background_edit(color: RGB) -> str:
    """``change the background to <colour>``."""
    return f"change the background to {format_color(color)}"


def recolor_edit(shape: Shape, color: RGB) -> str:
    """``change the color of the <shape> to <colour>``."""
    return f"change the color of the {shape_ref(shape)} to {format_color(color)}"


def move_edit(shape: Shape, x: float, y: float) -> str:
    """``move the <shape> to <x>% <y>%``."""
    return f"move the {shape_ref(shape)} to {format_position(x, y)}"


def resize_edit(shape: Shape, size: float) -> str:
    """``resize the <shape> to size <n>%``."""
    return f"resize the {shape_ref(shape)} to size {round(size * 100, 1):g}%"


def rekind_edit(shape: Shape, kind: str, rotation: float = 0.0) -> str:
    """``change the <shape> into a <kind>``."""
    noun = "vertical rectangle" if kind == "rectangle" and rotation % 180 == 90 else kind
    return f"change the {shape_ref(shape)} into a {noun}"


def add_edit(shape: Shape) -> str:
    """``add a <size> <colour> <kind> at <position>``."""
    return f"add {format_shape(shape)}"


def remove_edit(shape: Shape) -> str:
    """``remove the <shape>``."""
    return f"remove the {shape_ref(shape)}"


def split_edits(text: str) -> list[str]:
    """Split a block of edits: one per line (``-``, ``*``, ``1.`` bullets allowed), ``;``-separated, or a JSON list.

    Example:
        >>> split_edits("- move it\\n2. recolour it; remove that")
        ['move it', 'recolour it', 'remove that']
        >>> split_edits('["move it", "remove that"]')
        ['move it', 'remove that']
    """
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON list of edits
        try:
            items = json.loads(stripped)
        except ValueError:
            items = None
        if isinstance(items, list):
            return [str(item).strip() for item in items if str(item).strip()]
    out = []
    for line in text.splitlines():
        for part in line.split(";"):
            part = re.sub(r"^\s*(?:[-*•]+|\d+[.)])\s*", "", part).strip().strip("\"'").strip()
            if part:
                out.append(part)
    return out


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "background",
        re.compile(r"^(?:change|set|make|turn|paint) the background(?: colou?r)? (?:to |into )?(?P<value>.+)$"),
    ),
    ("color", re.compile(r"^(?:change|set) the colou?r of the (?P<ref>.+) to (?P<value>.+)$")),
    ("color", re.compile(r"^(?:recolou?r|paint|color|colour) the (?P<ref>.+) (?:to|in) (?P<value>.+)$")),
    ("move", re.compile(r"^(?:move|shift|place|put) the (?P<ref>.+) to (?P<value>.+)$")),
    ("resize", re.compile(r"^(?:resize|scale) the (?P<ref>.+) to (?P<value>.+)$")),
    ("scale", re.compile(r"^make the (?P<ref>.+) (?P<value>larger|bigger|smaller)$")),
    ("kind", re.compile(r"^(?:change|turn) the (?P<ref>.+) into an? (?P<value>.+)$")),
    ("rotate", re.compile(r"^rotate the (?P<ref>.+) to (?P<value>-?\d+(?:\.\d+)?) degrees?$")),
    ("add", re.compile(r"^add (?P<value>.+)$")),
    ("remove", re.compile(r"^(?:remove|delete|drop) the (?P<ref>.+)$")),
]


def _resolve(shapes: list[Shape], text: str) -> int | None:
    """Index of the shape of ``shapes`` that ``text`` most plausibly names, or ``None``."""
    ref = parse_reference(text)
    best, best_cost = None, 1.0
    for i, shape in enumerate(shapes):
        cost = 0.0
        if ref.kind is not None and ref.kind != shape.kind:
            cost += 1.0
        if ref.color is not None:
            cost += delta_e(ref.color, shape.color) / 100
        if ref.position is not None:
            cost += math.dist(ref.position, (shape.x, shape.y))
        if cost < best_cost:
            best, best_cost = i, cost
    return best


def _value_color(text: str) -> RGB | None:
    return parse_color(text.strip()) or parse_reference(text).color


def apply_edits(scene: Scene, edits: Iterable[str]) -> Scene:
    """Apply the edits it understands to ``scene``; others are ignored.

    Args:
        scene: The scene the current prompt describes.
        edits: Edit sentences (see the module docstring).

    Returns:
        The edited scene; removed shapes are dropped and added ones drawn last.
    """
    original = list(scene.shapes)
    shapes: list[Shape | None] = list(original)
    added: list[Shape] = []
    background = scene.background
    for raw in edits:
        edit = " ".join(raw.lower().strip().rstrip(".").split())
        for action, pattern in _PATTERNS:
            match = pattern.match(edit)
            if match is None:
                continue
            value = match["value"] if "value" in pattern.groupindex else ""
            if action == "background":
                color = _value_color(value)
                if color is None and value in ("darker", "lighter"):
                    color = mix(background, (0, 0, 0) if value == "darker" else (255, 255, 255), 0.2)
                if color is not None:
                    background = color
                break
            if action == "add":
                added.extend(parse_prompt(value).shapes)
                break
            index = _resolve(original, match["ref"])
            current = shapes[index] if index is not None else None
            if index is None or current is None:
                break
            shapes[index] = _edited(current, action, value)
            break
    kept = [s for s in shapes if s is not None and s.size > 0]
    return Scene(background=background, shapes=tuple(kept + added))


def _edited(shape: Shape, action: str, value: str) -> Shape | None:
    if action == "remove":
        return None
    if action == "color":
        color = _value_color(value)
        return replace(shape, color=color) if color is not None else shape
    if action == "move":
        pos = parse_reference(value).position
        return replace(shape, x=pos[0], y=pos[1]) if pos is not None else shape
    if action == "resize":
        word = value.strip()
        size = (
            SIZE_WORDS.get(word)
            or parse_reference(value if "%" not in value or "size" in value else f"size {value}").size
        )
        return replace(shape, size=size) if size else shape
    if action == "scale":
        return replace(shape, size=round(shape.size * (0.8 if value == "smaller" else 1.25), 3))
    if action == "kind":
        kind = parse_reference(value).kind
        if kind is None:
            return shape
        rotation = 90.0 if "vertical" in value or "upright" in value else 0.0 if kind == "rectangle" else shape.rotation
        return replace(shape, kind=kind, rotation=rotation)
    if action == "rotate":
        return replace(shape, rotation=float(value))
    return shape  # pragma: no cover - every action is handled above


# ----------------------------------------------------------------------------- variants


def _stable_seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def is_natural(prompt: str) -> bool:
    """Whether ``prompt`` is written as sentences rather than a tag list."""
    return prompt.strip().endswith(".")


def _perturb(scene: Scene, rng: np.random.Generator) -> Scene:
    shapes = list(scene.shapes)
    background = scene.background
    for _ in range(1 + int(rng.random() < 0.4)):
        if not shapes or rng.random() < 0.15:  # the background covers most of the image: shade it gently
            background = _shade(background, rng, 0.03, 0.07)
            continue
        target = int(rng.integers(len(shapes)))
        s = shapes[target]
        op = ("nudge", "resize", "shade")[int(rng.integers(3))]
        if op == "nudge":
            d = float(rng.uniform(0.02, 0.04)) * (1 if rng.random() < 0.5 else -1)
            if rng.random() < 0.5:
                s = replace(s, x=round(min(0.98, max(0.02, s.x + d)), 2))
            else:
                s = replace(s, y=round(min(0.98, max(0.02, s.y + d)), 2))
        elif op == "resize":
            f = float(rng.uniform(1.05, 1.12))
            s = replace(s, size=round(s.size * (f if rng.random() < 0.5 else 1 / f), 2))
        else:
            s = replace(s, color=_shade(s.color, rng, 0.06, 0.12))
        shapes[target] = s
    return Scene(background=background, shapes=tuple(shapes))


def _shade(color: RGB, rng: np.random.Generator, low: float, high: float) -> RGB:
    amount = float(rng.uniform(low, high))
    return mix(color, (255, 255, 255) if rng.random() < 0.5 else (0, 0, 0), amount)


def _phrase(scene: Scene, rng: np.random.Generator, *, natural: bool) -> str:
    parts = []
    for s in scene.shapes:
        nouns = _SYNONYMS.get(s.kind, (s.kind,))
        noun = nouns[int(rng.integers(len(nouns)))]
        if s.kind == "rectangle" and s.rotation % 180 == 90:
            noun = s.kind  # format_shape adds "vertical"
        parts.append(format_shape(s, noun=noun))
    bg = format_color(scene.background)
    if natural:
        sentences = [p[:1].upper() + p[1:] + "." for p in parts]
        return " ".join([f"A flat vector art picture on {with_article(bg)} background.", *sentences])
    if rng.random() < 0.5:
        return ", ".join([*parts, f"on {with_article(bg)} background", "flat vector art"])
    return ", ".join(["flat vector art", f"{bg} background", *parts])


def prompt_variants(prompt: str, count: int) -> list[str]:
    """``count`` rephrasings of ``prompt``, each with a small perturbation (a nudge, a resize or a shade).

    Deterministic: the same prompt gives the same variants. Different variants render
    differently, so choosing the best of them is a small random search around the prompt.

    Example:
        >>> prompt = "a large red circle at top left, on a white background"
        >>> variants = prompt_variants(prompt, 2)
        >>> variants[1]
        'flat vector art, white background, a red circle of size 35% at top left'
        >>> variants == prompt_variants(prompt, 2), parse_prompt(variants[0]) != parse_prompt(prompt)
        (True, True)
    """
    scene = parse_prompt(prompt)
    natural = is_natural(prompt)
    seed = _stable_seed(prompt)
    out: list[str] = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        out.append(_phrase(_perturb(scene, rng), rng, natural=natural))
    return out
