"""The sandbox MLLM checking a reference's element checklist on an image, from its pixels.

Answers :class:`~imagerepainter.loop.schemas.ElementVerdicts` (see :mod:`imagerepainter.loop.elements`).
The checklist comes from the request's task data (``{"elements": [...]}``, as the ``elements``
metric sends it) or, over HTTP, from its ``- <id> [<kind>] <text>`` lines. The image is
perceived (:mod:`~imagerepainter.sandbox.perception`); each object the checklist names (a
sandbox object name such as ``"large blue circle at top left"``) is matched to one perceived
shape, all at once and each shape once, by how many of its cues (kind, colour, place, size) agree,
so a shape wrong in one way is still found; then:

===============  =====================================================================
kind             verdict
===============  =====================================================================
``object``       yes when its matched shape is of its kind; no otherwise
``color``        yes for the same basic colour term; partly when close (ΔE < 20); else no
``position``     yes in the same grid cell; partly in the same row or column; else no
``size``         yes for the same size word; partly one word off; else no
``count``        yes when as many shapes are noticed; else no
``relation``     ``"the A is <left of|right of|above|below> the B"``, checked on A's and B's
                 matched shapes: yes when that is the main direction from A to B; partly when
                 it holds but the other axis is the main one (A left of and farther above B);
                 no when either is missing or the text says something else
``style``,       yes when the text's look (photograph or flat art) is the image's; else no
``lighting``
``palette``      half for the background's colour term, half for the share of the listed
                 colours seen: yes from 0.85, partly from 0.4, else no
``composition``  yes when the look matches and the count is at most one off; else partly
any other        yes when its object is there (the sandbox sees no materials); else no
===============  =====================================================================

A render that lost its colours gets "no" on colour elements, one whose shapes moved gets
"no" on positions: the verdicts are what the pixels show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .colors import basic_name, delta_e, parse_color
from .describe import coarse_shape, is_photo, noticed
from .perception import Blob, Perception
from .scene import SIZE_WORDS, Shape, grid_anchor, parse_prompt

__all__ = ["check_elements", "read_checklist"]

_LINE = re.compile(r"^\s*-\s*(?P<id>[\w.-]+)\s*\[(?P<kind>[a-z_]+)\]\s*(?P<text>.+?)\s*$", re.MULTILINE)
_ATTRIBUTE = re.compile(r"^(?P<subject>.+?)\s+—\s+(?P<key>[\w ]+):\s*(?P<value>.+)$")
_RELATION = re.compile(r"^the (?P<a>.+?) is (?P<rel>left of|right of|above|below) the (?P<b>.+?)\.?$", re.IGNORECASE)
_SIZE_ORDER = list(SIZE_WORDS)


def read_checklist(text: str, task: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The elements of a request: its task data's ``elements``, else its checklist lines."""
    if task and isinstance(task.get("elements"), list):
        return [dict(e) for e in task["elements"]]
    out = []
    for match in _LINE.finditer(text):
        element: dict[str, Any] = {"id": match["id"], "kind": match["kind"], "text": match["text"]}
        element["subject"], element["value"] = None, None
        attribute = _ATTRIBUTE.match(match["text"])
        if attribute:
            element["subject"], element["value"] = attribute["subject"], attribute["value"]
        elif match["text"].endswith(" is present"):
            element["subject"] = match["text"].removesuffix(" is present")
        elif match["kind"] == "count" and (number := re.search(r"\d+", match["text"])):
            element["value"] = number[0]
        elif match["kind"] in ("style", "lighting", "palette", "composition"):
            element["value"] = match["text"].split(":", 1)[-1].strip()
        out.append(element)
    return out


def _shape_of(phrase: str) -> Shape | None:
    shapes = parse_prompt(phrase).shapes
    return shapes[0] if shapes else None


def _cost(shape: Shape, blob: Blob) -> float:
    """How unlike ``blob`` is to ``shape``: at most one point per cue (kind, place, size; colour 0.8, the
    cue a render gets wrong most), so a shape wrong in one way is still closer than another that differs in two.
    A name places its object in a grid cell, so any place in that cell agrees with it."""
    same_cell = _cell(shape.x, shape.y) == _cell(blob.x, blob.y)
    return (
        (0.0 if shape.kind == blob.kind else 1.0)
        + min(0.8, delta_e(shape.color, blob.color) / 25)
        + (0.0 if same_cell else min(1.0, (abs(shape.x - blob.x) + abs(shape.y - blob.y)) / 0.3))
        + min(1.0, abs(shape.size - blob.size) / 0.15)
    )


def _match(subjects: Sequence[str], seen: Perception) -> dict[str, Blob | None]:
    """Each subject's shape in the image: the cheapest pairs first, each shape and subject once."""
    parsed = {s: _shape_of(s) for s in dict.fromkeys(subjects)}
    pairs = sorted(
        (_cost(shape, blob), i, s, blob)
        for s, shape in parsed.items()
        if shape is not None
        for i, blob in enumerate(seen.blobs)
    )
    found: dict[str, Blob | None] = dict.fromkeys(parsed)
    used: set[int] = set()
    for _, i, subject, blob in pairs:
        if found[subject] is None and i not in used:
            found[subject] = blob
            used.add(i)
    return found


