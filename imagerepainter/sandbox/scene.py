"""The sandbox's visual vocabulary: a :class:`Scene` of flat shapes, and prompts that describe one.

A scene is a background colour and a list of shapes drawn in order (later ones on top).
Each :class:`Shape` has a kind (:data:`KINDS`), a colour, a size (its longest extent as a
fraction of the image's shorter side) and a centre (``x``, ``y`` as fractions of the width
and height, from the top left).

Prompts use this vocabulary:

* kinds: ``circle`` (disc, dot), ``square``, ``rectangle`` (bar, stripe), ``triangle``,
  ``diamond``, ``star``, ``ring`` (donut), ``blob`` (patch, region); plurals count
  (``"three small red circles"``); ``vertical bar`` turns a rectangle upright;
* colours: the names of :data:`~imagerepainter.sandbox.colors.PALETTE` with modifiers
  (``"light teal"``), or ``#rrggbb`` / ``rgb(r, g, b)``;
* sizes: ``tiny``, ``small``, ``medium``, ``large``, ``huge`` or ``size 23%``;
* positions: ``top left`` ... ``bottom right`` (a 3x3 grid), ``slightly left of center``,
  ``far right``, or coordinates ``at 30% 40%`` / ``at (0.3, 0.4)`` / ``at x=30% y=40%``;
* ``rotated 30 degrees``; the background as ``navy background`` or ``background is navy``.

:func:`parse_prompt` is tolerant: it ignores words it does not know (``"masterpiece,
highly detailed"``), reads comma-separated tag lists and sentences alike, treats a bare
re-mention (``"the red circle is left of the blue star"``) as a reference rather than a new
shape, and turns ``"<colour> <unknown noun>"`` (``"green grass"``) into a blob (the blob
already placed when one of that colour is), so prompts written for photographs still draw something.

Example:
    >>> scene = parse_prompt("masterpiece, a large red circle at top left, a tiny navy star at 70% 60%, white bg")
    >>> [(s.kind, s.size, s.x, s.y) for s in scene.shapes]
    [('circle', 0.38, 0.2, 0.2), ('star', 0.08, 0.7, 0.6)]
    >>> scene.to_prompt()
    'a large red circle at top left, a tiny navy star at 70% 60%, on a white background, flat vector art'
    >>> parse_prompt(scene.to_prompt()) == scene
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .colors import COLOR_PATTERN, PALETTE, RGB, delta_e, format_color, parse_color

__all__ = [
    "GRID",
    "KINDS",
    "SIZE_WORDS",
    "Scene",
    "Shape",
    "with_article",
    "format_position",
    "format_shape",
    "format_size",
    "grid_anchor",
    "Reference",
    "parse_prompt",
    "parse_reference",
    "random_scene",
]

KINDS: tuple[str, ...] = ("circle", "square", "rectangle", "triangle", "diamond", "star", "ring", "blob")
"""The shape kinds the renderer draws."""

SIZE_WORDS: dict[str, float] = {"tiny": 0.08, "small": 0.15, "medium": 0.25, "large": 0.38, "huge": 0.55}
"""Size words and the size each stands for (longest extent / shorter image side)."""

GRID: tuple[float, float, float] = (0.2, 0.5, 0.8)
"""Coordinates of the 3x3 grid words: left/top, center, right/bottom."""

_SIZE_ALIASES = {"little": "small", "big": "large", "giant": "huge", "enormous": "huge", "massive": "huge"}
_NOUNS: dict[str, str] = {
    "circle": "circle",
    "disc": "circle",
    "disk": "circle",
    "dot": "circle",
    "orb": "circle",
    "ball": "circle",
    "square": "square",
    "box": "square",
    "tile": "square",
    "rectangle": "rectangle",
    "bar": "rectangle",
    "stripe": "rectangle",
    "strip": "rectangle",
    "block": "rectangle",
    "oblong": "rectangle",
    "triangle": "triangle",
    "pyramid": "triangle",
    "diamond": "diamond",
    "rhombus": "diamond",
    "lozenge": "diamond",
    "star": "star",
    "ring": "ring",
    "donut": "ring",
    "doughnut": "ring",
    "hoop": "ring",
    "annulus": "ring",
    "blob": "blob",
    "patch": "blob",
    "region": "blob",
    "splotch": "blob",
}
_PLURALS = {n + ("es" if n.endswith(("x", "s")) else "s"): k for n, k in _NOUNS.items()}
_COUNTS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_COUNTS |= {"ten": 10, "pair": 2, "couple": 2, "several": 3, "few": 3}
_BACKGROUND = {"background", "backdrop", "bg"}
_STOP_WORDS = """
a an the and or with of on in at to is are was be by for from as its it this that which who sits lies placed
positioned located centered image picture frame canvas photo photograph scene illustration painting drawing art
style flat vector color colored colors tones tone shade shades palette dominant simple minimal minimalist plain
solid bright soft light dark vertical horizontal upright rotated size sized object objects shape shapes there
here also very slightly
"""
_STOP = frozenset(_STOP_WORDS.split())
_NUMBERED = frozenset({"object", "item", "element", "shape", "no", "number", "round", "step", "entry"})
"""Words after which a number is a label ("object 2"), not a count."""

_NUM = r"(\d+(?:\.\d+)?)"
_COORD_RE = re.compile(
    rf"\b(?:at|@)\s*\(?\s*(?:x\s*[=:]?\s*)?{_NUM}\s*(%?)\s*[,;/ ]\s*(?:y\s*[=:]?\s*)?{_NUM}\s*(%?)\s*\)?"
)
_SIZE_RE = re.compile(rf"\b(?:(?:of\s+)?size\s*(?:of\s*)?[=:]?\s*{_NUM}\s*%|{_NUM}\s*%\s*(?:wide|across|in size|size))")
_ROT_RE = re.compile(rf"\brotated\s*(?:by\s*)?(-?{_NUM})\s*(?:degrees|degree|deg|°)")
_RGB_RE = re.compile(r"\brgb\s*\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
_FINE_POSITIONS: dict[str, tuple[float, float]] = {}
for _words, _off in (("slightly ", 0.1), ("", 0.15)):  # off the centre, in each of the four directions
    _FINE_POSITIONS |= {f"{_words}left of center": (0.5 - _off, 0.5), f"{_words}right of center": (0.5 + _off, 0.5)}
    _FINE_POSITIONS |= {f"{_words}above center": (0.5, 0.5 - _off), f"{_words}below center": (0.5, 0.5 + _off)}
_FINE_POSITIONS |= {"far left": (0.1, 0.5), "far right": (0.9, 0.5), "very top": (0.5, 0.1), "very bottom": (0.5, 0.9)}
_RELATIONS = re.compile(
    r"\b(?:(?:is |are |sits |lies )?(?:directly |just |slightly )?(?:to the )?(?:left|right) of"
    r"|above|below|beneath|under|underneath|over|on top of|next to|beside|behind|in front of"
    r"|overlapping|overlaps|touching|between|inside|surrounding|surrounded by)\b"
)
_H = {"left": GRID[0], "center": GRID[1], "right": GRID[2]}
_V = {"top": GRID[0], "upper": GRID[0], "center": GRID[1], "bottom": GRID[2], "lower": GRID[2]}
_GRID_PHRASES: dict[str, tuple[float, float]] = {}
for _v, _y in _V.items():
    for _h, _x in _H.items():
        _GRID_PHRASES[f"{_v} {_h}"] = (_x, _y)
        _GRID_PHRASES[f"{_h} {_v}"] = (_x, _y)
_GRID_PHRASES |= {"top": (0.5, GRID[0]), "bottom": (0.5, GRID[2]), "left": (GRID[0], 0.5), "right": (GRID[2], 0.5)}
_GRID_PHRASES |= {"center": (0.5, 0.5), "upper half": (0.5, 0.3), "lower half": (0.5, 0.7)}
_POS_ALT = "|".join(sorted((re.escape(p) for p in _GRID_PHRASES), key=len, reverse=True))
_GRID_RE = re.compile(rf"\b(?P<p>{_POS_ALT})\b(?:\s+(?:corner|side|edge|area|part))?")
_FINE_RE = re.compile(r"\b(?:" + "|".join(sorted(_FINE_POSITIONS, key=len, reverse=True)) + r")\b")
_COLOR_RE = re.compile(COLOR_PATTERN)
_PLACEHOLDER = re.compile(r"__([pscr])(\d+)__")
_DEFAULT_SLOTS = [(0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (0.5, 0.25), (0.5, 0.75), (0.25, 0.25), (0.75, 0.75)]
_DEFAULT_SLOTS += [(0.75, 0.25), (0.25, 0.75)]
DEFAULT_BACKGROUND: RGB = PALETTE["light gray"]
"""Background of a prompt that names no colour for it."""


@dataclass(frozen=True)
class Shape:
    """One flat shape of a :class:`Scene`."""

    kind: str
    """One of :data:`KINDS`."""
    color: RGB
    size: float = SIZE_WORDS["medium"]
    """Longest extent, as a fraction of the image's shorter side."""
    x: float = 0.5
    """Centre of the bounding box, as a fraction of the width (0 is the left edge)."""
    y: float = 0.5
    """Centre of the bounding box, as a fraction of the height (0 is the top edge)."""
    rotation: float = 0.0
    """Clockwise rotation in degrees (ignored for circles and rings)."""


