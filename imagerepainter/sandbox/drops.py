"""Sandbox models that systematically lose one kind of element: ``sandbox?drop=color``.

:func:`misread` (:mod:`~imagerepainter.sandbox.fidelity`) makes a model weaker *everywhere*;
:func:`drop` makes it wrong in *one* way, on every shape of every prompt, so the benchmark's
element-level fidelity (the ``elements`` metric) can be checked to single out exactly that kind.
What each kind loses, leaving the others as the prompt asks:

============  ===========================================================================
``drop=``     the render
============  ===========================================================================
``color``     the shapes' colours passed round (each shape takes the next one's), so every
              shape has another basic colour while the picture keeps its palette; a shape
              left with its own colour term (a single shape, two blues) takes the farthest
              palette colour that stands out from the background
``position``  every shape moved one grid cell right and one down (the last column and row
              wrap to the first), keeping its place in the cell; a shape that fitted in the
              frame stays inside it: no shape stays in its cell, and shapes that did not
              overlap seldom do. Relations are made of places, so the relations between
              moved shapes change too (:data:`ALSO_LOST`)
``size``      each shape two size words larger (small and medium shapes) or smaller (large
              and huge ones), of ``small`` to ``huge`` (a ``tiny`` shape would go unnoticed);
              where that would make it overlap a shape it did not overlap, or leave the frame,
              two words the other way, then one word either way; so the shapes stay apart
              and noticed and only their sizes are lost
``count``     one more copy of the largest shape, on the free grid cell farthest from the
              others: every object is there, but one too many
``object``    every shape drawn as another kind (a circle as a square, ...), in its colour,
              size and place: the objects asked for are missing
============  ===========================================================================

Measured on 12 generated scenes (``tests/test_bench_elements.py``), in ``single`` and ``repaint``
mode alike: the dropped kind has the lowest fidelity, far below the exact model's, and every other
kind stays within 0.1 of the exact model's (relations in ``repaint`` within 0.15: they hang on the
fine places the loop refines, and a model that loses another kind leaves it fewer edits for them).
In ``repaint`` the sandbox critic tells a recoloured, moved or resized shape to change rather than
adding one and removing another (:func:`~imagerepainter.sandbox.critic.match_blobs`), so the best
round carries no extra shapes.

Example:
    >>> from imagerepainter.sandbox.scene import parse_prompt
    >>> scene = parse_prompt("a large red circle at top left, white background")
    >>> moved = drop(scene, "position").shapes[0]
    >>> (moved.x, moved.y), drop(scene, "object").shapes[0].kind, drop(scene, "color").shapes[0].color != (220, 40, 40)
    ((0.5, 0.5), 'square', True)
    >>> side_by_side = parse_prompt("a small red circle at 35% 50%, a small blue square at 65% 50%")
    >>> [s.size for s in drop(side_by_side, "size").shapes]  # two words up would overlap: one word
    [0.25, 0.25]
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..errors import ConfigurationError
from .colors import PALETTE, basic_name, delta_e
from .describe import SMALLEST_NOTICED
from .scene import GRID, SIZE_WORDS, Scene, Shape, grid_anchor

__all__ = ["ALSO_LOST", "DROP_KINDS", "check_drop", "drop"]

DROP_KINDS: tuple[str, ...] = ("color", "position", "size", "count", "object")
"""The kinds a sandbox model can be made to lose (``sandbox?drop=KIND``)."""

ALSO_LOST: dict[str, tuple[str, ...]] = {"position": ("relation",), "color": ("palette",)}
"""Element kinds that a drop takes along because they are made of the kind dropped. A relation
("the circle is left of the star") is a relation between places: no map that moves every shape to
another grid row *and* column can keep every pairwise direction once the shapes use all three
columns (or rows), so ``drop=position`` loses relations too. A palette ("blue background; red,
yellow") is the picture's colours: passing the colours round keeps them, but a shape left with
its own colour term (a single shape, two of one colour) takes another, so ``drop=color`` loses
part of the palette (0.1-0.15 below the exact model's). Every other kind stays."""

_OTHER_KIND = {"circle": "square", "square": "circle", "rectangle": "triangle", "triangle": "diamond",
               "diamond": "star", "star": "circle", "ring": "triangle", "blob": "square"}  # fmt: skip


def check_drop(kind: str) -> str:
    """``kind`` when a sandbox model can lose it ("" loses nothing); else a ConfigurationError naming the kinds.

    Example:
        >>> check_drop("color"), check_drop("")
        ('color', '')
    """
    if kind not in ("", *DROP_KINDS):
        raise ConfigurationError(
            f"The sandbox cannot drop {kind!r}: drop one of {', '.join(DROP_KINDS)} (e.g. 'sandbox?drop=color')."
        )
    return kind


def _recolor(shape: Shape, background: tuple[int, int, int]) -> Shape:
    own = basic_name(shape.color)
    options = [c for c in PALETTE.values() if basic_name(c) != own and delta_e(c, background) >= 30]
    if not options:
        return shape
    return replace(shape, color=max(options, key=lambda c: (delta_e(c, shape.color), c)))


def _pass_colors_round(scene: Scene) -> list[Shape]:
    shapes = list(scene.shapes)
    passed = [replace(s, color=shapes[(i + 1) % len(shapes)].color) for i, s in enumerate(shapes)]
    return [
        p if basic_name(p.color) != basic_name(s.color) else _recolor(s, scene.background)
        for s, p in zip(shapes, passed, strict=True)
    ]


def _next_cell(v: float, size: float) -> float:
    """``v`` one grid cell on (the last wraps to the first), keeping its place in the cell; a shape
    that fitted in the frame is kept inside it (drawn against the edge rather than cut by it)."""
    i = GRID.index(grid_anchor(v))
    moved = v - GRID[i] + GRID[(i + 1) % 3]
    half = size / 2
    if half <= v <= 1 - half:
        moved = min(1 - half, max(half, moved))
    return moved


_NAMED_SIZES = [w for w in SIZE_WORDS if SIZE_WORDS[w] >= SMALLEST_NOTICED]
"""The size words a shape is drawn at: ``tiny`` shapes go unnoticed, and losing sizes must not lose shapes."""


def _gap(a: Shape, b: Shape) -> float:
    """How far apart two shapes are, edge to edge (negative when they overlap), as :func:`random_scene` measures."""
    return math.dist((a.x, a.y), (b.x, b.y)) - 0.5 * (a.size + b.size)


def _overlap_added(shape: Shape, before: Shape, others: list[Shape]) -> float:
    """How much more ``shape`` (``before``, resized) overlaps another shape than ``before`` did (0 when no
    more), or 1 when it leaves the frame and ``before`` did not."""
    inside = all(shape.size / 2 <= v <= 1 - shape.size / 2 for v in (shape.x, shape.y))
    was_inside = all(before.size / 2 <= v <= 1 - before.size / 2 for v in (before.x, before.y))
    worse = max((min(0.0, _gap(before, o)) - _gap(shape, o) for o in others), default=0.0)
    return (1.0 if was_inside and not inside else 0.0) + max(0.0, worse)


def _size_options(shape: Shape) -> list[float]:
    """The sizes ``shape`` may take, preferred first: two size words larger for small and medium shapes,
    smaller for large and huge ones; two words the other way (as far as the words go); then one word."""
    word = min(_NAMED_SIZES, key=lambda w: abs(SIZE_WORDS[w] - shape.size))
    i, last = _NAMED_SIZES.index(word), len(_NAMED_SIZES) - 1
    steps = (2, -2, 1, -1) if i < 2 else (-2, 2, -1, 1)
    words = dict.fromkeys(_NAMED_SIZES[min(max(i + step, 0), last)] for step in steps)
    return [SIZE_WORDS[w] for w in words if w != word]


def _resize_all(shapes: tuple[Shape, ...]) -> list[Shape]:
    """Each shape at its first size of :func:`_size_options` that adds no overlap with another shape
    (drawn as resized so far; one still to come at the smallest size it may take) and stays in the
    frame; the one that adds least when none can."""
    out = list(shapes)
    for i, shape in enumerate(shapes):
        others = out[:i] + [replace(s, size=min(_size_options(s))) for s in shapes[i + 1 :]]
        size = min(_size_options(shape), key=lambda v: _overlap_added(replace(shape, size=v), shape, others))
        out[i] = replace(shape, size=size)
    return out


def _extra_copy(scene: Scene) -> Scene:
    if not scene.shapes:
        return scene
    largest = max(scene.shapes, key=lambda s: s.size)
    cells = [(x, y) for y in GRID for x in GRID]
    taken = [(s.x, s.y) for s in scene.shapes]
    x, y = max(cells, key=lambda c: (min(math.dist(c, t) for t in taken), -c[1], -c[0]))
    return replace(scene, shapes=(*scene.shapes, replace(largest, x=x, y=y)))


def drop(scene: Scene, kind: str) -> Scene:
    """``scene`` as a model that loses ``kind`` draws it (see the module docstring); ``""`` keeps it."""
    if not check_drop(kind):
        return scene
    if kind == "count":
        return _extra_copy(scene)
    if kind == "color":
        shapes = _pass_colors_round(scene)
    elif kind == "position":
        shapes = [replace(s, x=_next_cell(s.x, s.size), y=_next_cell(s.y, s.size)) for s in scene.shapes]
    elif kind == "size":
        shapes = _resize_all(scene.shapes)
    else:
        shapes = [replace(s, kind=_OTHER_KIND.get(s.kind, "square")) for s in scene.shapes]
    return replace(scene, shapes=tuple(shapes))
