"""How sharply the sandbox MLLM sees: a quality knob for describers of known, graded strength.

A real benchmark of describers (``imagerepainter eval --mllm a=... --mllm b=...``) ranks MLLMs
by how well the images drawn from their descriptions match the references. To check that such
a ranking comes out right offline, the sandbox MLLM takes ``acuity`` (``sandbox?acuity=0.5``),
from 1 (the default: it sees what :func:`~imagerepainter.sandbox.perception.perceive` measures,
exactly as before) down towards 0. Below 1, :func:`blurred` degrades what it sees, before
anything is put into words, for describing, critiquing and rating alike:

* **misses small objects**: shapes smaller than ``0.3 * (1 - acuity)`` of the frame are not seen
  at all, and of the rest only the ``ceil(acuity * n)`` largest are (counts are rounded down
  with the detail);
* **blurs colours**: each colour loses ``1 - acuity`` of its distance from the
  grey of the same lightness, so its name drifts to a duller, coarser one (navy to grey-blue,
  then grey);
* **rounds positions and sizes**: centres snap to the middle of a grid of
  ``max(1, round(10 * acuity**2))`` cells a side (one cell: everything at the centre), sizes to
  steps of ``0.3 * (1 - acuity)``.

It is a pure function of the measurements and the acuity: the same image and acuity always
give the same description, and a lower acuity never sees more (the monotonicity that lets
graded describers rank in their true order).

Example:
    >>> from imagerepainter.sandbox.perception import Blob, Perception
    >>> seen = Perception((245, 245, 245), 0.8, (Blob("circle", (20, 30, 160), 0.31, 0.27, 0.4, 0.12),
    ...     Blob("star", (200, 20, 70), 0.8, 0.8, 0.1, 0.01)), 256, 256)
    >>> blurred(seen, 1.0) is seen
    True
    >>> dull = blurred(seen, 0.3)
    >>> [(b.kind, b.color, b.x, b.y) for b in dull.blobs]  # the small star is missed, the circle dulled and centred
    [('circle', (32, 37, 94), 0.5, 0.5)]
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..errors import ConfigurationError
from .colors import RGB
from .perception import Blob, Perception

__all__ = ["blurred", "check_acuity"]


def check_acuity(acuity: float) -> float:
    """``acuity`` as a float, or a :class:`ConfigurationError` saying what is accepted.

    Example:
        >>> check_acuity(1)
        1.0
        >>> try:
        ...     check_acuity(0)
        ... except ConfigurationError as exc:
        ...     print(exc)
        The sandbox MLLM's acuity must be in (0, 1] (1 sees every detail; e.g. sandbox?acuity=0.5), got 0.
    """
    value = float(acuity)
    if not 0.0 < value <= 1.0:
        raise ConfigurationError(
            f"The sandbox MLLM's acuity must be in (0, 1] (1 sees every detail; e.g. sandbox?acuity=0.5), got {acuity}."
        )
    return value


def blurred(seen: Perception, acuity: float) -> Perception:
    """What a describer of ``acuity`` makes of ``seen`` (see the module docstring); ``seen`` itself at 1."""
    acuity = check_acuity(acuity)
    if acuity == 1.0:
        return seen
    loss = 1.0 - acuity
    visible = [b for b in seen.blobs if b.size >= 0.3 * loss]  # blobs come largest first
    visible = visible[: math.ceil(acuity * len(visible))]
    cells = max(1, round(10 * acuity**2))
    return replace(
        seen,
        background=_dulled(seen.background, loss),
        blobs=tuple(_blurred_blob(b, loss, cells) for b in visible),
    )


def _blurred_blob(blob: Blob, loss: float, cells: int) -> Blob:
    step = 0.3 * loss
    return replace(
        blob,
        color=_dulled(blob.color, loss),
        x=_snap(blob.x, cells),
        y=_snap(blob.y, cells),
        size=round(max(step, round(blob.size / step) * step), 4),
    )


def _snap(value: float, cells: int) -> float:
    """The centre of the grid cell (``cells`` a side) that ``value`` (a fraction of the frame) falls in."""
    cell = min(cells - 1, max(0, math.floor(value * cells)))
    return round((cell + 0.5) / cells, 4)


def _dulled(color: RGB, loss: float) -> RGB:
    """``color`` moved ``loss`` of the way to the grey of its lightness (Rec. 601 luma)."""
    r, g, b = color
    grey = 0.299 * r + 0.587 * g + 0.114 * b
    k = loss
    return (round(r + (grey - r) * k), round(g + (grey - g) * k), round(b + (grey - b) * k))