@dataclass(frozen=True)
class Scene:
    """A background colour and shapes drawn in order (later ones on top)."""

    background: RGB = DEFAULT_BACKGROUND
    shapes: tuple[Shape, ...] = field(default=())

    def to_prompt(self, style: Literal["sd", "natural"] = "sd", *, suffix: str = "flat vector art") -> str:
        """Describe the scene exactly in the sandbox vocabulary.

        Args:
            style: ``"sd"`` for a comma-separated tag list, ``"natural"`` for sentences.
            suffix: Style words appended to an ``"sd"`` prompt (ignored by the renderer).
        """
        bg = format_color(self.background)
        if style == "natural":
            sentences = [
                f"A {suffix} picture on {with_article(bg)} background." if suffix else f"{with_article(bg)} background."
            ]
            sentences += [_capitalise(format_shape(s)) + "." for s in self.shapes]
            return " ".join(_capitalise(x) for x in sentences)
        parts = [format_shape(s) for s in self.shapes] + [f"on {with_article(bg)} background"]
        return ", ".join(parts + ([suffix] if suffix else []))


def with_article(phrase: str) -> str:
    """``phrase`` after "a" or "an".

    Example:
        >>> with_article("indigo background"), with_article("red circle")
        ('an indigo background', 'a red circle')
    """
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _pct(v: float) -> str:
    return f"{round(v * 100, 1):g}%"


