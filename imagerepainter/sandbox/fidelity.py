"""Graded prompt following: how a weaker sandbox text-to-image model misreads the scene it is asked for.

The benchmark needs models of *known* strength to check that it ranks models in their true
order. :func:`misread` makes one from the exact sandbox renderer by loosening how faithfully
the parsed prompt is followed, not by degrading the picture (blurring or fading a render
raises its pixel similarity to a reference that a coarse first prompt already misses).

With ``fidelity`` ``f`` and ``d = 1 - f`` (``f = 1`` is the exact renderer), per shape of the prompt:

* **positions** move by a random offset of ``0.12 d`` of the frame (standard deviation, each axis);
* **sizes** are scaled by a random factor ``exp(N(0, 0.3 d))``;
* **colours** move by ``250 d`` RGB levels in a random direction (the background by ``30 d``,
  keeping its grey level);
* **objects are dropped** with probability ``0.1 d`` each (the largest stays when all would go),
  and up to four **objects the prompt never asked for** appear, each with probability ``d``.

Every error is a random *direction*, never a pull towards typical values: moving colours
towards the palette's average, shrinking shapes or dropping many of them would make a weak
model score *higher* against a reference that a coarse first prompt already misses. So the
one-shot similarity falls with fidelity both for the true prompt of a scene and for the
sandbox MLLM's coarse first description of it (measured in ``tests/test_sandbox_fidelity.py``).

The random draws depend only on the prompt, the seed and the shape's place in the prompt
(never on ``fidelity``), so one (prompt, seed) misreads in the same direction at every
fidelity, by an amount that grows with ``d``: a lower fidelity is worse case by case, not
only on average. A misread prompt can still be corrected by a better prompt (ask for a shape
further left and it lands further left), as with a real model, which the repaint loop exploits.

Example:
    >>> from imagerepainter.sandbox.scene import parse_prompt
    >>> scene = parse_prompt("a large red circle at top left, a small navy square at 80% 70%, white background")
    >>> misread(scene, 1.0, prompt="p", seed=1) == scene
    True
    >>> loose = misread(scene, 0.4, prompt="p", seed=1)
    >>> loose == misread(scene, 0.4, prompt="p", seed=1), loose == scene
    (True, False)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace

import numpy as np

from .colors import PALETTE, RGB
from .options import check_share
from .scene import KINDS, Scene, Shape

__all__ = ["check_fidelity", "misread"]

_SHIFT = 0.12
_SCALE = 0.3
_RECOLOR = 250.0
_BACKGROUND = 30.0
_DROP = 0.1
_EXTRA = 1.0
_MAX_EXTRA = 4
_PALETTE = list(PALETTE.values())


def check_fidelity(fidelity: float) -> float:
    """Return ``fidelity`` as a float, or raise ConfigurationError when it is not in [0, 1]
    (see :func:`~imagerepainter.sandbox.options.check_share`).

    Example:
        >>> check_fidelity(1), check_fidelity(0)
        (1.0, 0.0)
    """
    return check_share(fidelity, what="fidelity", hint="1 follows the prompt exactly")


def _rng(prompt: str, seed: int | None) -> np.random.Generator:
    digest = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([digest, (seed or 0) & 0xFFFFFFFF, 0xF1DE])


def _drift(color: RGB, rng: np.random.Generator, levels: float, *, keep_lightness: bool = False) -> RGB:
    """Move ``color`` by ``levels`` (0-255 RGB units) in a random direction.

    A direction, not a target: moving towards palette colours would move a saturated colour
    towards the average colour, which is closer to most references.
    """
    step = rng.normal(size=3)
    if keep_lightness:  # hue and saturation only: the same grey level (mean of the channels)
        step -= step.mean()
    step *= levels / max(1e-9, float(np.linalg.norm(step)))
    return (
        int(min(255, max(0, round(color[0] + step[0])))),
        int(min(255, max(0, round(color[1] + step[1])))),
        int(min(255, max(0, round(color[2] + step[2])))),
    )


def _clamp(v: float) -> float:
    return min(0.97, max(0.03, v))


def misread(scene: Scene, fidelity: float, *, prompt: str, seed: int | None) -> Scene:
    """The scene a model of ``fidelity`` draws for ``prompt`` (which parsed to ``scene``) with ``seed``.

    Deterministic per (prompt, seed); ``fidelity=1`` returns ``scene`` unchanged. See the
    module docstring for what is loosened and by how much.
    """
    d = 1.0 - check_fidelity(fidelity)
    if d == 0.0:
        return scene
    rng = _rng(prompt, seed)
    background = _drift(scene.background, rng, _BACKGROUND * d, keep_lightness=True)
    kept: list[Shape] = []
    dropped: list[Shape] = []
    for shape in scene.shapes:
        dx, dy, ds, u = rng.normal(), rng.normal(), rng.normal(), float(rng.uniform())
        color = _drift(shape.color, rng, _RECOLOR * d)
        x = shape.x + _SHIFT * d * float(dx)
        y = shape.y + _SHIFT * d * float(dy)
        size = shape.size * math.exp(_SCALE * d * float(ds))
        moved = replace(shape, x=_clamp(x), y=_clamp(y), size=min(0.9, max(0.02, size)), color=color)
        (dropped if u < _DROP * d else kept).append(moved)
    if not kept and dropped:
        kept.append(max(dropped, key=lambda s: s.size))
    for _ in range(_MAX_EXTRA):  # every draw is made at every fidelity, so lower ones add to higher ones' extras
        u, kind = float(rng.uniform()), KINDS[int(rng.integers(len(KINDS) - 1))]
        color = _PALETTE[int(rng.integers(len(_PALETTE)))]
        size, x, y = float(rng.uniform(0.1, 0.3)), float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))
        if u < _EXTRA * d:
            kept.append(Shape(kind, color, size, x, y))
    return Scene(background=background, shapes=tuple(kept))
