"""A tiny, deterministic text-to-image model: it parses the prompt and draws the scene with PIL.

The renderer draws at three times the requested size and box-filters down, so edges are
anti-aliased. A seed nudges each shape by a pixel or two and adds faint noise, so seeds
matter a little while the prompt decides the picture: a more accurate prompt gives a
closer image.

``SandboxT2I(fidelity=...)`` (spec ``sandbox?fidelity=0.6``) is a weaker model of known
strength: it follows positions, sizes and colours less faithfully by degree and sometimes
drops an object (:mod:`imagerepainter.sandbox.fidelity`), deterministically per (prompt, seed).

Like a real model given "a green square on a green background", it keeps every shape off its
ground: a shape asked in (nearly) the background's colour is drawn a shade lighter or darker
(:func:`off_the_ground`), so a prompt never draws a shape into the background.
``SandboxT2I(drop="color")`` (spec ``sandbox?drop=color``) is wrong in one way only, on every
shape: it loses the colours (or positions, sizes, the count, the objects themselves; see
:mod:`imagerepainter.sandbox.drops`), for checking element-level fidelity.

Example:
    >>> from imagerepainter.backends.base import GenerationRequest
    >>> t2i = SandboxT2I(noise=0)
    >>> [out] = t2i.generate([GenerationRequest(prompt="a large red circle at center, white background", seed=1)])
    >>> out.image.size, out.image.getpixel((128, 128)), out.image.getpixel((3, 3))
    ((256, 256), (220, 40, 40), (245, 245, 245))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..backends.base import GeneratedImage, GenerationRequest, T2ICapabilities
from ..config import GenerationConfig
from ..errors import ConfigurationError
from .colors import RGB, delta_e
from .drops import check_drop, drop
from .fidelity import check_fidelity, misread
from .scene import Scene, Shape, parse_prompt

__all__ = ["GROUND_CONTRAST", "SandboxT2I", "off_the_ground", "render_scene", "shape_polygon"]

GROUND_CONTRAST = 20.0
"""A shape asked in a colour closer than this (CIELAB ΔE) to its background is drawn apart from it."""

_SUPERSAMPLE = 3
MIN_SIZE = 8
"""The smallest width and height the sandbox renders; it renders any size from there (no multiple needed)."""


def _normalised(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Centre ``points`` on their bounding box and scale the longest extent to 1."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    return [((x - cx) / extent, (y - cy) / extent) for x, y in points]


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    out = []
    for i in range(points * 2):
        r = 1.0 if i % 2 == 0 else inner
        a = -math.pi / 2 + i * math.pi / points
        out.append((r * math.cos(a), r * math.sin(a)))
    return _normalised(out)


def _ellipse(aspect: float, n: int = 64) -> list[tuple[float, float]]:
    return [(0.5 * math.cos(2 * math.pi * i / n), 0.5 * aspect * math.sin(2 * math.pi * i / n)) for i in range(n)]


_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "square": [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)],
    "rectangle": [(-0.5, -0.25), (0.5, -0.25), (0.5, 0.25), (-0.5, 0.25)],
    "triangle": _normalised([(0.0, -0.433), (0.5, 0.433), (-0.5, 0.433)]),
    "diamond": [(0.0, -0.5), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0)],
    "star": _star(),
    "circle": _ellipse(1.0),
    "blob": _ellipse(0.7),
}
RING_INNER = 0.55
"""Inner diameter of a ring, relative to its outer diameter."""


def shape_polygon(shape: Shape, width: int, height: int) -> list[tuple[float, float]]:
    """The outline of ``shape`` in pixel coordinates of a ``width`` x ``height`` image."""
    scale = shape.size * min(width, height)
    a = math.radians(shape.rotation)
    cos, sin = math.cos(a), math.sin(a)
    cx, cy = shape.x * width, shape.y * height
    return [
        (cx + scale * (u * cos - v * sin), cy + scale * (u * sin + v * cos))
        for u, v in _OUTLINES.get(shape.kind, _OUTLINES["circle"])
    ]


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, width: int, height: int) -> None:
    if shape.kind in ("circle", "ring"):
        r = shape.size * min(width, height) / 2
        cx, cy = shape.x * width, shape.y * height
        box = (cx - r, cy - r, cx + r, cy + r)
        if shape.kind == "circle":
            draw.ellipse(box, fill=shape.color)
        else:
            draw.ellipse(box, outline=shape.color, width=max(1, round(r * (1 - RING_INNER))))
        return
    draw.polygon(shape_polygon(shape, width, height), fill=shape.color)


def render_scene(
    scene: Scene,
    width: int = 256,
    height: int = 256,
    *,
    seed: int | None = None,
    jitter: float = 0.004,
    noise: float = 1.0,
) -> Image.Image:
    """Draw ``scene`` as an anti-aliased RGB image.

    Args:
        scene: What to draw.
        width: Image width in pixels.
        height: Image height in pixels.
        seed: With a seed, each shape moves by up to ``jitter`` of the frame and changes size by
            up to ``2 * jitter`` (relative), and Gaussian noise of ``noise`` levels is added — all
            derived from the seed, so the same seed gives the same image. ``None`` draws exactly.
        jitter: Largest seeded displacement, as a fraction of the frame.
        noise: Standard deviation of the seeded pixel noise, in 0-255 levels.
    """
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ConfigurationError(
            f"The sandbox renders images of at least {MIN_SIZE}x{MIN_SIZE} pixels; got {width}x{height}."
        )
    shapes = list(scene.shapes)
    rng = np.random.default_rng([seed, 0x5A4D]) if seed is not None else None
    if rng is not None and jitter > 0:
        shapes = [
            replace(
                s,
                x=s.x + float(rng.uniform(-jitter, jitter)),
                y=s.y + float(rng.uniform(-jitter, jitter)),
                size=s.size * (1 + float(rng.uniform(-2 * jitter, 2 * jitter))),
            )
            for s in shapes
        ]
    big_w, big_h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    canvas = Image.new("RGB", (big_w, big_h), scene.background)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        _draw(draw, shape, big_w, big_h)
    image = canvas.reduce(_SUPERSAMPLE)
    if rng is not None and noise > 0:
        arr = np.asarray(image, dtype=np.float32) + rng.normal(0.0, noise, size=(height, width, 3))
        image = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    return image


def _shade(color: RGB, toward: int, share: float) -> RGB:
    r, g, b = (round(c + (toward - c) * share) for c in color)
    return (r, g, b)


def off_the_ground(scene: Scene) -> Scene:
    """``scene`` with every shape at least :data:`GROUND_CONTRAST` from the background: a shape
    closer is drawn lighter or darker, whichever stands out more, by the least shade that does.

    Example:
        >>> scene = parse_prompt("a large green circle at center, a red square, on a green background")
        >>> [delta_e(s.color, scene.background) >= GROUND_CONTRAST for s in off_the_ground(scene).shapes]
        [True, True]
        >>> off_the_ground(scene).shapes[1] == scene.shapes[1]  # a shape that stands out is left as asked
        True
    """
    shapes = []
    for shape in scene.shapes:
        if delta_e(shape.color, scene.background) < GROUND_CONTRAST:
            for share in (0.25, 0.4, 0.55, 0.7):  # the least change that stands out
                lighter, darker = _shade(shape.color, 255, share), _shade(shape.color, 0, share)
                color = max((lighter, darker), key=lambda c: delta_e(c, scene.background))
                if delta_e(color, scene.background) >= GROUND_CONTRAST:
                    break
            shape = replace(shape, color=color)
        shapes.append(shape)
    return replace(scene, shapes=tuple(shapes))


class SandboxT2I:
    """The sandbox text-to-image backend (:class:`~imagerepainter.backends.base.TextToImage`).

    It understands the vocabulary of :mod:`imagerepainter.sandbox.scene` and ignores the
    rest; a prompt for a photograph gives blobs in the colours it names.

    Args:
        default_size: Width and height when a request leaves them unset.
        jitter: Seeded displacement of shapes, as a fraction of the frame (see :func:`render_scene`).
        noise: Seeded pixel noise in 0-255 levels.
        fidelity: How faithfully the prompt is followed, from 1 (exactly; the default) down to 0:
            below 1, positions, sizes and colours drift by degree and objects are sometimes
            dropped, deterministically per (prompt, seed) (see :mod:`imagerepainter.sandbox.fidelity`).
            Models of graded fidelity are models of known, graded strength, for checking a benchmark.
        drop: One kind of element to lose on every shape (``"color"``, ``"position"``, ``"size"``,
            ``"count"``, ``"object"``; see :mod:`imagerepainter.sandbox.drops`); ``""`` loses nothing.

    Raises:
        ConfigurationError: ``fidelity`` is outside [0, 1], or ``drop`` is not a kind it can lose.

    Example:
        >>> from imagerepainter.backends.registry import resolve_t2i
        >>> resolve_t2i("sandbox?fidelity=0.6").describe()
        {'default_size': 256, 'jitter': 0.004, 'noise': 1.0, 'fidelity': 0.6, 'drop': ''}
    """

    name = "sandbox"
    capabilities = T2ICapabilities(max_batch_size=16, supports_negative_prompt=False, supports_seed=True)
    """Renders any size; its native size is ``default_size`` squared (set per instance)."""

    def __init__(
        self,
        *,
        default_size: int = 256,
        jitter: float = 0.004,
        noise: float = 1.0,
        fidelity: float = 1.0,
        drop: str = "",
    ) -> None:
        self.default_size = default_size
        self.capabilities = T2ICapabilities(
            max_batch_size=16,
            supports_negative_prompt=False,
            supports_seed=True,
            native_pixels=default_size * default_size,
            size_multiple=1,
        )
        self.jitter = jitter
        self.noise = noise
        self.fidelity = check_fidelity(fidelity)
        self.drop = check_drop(drop)

    def __repr__(self) -> str:
        return (
            f"SandboxT2I(default_size={self.default_size}, jitter={self.jitter}, noise={self.noise}, "
            f"fidelity={self.fidelity}, drop={self.drop!r})"
        )

    def describe(self) -> dict[str, Any]:
        """The settings that decide the pictures, for run and benchmark records."""
        return {
            "default_size": self.default_size,
            "jitter": self.jitter,
            "noise": self.noise,
            "fidelity": self.fidelity,
            "drop": self.drop,
        }

    def check_settings(self, settings: GenerationConfig) -> None:
        """Refuse sizes the sandbox cannot render, before any paid call.

        Shapes are drawn in fractions of the frame, so any width and height from
        :data:`MIN_SIZE` up renders exactly at that size: ``height=63`` is a 63-pixel-high image.

        Example:
            >>> from imagerepainter.config import GenerationConfig
            >>> SandboxT2I().check_settings(GenerationConfig(height=63, width=100))  # any size from 8 renders
            >>> SandboxT2I().check_settings(GenerationConfig.model_construct(height=4))  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            imagerepainter.errors.ConfigurationError: height=4 cannot be rendered by the sandbox: ...

        Raises:
            ConfigurationError: a size is below :data:`MIN_SIZE`.
        """
        for field in ("height", "width"):
            value = getattr(settings, field, None)
            if value is not None and value < MIN_SIZE:
                raise ConfigurationError(
                    f"{field}={value} cannot be rendered by the sandbox: it renders sizes from {MIN_SIZE} pixels up."
                )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render every request, in order."""
        return [GeneratedImage(self.render(r)) for r in requests]

    def render(self, request: GenerationRequest) -> Image.Image:
        """Render one request."""
        scene = parse_prompt(request.prompt)
        if self.fidelity < 1.0:
            scene = misread(scene, self.fidelity, prompt=request.prompt, seed=request.seed)
        scene = off_the_ground(drop(scene, self.drop))
        return render_scene(
            scene,
            request.width or self.default_size,
            request.height or self.default_size,
            seed=request.seed,
            jitter=self.jitter,
            noise=self.noise,
        )