def grid_anchor(v: float) -> float:
    """Snap a coordinate to the nearest 3x3 grid line of :data:`GRID` (by thirds of the frame)."""
    return GRID[0] if v < 1 / 3 else GRID[2] if v >= 2 / 3 else GRID[1]


def format_position(x: float, y: float) -> str:
    """``"top left"``-style words when ``(x, y)`` is a grid point, else ``"30% 40%"``."""
    cols = {GRID[0]: "left", GRID[1]: "center", GRID[2]: "right"}
    rows = {GRID[0]: "top", GRID[1]: "center", GRID[2]: "bottom"}
    if x in cols and y in rows:
        return "center" if x == y == GRID[1] else f"{rows[y]} {cols[x]}"
    return f"{_pct(x)} {_pct(y)}"


def format_size(size: float) -> str:
    """A size word when ``size`` is one, else ``"size 23%"``."""
    for word, value in SIZE_WORDS.items():
        if value == size:
            return word
    return f"size {_pct(size)}"


def format_shape(shape: Shape, *, noun: str | None = None, with_size: bool = True) -> str:
    """One shape as a noun phrase, e.g. ``"a large navy circle at top left"``."""
    noun = noun or shape.kind
    size = format_size(shape.size) if with_size else ""
    color = format_color(shape.color)
    words = [color, noun]
    if with_size and not size.startswith("size"):
        words.insert(0, size)
    if shape.kind == "rectangle" and shape.rotation % 180 == 90:
        words.insert(-1, "vertical")
    text = " ".join(words)
    text = with_article(text)
    if with_size and size.startswith("size"):
        text += f" of {size}"
    text += f" at {format_position(shape.x, shape.y)}"
    rotation = shape.rotation if not (shape.kind == "rectangle" and shape.rotation % 180 == 90) else 0.0
    if rotation and shape.kind not in ("circle", "ring"):
        text += f" rotated {rotation:g} degrees"
    return text


