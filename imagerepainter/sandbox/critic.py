"""Comparing what the reference and a candidate look like, and proposing prompt edits.

:func:`review` matches the blobs of the reference with those of the candidate, and the
candidate's blobs with the shapes of the prompt that drew it. Each difference becomes a
:class:`Finding` — a note for the critique and one concrete edit of the prompt — weighted
by how much of the image it affects. Only the :data:`MAX_EDITS` weightiest edits are
proposed per round, so a scene with many faults takes several rounds to fix.

Edits are relative to what the candidate shows: a shape drawn 5% too far left is moved
5% right *from where the prompt put it*, so the renderer's own offsets cancel out.

Example:
    >>> from imagerepainter.sandbox.perception import perceive
    >>> from imagerepainter.sandbox.renderer import render_scene
    >>> from imagerepainter.sandbox.scene import parse_prompt
    >>> reference = render_scene(parse_prompt("a large crimson circle at 30% 30%, a navy background"))
    >>> prompt = parse_prompt("a large red circle at top left, a blue background")
    >>> result = review(perceive(reference), perceive(render_scene(prompt)), prompt)
    >>> for edit in result.edits:  # perception is accurate to about a pixel
    ...     print(edit)
    change the background to navy
    move the red circle at top left to 29% 29%
    change the color of the red circle at top left to crimson
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeVar

import numpy as np

from .colors import RGB, basic_name, delta_e, format_color, rgb_to_lab
from .describe import direction_words, fine_color, fine_shape
from .edits import (
    add_edit,
    background_edit,
    move_edit,
    recolor_edit,
    rekind_edit,
    remove_edit,
    resize_edit,
    shape_ref,
)
from .perception import Blob, Perception
from .scene import Scene, Shape

__all__ = ["FAR_OFF", "MAX_COLOR_COST", "MAX_EDITS", "MAX_MOVED", "NEAR", "Finding", "Review", "match_blobs", "review"]

MAX_EDITS = 3
"""Edits proposed per critique, weightiest first."""

FAR_OFF = 0.25
"""How far from the prompt's place a renderer may draw a shape for a move to make up for it (see :func:`review`)."""

MAX_COLOR_COST = 0.1
"""The most a difference in colour adds to the cost of pairing two shapes of one kind (see :func:`match_blobs`)."""

NEAR = 0.15
"""How close two shapes of one kind must be for a difference in colour alone to pair them (see :func:`match_blobs`)."""

MAX_MOVED = 0.15
"""How alike in kind, size and colour two shapes far apart must be to be one shape, moved (see :func:`match_blobs`)."""

Aspect = Literal["style", "composition", "content"]
A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True)
class Finding:
    """One difference between reference and candidate."""

    aspect: Aspect
    """Which critique field it belongs to."""
    note: str
    """The difference in words."""
    edit: str
    """The prompt edit that fixes it."""
    impact: float
    """Rough fraction of the image it affects; findings are ranked by it."""


@dataclass(frozen=True)
class Review:
    """The outcome of :func:`review`."""

    findings: tuple[Finding, ...]
    """Every difference found, weightiest first."""
    edits: tuple[str, ...]
    """The edits proposed this round (at most ``max_edits``)."""
    is_match: bool
    """True when no difference worth an edit is left."""

    def notes(self, aspect: Aspect, *, limit: int = 6) -> str:
        """The notes of one aspect as a paragraph."""
        notes = [f.note for f in self.findings if f.aspect == aspect][:limit]
        if notes:
            return " ".join(notes)
        return {
            "style": "Background and colours match.",
            "composition": "Placement and sizes match.",
            "content": "No missing, extra or wrong shapes.",
        }[aspect]


def _greedy_match(
    left: Sequence[A], right: Sequence[B], cost: Callable[[A, B], float], max_cost: float
) -> dict[int, int]:
    pairs = sorted((cost(a, b), i, j) for i, a in enumerate(left) for j, b in enumerate(right))
    matched: dict[int, int] = {}
    used: set[int] = set()
    for c, i, j in pairs:
        if c > max_cost:
            break
        if i not in matched and j not in used:
            matched[i] = j
            used.add(j)
    return matched