def _cell(x: float, y: float) -> tuple[float, float]:
    return grid_anchor(x), grid_anchor(y)


def _graded(exact: bool, close: bool) -> str:
    return "yes" if exact else "partly" if close else "no"


def _attribute(kind: str, value: str, blob: Blob) -> tuple[str, str]:
    """The verdict on one attribute of a matched shape, and what the image shows."""
    if kind == "color":
        wanted, seen = parse_color(value), basic_name(blob.color)
        if wanted is None:
            return "partly", f"it is {seen}"
        return _graded(basic_name(wanted) == seen, delta_e(wanted, blob.color) < 20), f"it is {seen}"
    if kind == "position":
        target = _shape_of(f"a circle at {value}")
        if target is None:
            return "partly", "its place cannot be read"
        (tx, ty), (bx, by) = _cell(target.x, target.y), _cell(blob.x, blob.y)
        return _graded((tx, ty) == (bx, by), tx == bx or ty == by), f"it is at {bx:.0%} {by:.0%}"
    if kind == "size":
        word = next((w for w, v in SIZE_WORDS.items() if v == coarse_shape(blob).size), "medium")
        if value not in _SIZE_ORDER:
            return "partly", f"it is {word}"
        steps = abs(_SIZE_ORDER.index(value) - _SIZE_ORDER.index(word))
        return _graded(steps == 0, steps == 1), f"it is {word}"
    return "yes", "there"


def _relation(text: str, found: Mapping[str, Blob | None]) -> tuple[str, str]:
    match = _RELATION.match(text.strip())
    if match is None:
        return "no", "not a relation the sandbox can see"
    a, b = found.get(match["a"]), found.get(match["b"])
    if a is None or b is None:
        return "no", "one of them is missing"
    dx, dy = b.x - a.x, b.y - a.y
    seen = ("left of" if dx > 0 else "right of") if abs(dx) >= abs(dy) else ("above" if dy > 0 else "below")
    said = match["rel"].lower()
    holds = {"left of": dx > 0, "right of": dx < 0, "above": dy > 0, "below": dy < 0}[said]
    return _graded(seen == said, holds), f"the first is {seen} the second"


def _palette(value: str, seen: Perception) -> tuple[str, str]:
    background, _, rest = value.partition(";")
    wanted = [c.strip() for c in rest.split(",") if c.strip()]
    colors = {basic_name(b.color) for b in seen.blobs}
    share = sum(c in colors for c in wanted) / len(wanted) if wanted else 1.0
    score = 0.5 * (basic_name(seen.background) in background) + 0.5 * share
    seen_text = f"{basic_name(seen.background)} background; {', '.join(sorted(colors))}"
    return _graded(score >= 0.85, score >= 0.4), seen_text


def _global(kind: str, value: str, seen: Perception) -> tuple[str, str]:
    photo = is_photo(seen)
    look = "photograph" if photo else "flat art"
    same_look = ("photo" in value.lower() or "natural light" in value.lower()) == photo
    if kind in ("style", "lighting"):
        return ("yes" if same_look else "no"), f"it looks like {look}"
    if kind == "palette":
        return _palette(value, seen)
    number = re.search(r"\d+", value)
    close = number is not None and abs(int(number[0]) - len(noticed(seen))) <= 1
    return ("yes" if same_look and close else "partly"), f"{len(noticed(seen))} elements, {look}"


def _verdict(element: Mapping[str, Any], seen: Perception, found: Mapping[str, Blob | None]) -> tuple[str, str]:
    kind, value, subject = element.get("kind"), str(element.get("value") or ""), element.get("subject")
    if kind == "relation":
        return _relation(str(element.get("text", "")), found)
    if kind == "count":
        n = len(noticed(seen))
        return ("yes" if value.strip() == str(n) else "no"), f"{n} shapes"
    if subject is None:
        return _global(str(kind), value or str(element.get("text", "")), seen)
    blob = found.get(str(subject))
    if blob is None:
        return "no", "not in the image"
    if kind == "object":
        wanted = _shape_of(str(subject))
        same = wanted is not None and wanted.kind == blob.kind
        return ("yes" if same else "no"), f"a {blob.kind} stands there"
    return _attribute(str(kind), value, blob)


def check_elements(seen: Perception, elements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The verdicts on ``elements`` for an image perceived as ``seen``: validates as ``ElementVerdicts``."""
    subjects = [str(e["subject"]) for e in elements if e.get("subject")]
    for element in elements:
        if element.get("kind") == "relation" and (m := _RELATION.match(str(element.get("text", "")).strip())):
            subjects += [m["a"], m["b"]]
    found = _match(subjects, seen)
    verdicts = []
    for element in elements:
        verdict, reason = _verdict(element, seen, found)
        verdicts.append({"id": str(element.get("id", "")), "verdict": verdict, "reason": reason})
    return {"verdicts": verdicts}