# ----------------------------------------------------------------------------- parsing


@dataclass
class _Mention:
    kind: str
    color: RGB | None = None
    size: float | None = None
    pos: tuple[float, float] | None = None
    rotation: float | None = None
    count: int = 1

    @property
    def specified(self) -> bool:
        return self.pos is not None or self.size is not None or self.count > 1


@dataclass
class _Slots:
    positions: list[tuple[float, float]] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    colors: list[RGB] = field(default_factory=list)
    rotations: list[float] = field(default_factory=list)

    def place(self, mention: _Mention, slot: tuple[str, int]) -> bool:
        """Give ``mention`` the position, size or rotation that ``slot`` holds, unless it has one
        already (or ``slot`` is a colour); whether it took it."""
        kind, index = slot
        if kind == "p" and mention.pos is None:
            mention.pos = self.positions[index]
        elif kind == "s" and mention.size is None:
            mention.size = self.sizes[index]
        elif kind == "r" and mention.rotation is None:
            mention.rotation = self.rotations[index]
        else:
            return False
        return True


def _normalise(text: str) -> str:
    text = text.lower().replace("grey", "gray").replace("centre", "center").replace("colour", "color")
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)
    text = re.sub(r"\bmiddle\b", "center", text)
    text = re.sub(r"\b(background|backdrop)(?: color)?\s*:", r"\1 is ", text)
    text = re.sub(r"\bmedium[ -]sized\b|\bmid[ -]sized\b", "medium", text)
    text = re.sub(r"\b(?:of|in|on) (?:the |this )?(?:image|frame|picture|canvas|composition|photo)\b", " ", text)
    text = re.sub(r"\b(?:of|at) the (?:edge|border)\b", " ", text)
    return text


def _pre_tokenise(text: str, slots: _Slots) -> str:
    def num(v: str, pct: str) -> float:
        f = float(v)
        return f / 100 if pct or f > 1.0 else f

    def coord(m: re.Match[str]) -> str:
        slots.positions.append((num(m[1], m[2]), num(m[3], m[4])))
        return f" __p{len(slots.positions) - 1}__ "

    def size(m: re.Match[str]) -> str:
        slots.sizes.append(float(m[1] or m[2]) / 100)
        return f" __s{len(slots.sizes) - 1}__ "

    def rot(m: re.Match[str]) -> str:
        slots.rotations.append(float(m[1]))
        return f" __r{len(slots.rotations) - 1}__ "

    def phrase(table: dict[str, tuple[float, float]]) -> Callable[[re.Match[str]], str]:
        def sub(m: re.Match[str]) -> str:
            slots.positions.append(table[m.groupdict().get("p") or m[0]])
            return f" __p{len(slots.positions) - 1}__ "

        return sub

    def color(m: re.Match[str]) -> str:
        rgb = parse_color(m[0])
        if rgb is None:  # pragma: no cover - the pattern only matches parseable phrases
            return m[0]
        slots.colors.append(rgb)
        return f" __c{len(slots.colors) - 1}__ "

    text = _RGB_RE.sub(lambda m: "#{:02x}{:02x}{:02x}".format(*(min(255, int(g)) for g in m.groups())), text)
    text = _COORD_RE.sub(coord, text)
    text = _SIZE_RE.sub(size, text)
    text = _ROT_RE.sub(rot, text)
    text = _FINE_RE.sub(phrase(_FINE_POSITIONS), text)
    text = _RELATIONS.sub(" ; ", text)
    text = _GRID_RE.sub(phrase(_GRID_PHRASES), text)
    return _COLOR_RE.sub(color, text)