class Cues(NamedTuple):
    """How unlike two shapes are: the four terms of a match's cost, and whether their colours differ in name."""

    place: float
    color: float
    size: float
    kind: float
    other_term: bool
    """The two colours have different basic colour terms (a red and a blue; not a crimson and a red)."""

    @property
    def cost(self) -> float:
        """The whole cost: every term in full."""
        return self.place + self.color + self.size + self.kind


def _cues(x1: float, y1: float, c1: RGB, s1: float, k1: str, x2: float, y2: float, c2: RGB, s2: float, k2: str) -> Cues:
    return Cues(
        place=math.dist((x1, y1), (x2, y2)),
        color=0.004 * delta_e(c1, c2),
        size=0.5 * abs(s1 - s2),
        kind=0.05 if k1 != k2 else 0.0,
        other_term=basic_name(c1) != basic_name(c2),
    )


def _blob_cues(a: Blob, b: Blob) -> Cues:
    return _cues(a.x, a.y, a.color, a.size, a.kind, b.x, b.y, b.color, b.size, b.kind)


def _shape_cues(a: Blob, b: Shape) -> Cues:
    return _cues(a.x, a.y, a.color, a.size, a.kind, b.x, b.y, b.color, b.size, b.kind)


def _by_shape(cues: Cues) -> float:
    """The cost of a pair, its colour term stopped at :data:`MAX_COLOR_COST` when both are of one kind:
    a shape of the right kind in its place, in any other colour, is nearer than one of the right colour
    a cell away. Shapes that differ in kind too keep the whole colour term."""
    color = cues.color if cues.kind else min(cues.color, MAX_COLOR_COST)
    return cues.place + color + cues.size + cues.kind


def _same_kind(cues: Cues) -> float:
    """:func:`_by_shape` for two shapes of one kind in nearly one place (within :data:`NEAR`); no
    pair (infinite) for two kinds, or two places: a shape of the kind a cell away may be another
    shape, drawn as the wrong kind."""
    return math.inf if cues.kind or cues.place > NEAR else _by_shape(cues)


def _moved(cues: Cues) -> float:
    """The cost of two shapes of one kind and colour term wherever they are, the colour stopped at
    :data:`MAX_COLOR_COST`: small for one shape drawn a cell away, maybe in another shade of its
    colour; no pair (infinite) for two kinds or two colour terms (two shapes, not one moved)."""
    return math.inf if cues.kind or cues.other_term else min(cues.color, MAX_COLOR_COST) + cues.size


def _match_shapes(
    left: Sequence[A], right: Sequence[B], cues: Callable[[A, B], Cues], max_cost: float
) -> dict[int, int]:
    """Greedy pairs in three passes, each over the shapes the passes before left unpaired: shapes of
    one kind in nearly one place (:func:`_same_kind`); shapes of one kind and size wherever they are
    (:func:`_moved`, at most :data:`MAX_MOVED`): the same shape, moved; then any shapes near each
    other (:func:`_by_shape`)."""
    passes: tuple[tuple[Callable[[Cues], float], float], ...] = (
        (_same_kind, max_cost),
        (_moved, MAX_MOVED),
        (_by_shape, max_cost),
    )
    matched: dict[int, int] = {}
    for cost, limit in passes:
        rest_left = [i for i in range(len(left)) if i not in matched]
        rest_right = [j for j in range(len(right)) if j not in matched.values()]

        def pair_cost(a: A, b: B, cost: Callable[[Cues], float] = cost) -> float:
            return cost(cues(a, b))

        found = _greedy_match([left[i] for i in rest_left], [right[j] for j in rest_right], pair_cost, limit)
        matched |= {rest_left[i]: rest_right[j] for i, j in found.items()}
    return matched


