"""The sandbox model as a judge: 1-5 ratings of how closely a regeneration matches its reference.

:func:`rate` answers :class:`~imagerepainter.loop.schemas.SimilarityRating` from what the sandbox
*perceives* in the two images (:mod:`~imagerepainter.sandbox.perception`), never from a hidden
scene, so it judges photographs and renders alike. It measures two errors in [0, 1] and maps
each onto the schema's rubric:

* **semantic** — the reference's shapes are matched with the candidate's (as the critic
  matches them); each reference shape costs its share of the picture times how wrong it is
  (missing: 1; otherwise its offset in position, size, kind and colour), and each shape the
  reference lacks costs its share as well;
* **aesthetic** — the look: how far the background colour is, how far each colour of the
  reference (weighted by area) is from the nearest colour of the candidate and back, and a
  flat picture judged against a photograph.

The thresholds (:data:`SEMANTIC_LEVELS`, :data:`AESTHETIC_LEVELS`) follow the rubric's
wording: a 5 is the same picture up to what the eye cannot tell, a 1 shares nothing. The
ratings are deterministic and fall as the pictures differ more; the rationale names the
largest differences.

Example:
    >>> from imagerepainter.sandbox.perception import perceive
    >>> from imagerepainter.sandbox.renderer import render_scene
    >>> from imagerepainter.sandbox.scene import parse_prompt
    >>> reference = render_scene(parse_prompt("a large red circle at top left, a small navy star at 70% 70%"))
    >>> same = render_scene(parse_prompt("a large red circle at top left, a small navy star at 70% 70%"), seed=3)
    >>> moved = render_scene(parse_prompt("a large red circle at 32% 20%, a small navy star at 70% 70%"))
    >>> rate(perceive(reference), perceive(same))
    {'aesthetic': 5, 'semantic': 5, 'rationale': 'The two pictures match: same background, shapes, colours and layout.'}
    >>> rating = rate(perceive(reference), perceive(moved))
    >>> rating["aesthetic"], rating["semantic"], rating["rationale"]
    (5, 4, 'The red circle sits further right.')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .colors import RGB, basic_name, delta_e
from .critic import match_blobs
from .describe import direction_words, is_photo
from .perception import Blob, Perception

__all__ = ["AESTHETIC_LEVELS", "SEMANTIC_LEVELS", "rate"]

SEMANTIC_LEVELS: tuple[float, float, float, float] = (0.05, 0.2, 0.45, 0.75)
"""Largest semantic error of a 5, 4, 3 and 2 (larger errors rate 1)."""
AESTHETIC_LEVELS: tuple[float, float, float, float] = (0.04, 0.12, 0.25, 0.45)
"""Largest aesthetic error of a 5, 4, 3 and 2 (larger errors rate 1)."""
_COLOR_SCALE = 50.0
"""A colour difference (CIE76) that counts as a different colour altogether."""


@dataclass(frozen=True)
class _Difference:
    weight: float
    note: str


def _level(error: float, levels: tuple[float, float, float, float]) -> int:
    return 5 - sum(error > limit for limit in levels)


def _weight(blob: Blob) -> float:
    """A shape's share of attention: its area, with a floor so a small shape still counts."""
    return max(blob.area, 0.01)


def _name(blob: Blob) -> str:
    return f"{basic_name(blob.color)} {blob.kind}"


def _shape_error(r: Blob, c: Blob) -> tuple[float, list[str]]:
    """How wrong the candidate's shape ``c`` is as a rendering of the reference's ``r`` (0 to 1), and why."""
    notes: list[str] = []
    offset = math.dist((r.x, r.y), (c.x, c.y))
    position = min(1.0, max(0.0, offset - 0.01) / 0.5)  # a shape half the frame away is as good as missing
    if offset > 0.04:
        notes.append(f"The {_name(r)} sits {direction_words(c.x - r.x, c.y - r.y, threshold=0.03)}.")
    ratio = abs(math.log(max(c.size, 1e-3) / max(r.size, 1e-3)))
    size = min(1.0, max(0.0, ratio - math.log(1.05)) / math.log(3))
    if ratio > math.log(1.2):
        notes.append(f"The {_name(r)} is too {'large' if c.size > r.size else 'small'}.")
    kind = 0.4 if r.kind != c.kind and "blob" not in (r.kind, c.kind) else 0.0
    if kind:
        notes.append(f"The {_name(r)} is drawn as a {c.kind}.")
    de = delta_e(r.color, c.color)
    color = 0.5 * min(1.0, max(0.0, de - 5) / _COLOR_SCALE)
    if de > 15:
        notes.append(f"The {_name(r)} is {basic_name(c.color)} in the regeneration.")
    return min(1.0, position + size + kind + color), notes