def _kind_of(token: str) -> str | None:
    return _NOUNS.get(token) or _PLURALS.get(token)


def _is_unknown_noun(token: str) -> bool:
    return (
        token.isalpha()
        and len(token) >= 3
        and token not in _STOP
        and token not in _BACKGROUND
        and token not in SIZE_WORDS
        and token not in _SIZE_ALIASES
        and token not in _COUNTS
        and _kind_of(token) is None
    )


def _slot(token: str) -> tuple[str, int] | None:
    m = _PLACEHOLDER.fullmatch(token)
    return (m[1], int(m[2])) if m else None


def parse_prompt(text: str, *, default_background: RGB = DEFAULT_BACKGROUND) -> Scene:
    """Read a prompt into a :class:`Scene`, ignoring words outside the vocabulary.

    Args:
        text: Any prompt: a tag list, sentences, or a description of a photograph.
        default_background: Background used when the prompt names no colour for it.

    Returns:
        The scene. Shapes without a position are spread over default slots; shapes without a
        size are medium; shapes without a colour are gray.
    """
    background, mentions, blobs, loose_colors = _read(text)
    shapes = _build_shapes(_deduplicate(mentions + blobs))  # "green grass" after "a green blob at ..." is that blob
    if background is None:  # the first colour named apart from any shape ("dominant colours: teal, ...")
        used = {s.color for s in shapes}
        background = next((c for c in loose_colors if c not in used), default_background)
    return Scene(background=background, shapes=tuple(shapes))


@dataclass(frozen=True)
class Reference:
    """What a phrase such as ``"the red circle at top left"`` says about the shape it means."""

    kind: str | None = None
    color: RGB | None = None
    position: tuple[float, float] | None = None
    size: float | None = None


def parse_reference(text: str) -> Reference:
    """Read the first shape a phrase mentions, keeping only what it states.

    Example:
        >>> parse_reference("the navy circle at top left")
        Reference(kind='circle', color=(20, 30, 100), position=(0.2, 0.2), size=None)
        >>> parse_reference("30% 45%").position
        (0.3, 0.45)
    """
    _, mentions, blobs, loose = _read(text)
    for m in mentions + blobs:
        return Reference(m.kind, m.color, m.pos, m.size)
    slots = _Slots()
    prepared = _pre_tokenise(_normalise(text if re.match(r"\s*(?:at|@)\b", text) else f"at {text}"), slots)
    del prepared
    return Reference(
        color=loose[0] if loose else None,
        position=slots.positions[0] if slots.positions else None,
        size=slots.sizes[0] if slots.sizes else None,
    )


def _read_background(tokens: list[str], used: list[bool], slots: _Slots) -> RGB | None:
    """The first colour a clause gives its background ("a solid red background", "background is red"),
    marking the words it used; ``None`` when the clause names none."""
    found: RGB | None = None
    for i, tok in enumerate(tokens):
        if tok not in _BACKGROUND:
            continue
        j = i - 1
        while j >= 0 and tokens[j] in ("solid", "plain", "flat", "a", "an", "the", "colored", "uniform"):
            j -= 1
        k = i + 1
        while k < len(tokens) and tokens[k] in ("is", "of", "color", "in", "colored", "a", "an", "solid", "plain"):
            k += 1
        for cand in (j, k):
            s = _slot(tokens[cand]) if 0 <= cand < len(tokens) else None
            if s and s[0] == "c" and not used[cand]:
                if found is None:
                    found = slots.colors[s[1]]
                used[cand] = used[i] = True
                break
    return found