def match_blobs(
    reference: Sequence[Blob], candidate: Sequence[Blob], *, max_cost: float = 0.45, by_shape: bool = False
) -> dict[int, int]:
    """Pair each reference blob with the candidate blob most like it (position, colour, size, kind), greedily.

    Returns ``{reference index: candidate index}``; a blob with no partner closer than
    ``max_cost`` stays unpaired (missing from, or extra in, the candidate).

    ``by_shape=True`` pairs as a critic names differences (:func:`review`): between shapes of one
    kind in nearly one place (:data:`NEAR`), colour adds at most
    :data:`MAX_COLOR_COST`, so a blue circle where the reference has a red one is that circle in
    the wrong colour, not a missing red circle and an extra blue one; and blobs still unpaired
    are paired when they differ in place alone, so a shape drawn a cell away is that shape moved.

    Example:
        >>> from imagerepainter.sandbox.perception import perceive
        >>> from imagerepainter.sandbox.renderer import render_scene
        >>> from imagerepainter.sandbox.scene import parse_prompt
        >>> def seen(prompt):
        ...     return perceive(render_scene(parse_prompt(prompt + ", white background"))).blobs
        >>> red, blue = seen("a large red circle at center"), seen("a large blue circle at center")
        >>> match_blobs(red, blue), match_blobs(red, blue, by_shape=True)
        ({}, {0: 0})
        >>> match_blobs(red, seen("a large red circle at bottom right"), by_shape=True)
        {0: 0}
    """
    if by_shape:
        return _match_shapes(reference, candidate, _blob_cues, max_cost)
    return _greedy_match(reference, candidate, lambda a, b: _blob_cues(a, b).cost, max_cost)


def _shape_cost(a: Blob, b: Shape) -> float:
    return _shape_cues(a, b).cost


def _tone(want: RGB, have: RGB) -> str:
    dl = float(rgb_to_lab(np.array(want))[0] - rgb_to_lab(np.array(have))[0])
    if dl > 6:
        return "too dark"
    if dl < -6:
        return "too light"
    return "the wrong hue"


def _color_finding(
    name: str, seen: tuple[RGB, RGB], asked: RGB, edit: Callable[[RGB], str], *, it: str, area: float, min_de: float
) -> list[Finding]:
    """The style finding when the candidate's colour (``seen[1]``) is more than ``min_de`` from the
    reference's (``seen[0]``): recolour to the palette shade nearest the reference's (``asked`` is the
    prompt's colour now); weighted by ``area`` and how far off it is. No finding when close enough."""
    reference, candidate = seen
    de = delta_e(reference, candidate)
    if de <= min_de:
        return []
    target = fine_color(reference, current=asked)
    note = f"The {name} should be {format_color(target)}; {it} is {_tone(reference, candidate)}."
    return [Finding("style", note, edit(target), area * min(de, 60) / 60)]


def _move_target(r: Blob, c: Blob, p: Shape) -> tuple[float, float]:
    """Where a move puts the prompt's shape ``p``: as far from where the prompt has it as the
    candidate's shape ``c`` is from the reference's ``r``, so the renderer's own small offsets cancel
    out. Where the renderer drew the shape far from the prompt's place (more than :data:`FAR_OFF`: not an
    offset a prompt can make up for) or that move leaves the frame: where the reference has it.

    Example:
        >>> from imagerepainter.sandbox.scene import Shape
        >>> def blob(x, y):
        ...     return Blob("circle", (0, 0, 0), x, y, 0.2, 0.03)
        >>> _move_target(blob(0.3, 0.3), blob(0.52, 0.5), Shape("circle", (0, 0, 0), 0.2, 0.5, 0.5))
        (0.28, 0.3)
        >>> _move_target(blob(0.3, 0.3), blob(0.8, 0.8), Shape("circle", (0, 0, 0), 0.2, 0.5, 0.5))
        (0.3, 0.3)
    """
    x, y = p.x + r.x - c.x, p.y + r.y - c.y
    if math.dist((c.x, c.y), (p.x, p.y)) > FAR_OFF or not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        x, y = r.x, r.y
    return round(x, 2), round(y, 2)


