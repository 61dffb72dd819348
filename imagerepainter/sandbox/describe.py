"""Putting a :class:`~imagerepainter.sandbox.perception.Perception` into words, coarsely or finely.

The first description of a reference is deliberately *coarse*, like a quick glance: basic
colour terms (``"blue"``, never ``"navy"``), 3x3 grid positions, three size words, and
shapes smaller than :data:`SMALLEST_NOTICED` are missed. The critique later speaks
*finely*: palette shades, positions and sizes in percent. That gap is what makes one round
not enough and lets the loop improve the prompt round after round.

Example:
    >>> from imagerepainter.sandbox.perception import Blob, Perception
    >>> seen = Perception((20, 30, 100), 0.9, (Blob("circle", (200, 20, 70), 0.31, 0.27, 0.33, 0.08),), 256, 256)
    >>> coarse_scene(seen).to_prompt()
    'a large red circle at top left, on a blue background, flat vector art'
    >>> fine_shape(seen.blobs[0])
    Shape(kind='circle', color=(200, 20, 70), size=0.33, x=0.31, y=0.27, rotation=0.0)
"""

from __future__ import annotations

from .colors import PALETTE, RGB, basic_name, delta_e, nearest_name
from .perception import Blob, Perception
from .scene import SIZE_WORDS, Scene, Shape, format_position, format_shape, grid_anchor

__all__ = [
    "SMALLEST_NOTICED",
    "coarse_color",
    "coarse_scene",
    "coarse_shape",
    "direction_words",
    "fine_color",
    "fine_shape",
    "is_photo",
    "noticed",
    "object_name",
    "position_words",
]

SMALLEST_NOTICED = 0.12
"""Shapes whose size is below this are missed by the first, coarse description."""


def coarse_color(rgb: RGB) -> RGB:
    """The value of the basic colour term for ``rgb``."""
    return PALETTE[basic_name(rgb)]


def fine_color(rgb: RGB, *, current: RGB | None = None) -> RGB:
    """The closest palette shade for ``rgb``; its exact value when no shade is close or ``current`` has it."""
    named = PALETTE[nearest_name(rgb)]
    if delta_e(named, rgb) > 6 or named == current:
        return rgb
    return named


def _size_word(size: float) -> float:
    if size < 0.2:
        return SIZE_WORDS["small"]
    if size < 0.32:
        return SIZE_WORDS["medium"]
    if size < 0.48:
        return SIZE_WORDS["large"]
    return SIZE_WORDS["huge"]


def coarse_shape(blob: Blob) -> Shape:
    """A blob as a quick glance reports it: basic colour, size word, grid position."""
    kind = blob.kind
    return Shape(
        kind, coarse_color(blob.color), _size_word(blob.size), grid_anchor(blob.x), grid_anchor(blob.y), blob.rotation
    )


def fine_shape(blob: Blob) -> Shape:
    """A blob as a careful look reports it: palette shade, percent size and position."""
    return Shape(
        blob.kind,
        fine_color(blob.color),
        round(blob.size, 2),
        round(blob.x, 2),
        round(blob.y, 2),
        blob.rotation,
    )


def noticed(perception: Perception, max_objects: int | None = None) -> list[Blob]:
    """The blobs a first glance notices: the larger ones, most salient (largest) first."""
    blobs = [b for b in perception.blobs if b.size >= SMALLEST_NOTICED]
    return blobs if max_objects is None else blobs[:max_objects]


def coarse_scene(perception: Perception, max_objects: int | None = None) -> Scene:
    """The scene a first glance reports (large shapes first, so they are drawn underneath)."""
    return Scene(
        background=coarse_color(perception.background),
        shapes=tuple(coarse_shape(b) for b in noticed(perception, max_objects)),
    )


def object_name(blob: Blob) -> str:
    """A short, unique-enough noun phrase for a blob, e.g. ``"large blue circle at top left"``."""
    return format_shape(coarse_shape(blob)).split(" ", 1)[1]


def is_photo(perception: Perception) -> bool:
    """Whether the image looks like a photograph rather than flat shapes (much is left unexplained)."""
    explained = perception.background_area + sum(b.area for b in perception.blobs)
    return explained < 0.85


def position_words(blob: Blob) -> str:
    """Where a blob is, in grid words."""
    return format_position(grid_anchor(blob.x), grid_anchor(blob.y))


def direction_words(dx: float, dy: float, *, threshold: float) -> str:
    """Where a shape should go (or sits) for an offset of ``dx``, ``dy`` (fractions of the frame).

    A move smaller than ``threshold`` along an axis is not worth naming; with neither axis
    named the answer is ``"slightly elsewhere"``. The critic names smaller moves than the judge.

    Example:
        >>> direction_words(0.05, -0.2, threshold=0.03), direction_words(0.02, 0.0, threshold=0.03)
        ('further right and higher', 'slightly elsewhere')
    """
    parts = []
    if abs(dx) > threshold:
        parts.append("further right" if dx > 0 else "further left")
    if abs(dy) > threshold:
        parts.append("lower" if dy > 0 else "higher")
    return " and ".join(parts) or "slightly elsewhere"