def _read(text: str) -> tuple[RGB | None, list[_Mention], list[_Mention], list[RGB]]:
    """Tokenise ``text`` and collect the background, shape mentions, blob mentions and loose colours."""
    slots = _Slots()
    prepared = _pre_tokenise(_normalise(text), slots)
    clauses = [re.findall(r"#[0-9a-f]{6}|[a-z0-9_]+", c) for c in re.split(r"[,;:.!?\n()\[\]{}|]+", prepared)]
    background: RGB | None = None
    mentions: list[_Mention] = []
    loose_colors: list[RGB] = []
    blobs: list[_Mention] = []

    for tokens in clauses:
        used = [False] * len(tokens)
        found = _read_background(tokens, used, slots)
        background = found if background is None else background
        # -- shapes
        nouns = [i for i, t in enumerate(tokens) if _kind_of(t)]
        clause_mentions: list[_Mention] = []
        for n_idx, k in enumerate(nouns):
            kind = _kind_of(tokens[k])
            assert kind is not None
            m = _Mention(kind=kind)
            size_from_word = False
            if tokens[k] in _PLURALS:
                m.count = 2
            used[k] = True
            start = nouns[n_idx - 1] + 1 if n_idx else 0
            end = nouns[n_idx + 1] if n_idx + 1 < len(nouns) else len(tokens)
            for j in range(k - 1, start - 1, -1):  # adjectives before the noun
                tok, s = tokens[j], _slot(tokens[j])
                if used[j]:
                    continue
                if s and s[0] == "c" and m.color is None:
                    m.color = slots.colors[s[1]]
                elif tok in SIZE_WORDS or tok in _SIZE_ALIASES:
                    if m.size is None:
                        m.size, size_from_word = SIZE_WORDS[_SIZE_ALIASES.get(tok, tok)], True
                elif tok in _COUNTS or (tok.isdigit() and (j == 0 or tokens[j - 1] not in _NUMBERED)):
                    m.count = _COUNTS.get(tok) or max(1, min(10, int(tok)))
                elif tok in ("vertical", "upright") and kind == "rectangle":
                    m.rotation = 90.0
                elif tok == "horizontal" and kind == "rectangle":
                    m.rotation = 0.0
                else:
                    continue
                used[j] = True
            for j in range(k + 1, end):  # positions, sizes and rotations after the noun
                s = _slot(tokens[j])
                if used[j] or not s:
                    continue
                if s[0] == "p" and m.pos is None:
                    m.pos = slots.positions[s[1]]
                elif s[0] == "s" and (m.size is None or size_from_word):  # "23%" beats "small"
                    m.size, size_from_word = slots.sizes[s[1]], False
                elif s[0] == "r" and m.rotation is None:
                    m.rotation = slots.rotations[s[1]]
                elif s[0] == "c" and m.color is None and n_idx + 1 == len(nouns):
                    m.color = slots.colors[s[1]]  # "a circle that is red"
                else:
                    continue
                used[j] = True
            for j in range(k - 1, start - 1, -1):  # "in the top left, a red circle"
                s = _slot(tokens[j])
                if not used[j] and s and slots.place(m, s):
                    used[j] = True
            clause_mentions.append(m)
        # -- what is left: dangling attributes, "<colour> <unknown noun>" blobs, loose colours
        last = clause_mentions[-1] if clause_mentions else (mentions[-1] if mentions else None)
        for j, tok in enumerate(tokens):
            s = _slot(tok)
            if used[j] or not s:
                continue
            if s[0] == "c":
                if j + 1 < len(tokens) and _is_unknown_noun(tokens[j + 1]):
                    blobs.append(_Mention(kind="blob", color=slots.colors[s[1]]))
                elif last is not None and not clause_mentions and last.color is None:
                    last.color = slots.colors[s[1]]
                else:
                    loose_colors.append(slots.colors[s[1]])
            elif last is not None and not clause_mentions:  # "red circle, top left, size 20%"
                slots.place(last, s)
        mentions.extend(clause_mentions)

    return background, mentions, blobs, loose_colors


def _same(a: RGB | None, b: RGB | None) -> bool:
    return a is None or b is None or a == b