def _semantic(reference: Perception, candidate: Perception) -> tuple[float, list[_Difference]]:
    matched = match_blobs(reference.blobs, candidate.blobs)
    total, wrong = 0.0, 0.0
    differences: list[_Difference] = []
    for i, r in enumerate(reference.blobs):
        w = _weight(r)
        total += w
        if i not in matched:
            wrong += w
            differences.append(_Difference(w, f"The {_name(r)} is missing."))
            continue
        error, notes = _shape_error(r, candidate.blobs[matched[i]])
        wrong += w * error
        differences += [_Difference(w * error / len(notes), n) for n in notes]
    extra = set(range(len(candidate.blobs))) - set(matched.values())
    for j in sorted(extra):
        w = _weight(candidate.blobs[j])
        total += w
        wrong += w
        differences.append(_Difference(w, f"A {_name(candidate.blobs[j])} is not in the reference."))
    return (wrong / total if total else 0.0), differences


def _palette(p: Perception) -> list[tuple[RGB, float]]:
    return [(p.background, p.background_area), *((b.color, b.area) for b in p.blobs)]


def _palette_distance(a: Perception, b: Perception) -> float:
    """Area-weighted distance from each colour of ``a`` to the nearest colour of ``b``, in [0, 1]."""
    colors_a, colors_b = _palette(a), _palette(b)
    total = sum(area for _, area in colors_a) or 1.0
    return sum(area * min(1.0, min(delta_e(c, d) for d, _ in colors_b) / _COLOR_SCALE) for c, area in colors_a) / total


def _aesthetic(reference: Perception, candidate: Perception) -> tuple[float, list[_Difference]]:
    background = min(1.0, delta_e(reference.background, candidate.background) / _COLOR_SCALE)
    palette = 0.5 * (_palette_distance(reference, candidate) + _palette_distance(candidate, reference))
    medium = 1.0 if is_photo(reference) != is_photo(candidate) else 0.0
    differences = []
    if background > 0.1:
        differences.append(
            _Difference(
                background * reference.background_area,
                f"The background is {basic_name(candidate.background)}, not {basic_name(reference.background)}.",
            )
        )
    if medium:
        kinds = ("a photograph", "flat vector art")
        ref_kind, cand_kind = (kinds[0], kinds[1]) if is_photo(reference) else (kinds[1], kinds[0])
        differences.append(_Difference(1.0, f"The reference is {ref_kind}; the regeneration is {cand_kind}."))
    if palette > 0.1:
        differences.append(_Difference(palette * 0.5, "The colour palettes differ."))
    return min(1.0, 0.5 * background + 0.5 * palette + 0.5 * medium), differences


def rate(reference: Perception, candidate: Perception, *, max_reasons: int = 2) -> dict[str, object]:
    """Rate ``candidate`` against ``reference``: a dict that validates as ``schemas.SimilarityRating``.

    Args:
        reference: What the reference looks like (the first image of a judge request).
        candidate: What the regeneration looks like (the second image).
        max_reasons: Most differences the rationale names, largest first.
    """
    semantic, sem_diffs = _semantic(reference, candidate)
    aesthetic, aes_diffs = _aesthetic(reference, candidate)
    differences = sorted(sem_diffs + aes_diffs, key=lambda d: -d.weight)
    notes = [d.note for d in differences if d.weight > 0.002][:max_reasons]
    rationale = " ".join(notes) or "The two pictures match: same background, shapes, colours and layout."
    return {
        "aesthetic": _level(aesthetic, AESTHETIC_LEVELS),
        "semantic": _level(semantic, SEMANTIC_LEVELS),
        "rationale": rationale,
    }
