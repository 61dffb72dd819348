"""How sharply the sandbox MLLM sees: a quality knob for describers of known, graded strength.

A real benchmark of describers (``imagerepainter eval --mllm a=... --mllm b=...``) ranks MLLMs
by how well the images drawn from their descriptions match the references. To check that such
a ranking comes out right offline, the sandbox MLLM takes ``acuity`` (``sandbox?acuity=0.5``),
from 1 (the default: it sees what :func:`~imagerepainter.sandbox.perception.perceive` measures,
exactly as before) down towards 0. With ``d = 1 - acuity``, :func:`blurred` degrades what it
sees before anything is put into words, for describing, critiquing and rating alike:

* **misses small objects**: shapes smaller than ``0.2 d`` of the frame are not seen at all;
* **misjudges colours**: each shape's colour moves ``150 d`` RGB levels in a random direction,
  the background's ``250 d`` (clipped to 0-255), so its colour names drift to wrong ones;
* **misplaces shapes**: each centre moves by a random offset of ``0.1 d`` of the frame (standard
  deviation, each axis; kept inside the frame).

The directions are drawn from what is seen (a shape's colour and place; the background's
colour), never from the acuity: the same image and acuity always give the same description, and
a lower acuity misjudges the same way by more, case by case (each colour channel's error and
each offset grows with ``d``). They are random *directions*, not pulls towards typical values:
a describer that washes colours out to grey, centres everything or drops shapes draws images
that score *higher* against a reference that the coarse first description already misses (as
with the graded renderers of :mod:`~imagerepainter.sandbox.fidelity`).

Example:
    >>> from imagerepainter.sandbox.perception import Blob, Perception
    >>> seen = Perception((245, 245, 245), 0.8, (Blob("circle", (20, 30, 160), 0.31, 0.27, 0.4, 0.12),
    ...     Blob("star", (200, 20, 70), 0.8, 0.8, 0.1, 0.01)), 256, 256)
    >>> blurred(seen, 1.0) is seen
    True
    >>> dull = blurred(seen, 0.3)
    >>> [b.kind for b in dull.blobs], dull.background != seen.background  # the small star is missed
    (['circle'], True)
    >>> blurred(seen, 0.3) == dull  # deterministic
    True
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from .colors import RGB
from .options import check_share
from .perception import Blob, Perception

__all__ = ["blurred", "check_acuity"]


def check_acuity(acuity: float) -> float:
    """``acuity`` as a float, or a :class:`ConfigurationError` saying what is accepted (0 is not: a describer
    that sees nothing; see :func:`~imagerepainter.sandbox.options.check_share`).

    Example:
        >>> check_acuity(1), check_acuity(0.25)
        (1.0, 0.25)
    """
    return check_share(acuity, what="MLLM's acuity", hint="1 sees every detail; e.g. sandbox?acuity=0.5", open_low=True)


def blurred(seen: Perception, acuity: float) -> Perception:
    """What a describer of ``acuity`` makes of ``seen`` (see the module docstring); ``seen`` itself at 1."""
    acuity = check_acuity(acuity)
    if acuity == 1.0:
        return seen
    loss = 1.0 - acuity
    visible = [b for b in seen.blobs if b.size >= 0.2 * loss]
    background = _shifted(seen.background, 250 * loss, ("background", seen.background))
    return replace(seen, background=background, blobs=tuple(_misjudged(b, loss) for b in visible))


def _draw(*key: object) -> np.random.Generator:
    """A generator seeded by ``key`` (what is seen, never the acuity): the same errors' directions at every acuity."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _misjudged(blob: Blob, loss: float) -> Blob:
    key = (blob.color, round(blob.x, 3), round(blob.y, 3))
    dx, dy = _draw("place", key).normal(size=2) * 0.1 * loss
    return replace(
        blob,
        color=_shifted(blob.color, 150 * loss, key),
        x=float(np.clip(blob.x + dx, 0.02, 0.98)),
        y=float(np.clip(blob.y + dy, 0.02, 0.98)),
    )


def _shifted(color: RGB, amount: float, key: object) -> RGB:
    """``color`` moved ``amount`` RGB levels in the random direction of ``key``, clipped to 0-255."""
    direction = _draw("colour", key).normal(size=3)
    direction /= np.linalg.norm(direction)
    r, g, b = (int(np.clip(round(c + amount * v), 0, 255)) for c, v in zip(color, direction, strict=True))
    return (r, g, b)