def _deduplicate(mentions: list[_Mention]) -> list[_Mention]:
    """Drop bare re-mentions of a shape ("the red circle ...") and exact repeats."""
    kept: list[_Mention] = []
    specified = [m for m in mentions if m.specified]
    for m in mentions:
        if not m.specified:
            if any(o.kind == m.kind and _same(o.color, m.color) for o in specified):
                continue
            if any(o.kind == m.kind and _same(o.color, m.color) for o in kept):
                continue
        elif any(
            (o.kind, o.color, o.size, o.pos, o.rotation, o.count)
            == (m.kind, m.color, m.size, m.pos, m.rotation, m.count)
            for o in kept
        ):
            continue
        kept.append(m)
    return kept


def _build_shapes(mentions: list[_Mention]) -> list[Shape]:
    shapes: list[Shape] = []
    free = iter(_DEFAULT_SLOTS * 4)
    for m in mentions:
        size = m.size if m.size is not None else SIZE_WORDS["medium"] if m.kind != "blob" else SIZE_WORDS["large"]
        color = m.color if m.color is not None else PALETTE["gray"]
        rotation = m.rotation if m.rotation is not None else 0.0
        x, y = m.pos if m.pos is not None else next(free)
        if m.count == 1:
            shapes.append(Shape(m.kind, color, size, x, y, rotation))
            continue
        # a row of shapes centred on the position, squeezed to fit the frame
        step = min(size * 1.3, 0.9 / m.count)
        size = min(size, step / 1.15)
        x0 = min(max(x - step * (m.count - 1) / 2, step / 2), 1 - step / 2 - step * (m.count - 1))
        for i in range(m.count):
            shapes.append(Shape(m.kind, color, round(size, 4), round(x0 + i * step, 4), y, rotation))
    return shapes


# ----------------------------------------------------------------------------- random scenes


def random_scene(
    rng: np.random.Generator | int,
    *,
    min_shapes: int = 2,
    max_shapes: int = 5,
    kinds: tuple[str, ...] = ("circle", "square", "rectangle", "triangle", "diamond", "star", "ring"),
) -> Scene:
    """Draw a hidden scene: a palette background and 2-5 shapes with distinct palette colours.

    Sizes and positions are whole percents; shapes rarely overlap much; colours differ
    clearly from the background and from each other, so a scene is perceivable.

    Example:
        >>> scene = random_scene(7)
        >>> 2 <= len(scene.shapes) <= 5 and random_scene(7) == scene
        True
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    names = list(PALETTE)
    background = PALETTE[names[int(rng.integers(len(names)))]]
    n = int(rng.integers(min_shapes, max_shapes + 1))
    colors: list[RGB] = []
    for name in rng.permutation(names):
        rgb = PALETTE[str(name)]
        if delta_e(rgb, background) >= 30 and all(delta_e(rgb, c) >= 25 for c in colors):
            colors.append(rgb)
        if len(colors) == n:
            break
    shapes: list[Shape] = []
    for color in colors:
        kind = kinds[int(rng.integers(len(kinds)))]
        best: Shape | None = None
        best_gap = -math.inf
        for _ in range(30):
            size = int(rng.integers(12 if kind == "ring" else 7, 41)) / 100  # thinner rings are invisible
            margin = size / 2 + 0.03
            x = int(rng.integers(round(margin * 100), round((1 - margin) * 100) + 1)) / 100
            y = int(rng.integers(round(margin * 100), round((1 - margin) * 100) + 1)) / 100
            rotation = 90.0 if kind == "rectangle" and rng.random() < 0.5 else 0.0
            cand = Shape(kind, color, size, x, y, rotation)
            gap = min((math.dist((x, y), (s.x, s.y)) - 0.5 * (size + s.size) for s in shapes), default=1.0)
            if gap > best_gap:
                best, best_gap = cand, gap
            if gap > 0.02:
                break
        assert best is not None
        shapes.append(best)
    return Scene(background=background, shapes=tuple(shapes))