def _shape_findings(r: Blob, c: Blob, p: Shape) -> list[Finding]:
    """What differs between a shape seen in the reference (``r``) and in the candidate (``c``), drawn
    by the prompt's shape ``p``: its colour, kind, place and size."""
    name = shape_ref(p)
    recolor = functools.partial(recolor_edit, p)
    findings = _color_finding(name, (r.color, c.color), p.color, recolor, it="it", area=r.area, min_de=5)
    if r.kind != c.kind and r.kind != "blob" and r.kind != p.kind:
        findings.append(
            Finding("content", f"The {name} should be a {r.kind}.", rekind_edit(p, r.kind, r.rotation), r.area * 0.4)
        )
    dx, dy = r.x - c.x, r.y - c.y
    d = math.hypot(dx, dy)
    if d > 0.012:
        x, y = _move_target(r, c, p)
        findings.append(
            Finding(
                "composition",
                f"The {name} should sit {direction_words(dx, dy, threshold=0.01)}.",
                move_edit(p, x, y),
                2 * r.area * min(1.0, d / max(r.size, 0.05)),
            )
        )
    ratio = r.size / max(c.size, 1e-6)
    if abs(ratio - 1) > 0.05:
        findings.append(
            Finding(
                "composition",
                f"The {name} is too {'small' if ratio > 1 else 'large'}.",
                resize_edit(p, min(1.0, round(p.size * ratio, 2))),
                r.area * min(1.0, abs(1 - ratio**2)),
            )
        )
    return findings


def review(
    reference: Perception,
    candidate: Perception,
    prompt: Scene,
    *,
    max_edits: int = MAX_EDITS,
    min_impact: float = 0.002,
) -> Review:
    """Compare two perceptions and propose edits of the prompt that drew the candidate.

    Args:
        reference: What the reference looks like.
        candidate: What the candidate looks like.
        prompt: The scene of the candidate's prompt; edits name its shapes.
        max_edits: Most edits to propose.
        min_impact: Differences affecting less of the image than this are ignored.
    """
    seen = (reference.background, candidate.background)
    findings = _color_finding(
        "background",
        seen,
        prompt.background,
        background_edit,
        it="the candidate's",
        area=reference.background_area,
        min_de=4,
    )
    shapes = list(prompt.shapes)
    ref_to_cand = match_blobs(reference.blobs, candidate.blobs, by_shape=True)
    cand_to_prompt = _match_shapes(candidate.blobs, shapes, _shape_cues, 0.35)
    # -- shapes seen in both
    for ri, ci in ref_to_cand.items():
        r, c = reference.blobs[ri], candidate.blobs[ci]
        if ci not in cand_to_prompt:
            continue
        findings += _shape_findings(r, c, shapes[cand_to_prompt[ci]])
    # -- missing and extra shapes
    matched_cand = set(ref_to_cand.values())
    unseen = [p for i, p in enumerate(shapes) if i not in cand_to_prompt.values()]  # asked for, not seen
    for ri, r in enumerate(reference.blobs):
        if ri not in ref_to_cand:
            if any(_shape_cost(r, p) < 0.35 for p in unseen):
                continue  # the prompt already asks for it (it is hidden in the candidate): adding it twice won't help
            shape = fine_shape(r)
            if shape.kind == "blob":
                shape = Shape("circle", shape.color, shape.size, shape.x, shape.y)
            findings.append(
                Finding("content", f"{add_edit(shape)[4:].capitalize()} is missing.", add_edit(shape), 1.5 * r.area)
            )
    for ci, c in enumerate(candidate.blobs):
        if ci not in matched_cand and ci in cand_to_prompt:
            p = shapes[cand_to_prompt[ci]]
            findings.append(
                Finding("content", f"The {shape_ref(p)} is not in the reference.", remove_edit(p), 1.5 * c.area)
            )
    findings = [f for f in findings if f.impact >= min_impact]
    findings.sort(key=lambda f: -f.impact)
    return Review(
        findings=tuple(findings),
        edits=tuple(f.edit for f in findings[:max_edits]),
        is_match=not findings,
    )
