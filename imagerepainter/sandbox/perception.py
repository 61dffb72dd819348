"""What the sandbox model sees: background, colour blobs and their shapes, measured from pixels.

:func:`perceive` works on any RGB image (renders and photographs alike) with numpy only:

1. the background is the most common colour of the border (or, when little of the image
   has that colour, as in a photograph, the median colour of the whole image);
2. pixels clearly unlike the background are grouped by colour (CIELAB clusters);
3. each colour group is split into 4-connected components (a vectorised labelling with
   pointer jumping; scipy is not needed);
4. each component becomes a :class:`Blob`: its mean interior colour, bounding-box centre
   and size, and a shape guessed from its fill ratio, aspect, hole and balance.

The measurements are fine (about one percent of the frame); how coarsely they are *put
into words* is the describer's choice (see :mod:`imagerepainter.sandbox.mllm`).

Example:
    >>> from imagerepainter.sandbox.renderer import render_scene
    >>> from imagerepainter.sandbox.scene import Scene, Shape
    >>> scene = Scene((245, 245, 245), (Shape("star", (20, 30, 100), 0.3, 0.3, 0.6),))
    >>> seen = perceive(render_scene(scene))
    >>> seen.background, [(b.kind, b.color, round(b.x, 2), round(b.y, 2), round(b.size, 2)) for b in seen.blobs]
    ((245, 245, 245), [('star', (20, 30, 100), 0.3, 0.6, 0.28)])
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from .._memo import LRU
from .colors import RGB, rgb_to_lab

__all__ = ["Blob", "Perception", "label_components", "perceive"]

ANALYSIS_SIDE = 128
"""Images are box-filtered so their longest side is at most this many pixels before analysis."""


@dataclass(frozen=True)
class Blob:
    """One region of uniform colour, as measured."""

    kind: str
    """Guessed shape: a kind of :data:`~imagerepainter.sandbox.scene.KINDS`; ``"blob"`` when nothing fits."""
    color: RGB
    """Mean colour of its interior."""
    x: float
    """Bounding-box centre, as a fraction of the width."""
    y: float
    """Bounding-box centre, as a fraction of the height."""
    size: float
    """Longest bounding-box side, as a fraction of the shorter image side."""
    area: float
    """Fraction of the image it covers."""
    rotation: float = 0.0
    """90 for an upright rectangle, else 0."""


@dataclass(frozen=True)
class Perception:
    """Everything :func:`perceive` found in one image."""

    background: RGB
    background_area: float
    """Fraction of the image that looks like the background."""
    blobs: tuple[Blob, ...]
    """Regions, largest first."""
    width: int
    height: int


def label_components(classes: NDArray[np.integer]) -> tuple[NDArray[np.int64], int]:
    """Label 4-connected regions of equal, non-negative class in a 2-D array.

    Returns:
        ``(labels, count)``: ``labels`` holds ``0..count-1`` per region and ``-1`` where
        ``classes`` is negative.

    Example:
        >>> labels, n = label_components(np.array([[0, 0, -1, 1], [-1, 0, -1, 1], [1, -1, 1, 1]]))
        >>> n, labels.tolist()
        (3, [[0, 0, -1, 1], [-1, 0, -1, 1], [2, -1, 1, 1]])
    """
    h, w = classes.shape
    valid = classes >= 0
    big = h * w
    lab = np.where(valid, np.arange(big).reshape(h, w), big)
    same_right = valid[:, :-1] & (classes[:, :-1] == classes[:, 1:])
    same_down = valid[:-1, :] & (classes[:-1, :] == classes[1:, :])
    flat_ext = np.empty(big + 1, dtype=np.int64)
    while True:
        new = lab.copy()
        np.minimum(new[:, :-1], np.where(same_right, lab[:, 1:], big), out=new[:, :-1])
        np.minimum(new[:, 1:], np.where(same_right, lab[:, :-1], big), out=new[:, 1:])
        np.minimum(new[:-1, :], np.where(same_down, lab[1:, :], big), out=new[:-1, :])
        np.minimum(new[1:, :], np.where(same_down, lab[:-1, :], big), out=new[1:, :])
        flat_ext[:big] = new.ravel()
        flat_ext[big] = big
        for _ in range(4):  # pointer jumping: follow each pixel's representative
            flat_ext[:big] = flat_ext[flat_ext[:big]]
        new = flat_ext[:big].reshape(h, w).copy()
        if np.array_equal(new, lab):
            break
        lab = new
    roots, labels = np.unique(lab, return_inverse=True)
    labels = labels.reshape(h, w).astype(np.int64)
    if roots[-1] == big:
        labels[~valid] = -1
        return labels, len(roots) - 1
    return labels, len(roots)


# ----------------------------------------------------------------------------- shapes

# Features of each kind measured on clean renders: fill (area / bbox), aspect (long / short
# side), balance (centroid height within the bbox) and corners (fill of the four corner cells).
_PROTOTYPES: dict[str, tuple[float, float, float, float]] = {
    "circle": (0.79, 1.0, 0.5, 0.02),
    "square": (1.0, 1.0, 0.5, 1.0),
    "rectangle": (1.0, 2.1, 0.5, 1.0),
    "triangle": (0.52, 1.12, 0.66, 0.45),
    "diamond": (0.53, 1.05, 0.5, 0.0),
    "star": (0.41, 1.05, 0.56, 0.0),
    "blob": (0.79, 1.45, 0.5, 0.0),
}
_WEIGHTS = np.array([3.0, 1.5, 6.0, 1.0])


def _classify(mask: NDArray[np.bool_]) -> tuple[str, float]:
    """Guess the kind of a blob from its mask cropped to its bounding box; returns (kind, rotation)."""
    bh, bw = mask.shape
    area = float(mask.sum())
    if bh < 3 or bw < 3:
        return "circle", 0.0
    fill = area / (bh * bw)
    aspect = max(bw, bh) / min(bw, bh)
    rows = np.arange(bh)[:, None]
    balance = float((mask * rows).sum() / area + 0.5) / bh
    ch, cw = max(1, bh // 6), max(1, bw // 6)
    corners = float(
        np.mean([mask[:ch, :cw].mean(), mask[:ch, -cw:].mean(), mask[-ch:, :cw].mean(), mask[-ch:, -cw:].mean()])
    )
    centre = mask[bh // 3 : bh - bh // 3, bw // 3 : bw - bw // 3]
    if centre.size and centre.mean() < 0.2 and fill < 0.75 and aspect < 1.3:
        return "ring", 0.0
    feats = np.array([fill, aspect, balance, corners])
    best, best_d = "blob", np.inf
    for kind, proto in _PROTOTYPES.items():
        d = float(np.sum(_WEIGHTS * np.abs(feats - np.array(proto))))
        if d < best_d:
            best, best_d = kind, d
    if best_d > 1.2:
        best = "blob"
    rotation = 90.0 if best == "rectangle" and bh > bw else 0.0
    return best, rotation


# ----------------------------------------------------------------------------- perception


def _analysis_array(image: Image.Image, side: int) -> NDArray[np.uint8]:
    image = image.convert("RGB")
    w, h = image.size
    factor = max(w, h) / side
    if factor > 1:
        if factor == int(factor):
            image = image.reduce(int(factor))
        else:
            image = image.resize((max(1, round(w / factor)), max(1, round(h / factor))), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def _background(arr: NDArray[np.uint8]) -> NDArray[np.float64]:
    border = np.concatenate([arr[:2].reshape(-1, 3), arr[-2:].reshape(-1, 3), arr[:, :2].reshape(-1, 3)])
    border = np.concatenate([border, arr[:, -2:].reshape(-1, 3)])
    keys = (border.astype(np.int64) >> 4) @ np.array([256, 16, 1])
    values, counts = np.unique(keys, return_counts=True)
    mode = values[np.argmax(counts)]
    return np.median(border[keys == mode].astype(np.float64), axis=0)


def _color_clusters(
    lab: NDArray[np.float64], rgb: NDArray[np.uint8], *, max_clusters: int, min_count: int
) -> NDArray[np.float64]:
    """Centres (in Lab) of the main colours among ``lab`` pixels, most common first."""
    keys = (rgb.astype(np.int64) >> 4) @ np.array([256, 16, 1])
    values, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    sums = np.stack([np.bincount(inverse, weights=lab[:, c], minlength=len(values)) for c in range(3)], axis=1)
    means = sums / counts[:, None]
    centres: list[NDArray[np.float64]] = []
    for i in np.argsort(-counts, kind="stable"):
        if counts[i] < min_count or len(centres) >= max_clusters:
            break
        if all(np.linalg.norm(means[i] - c) > 12 for c in centres):
            centres.append(means[i])
    return np.array(centres).reshape(-1, 3)


def _perceive(image: Image.Image, *, side: int = ANALYSIS_SIDE, max_blobs: int = 12) -> Perception:
    arr = _analysis_array(image, side)
    h, w = arr.shape[:2]
    lab = rgb_to_lab(arr)
    bg_rgb = _background(arr)
    fg = np.linalg.norm(lab - rgb_to_lab(bg_rgb), axis=-1) > 10
    if fg.mean() > 0.75:  # no plain background (a photograph): take the overall median colour
        bg_rgb = np.median(arr.reshape(-1, 3).astype(np.float64), axis=0)
        fg = np.linalg.norm(lab - rgb_to_lab(bg_rgb), axis=-1) > 10
    classes = np.full((h, w), -1, dtype=np.int64)
    if fg.any():
        centres = _color_clusters(lab[fg], arr[fg], max_clusters=16, min_count=max(4, int(0.0005 * h * w)))
        if len(centres):
            for _ in range(2):  # assign, then refine the centres once
                dist = np.linalg.norm(lab[fg][:, None, :] - centres[None, :, :], axis=-1)
                nearest = np.argmin(dist, axis=1)
                ok = dist[np.arange(len(nearest)), nearest] < 18
                for c in range(len(centres)):
                    sel = ok & (nearest == c)
                    if sel.any():
                        centres[c] = lab[fg][sel].mean(axis=0)
            cls = np.where(ok, nearest, -1)
            classes[fg] = cls
    labels, count = label_components(classes)
    n_pixels = h * w
    min_area = max(10, int(0.0006 * n_pixels))
    areas = np.bincount(labels[labels >= 0], minlength=count) if count else np.zeros(0, dtype=np.int64)
    order = [int(i) for i in np.argsort(-areas, kind="stable") if areas[i] >= min_area]
    # interior pixels (all four neighbours in the same region) give a clean colour
    interior = np.zeros((h, w), dtype=bool)
    interior[1:-1, 1:-1] = (
        (labels[1:-1, 1:-1] == labels[:-2, 1:-1])
        & (labels[1:-1, 1:-1] == labels[2:, 1:-1])
        & (labels[1:-1, 1:-1] == labels[1:-1, :-2])
        & (labels[1:-1, 1:-1] == labels[1:-1, 2:])
    )
    short = min(h, w)
    blobs: list[Blob] = []
    for i in order:
        if len(blobs) == max_blobs:
            break
        ys, xs = np.nonzero(labels == i)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        mask = labels[y0:y1, x0:x1] == i
        inner = interior[y0:y1, x0:x1] & mask
        if inner.sum() < max(3, 0.15 * areas[i]):  # a thin line of anti-aliased edge pixels
            continue
        pixels = arr[y0:y1, x0:x1][inner if inner.sum() >= 5 else mask]
        r, g, b = (round(float(v)) for v in np.median(pixels.astype(np.float64), axis=0))
        kind, rotation = _classify(mask)
        blobs.append(
            Blob(
                kind=kind,
                color=(r, g, b),
                x=float(x0 + x1) / 2 / w,
                y=float(y0 + y1) / 2 / h,
                size=float(max(x1 - x0, y1 - y0) + 1) / short,  # the threshold loses about half a pixel a side
                area=float(areas[i]) / n_pixels,
                rotation=rotation,
            )
        )
    return Perception(
        background=(round(float(bg_rgb[0])), round(float(bg_rgb[1])), round(float(bg_rgb[2]))),
        background_area=float((~fg).mean()),
        blobs=tuple(blobs),
        width=image.width,
        height=image.height,
    )


_CACHE = LRU[str, Perception](64)


def perceive(image: Image.Image) -> Perception:
    """Measure ``image``: its background colour and its colour blobs, largest first.

    Deterministic; results are cached by pixel content (thread-safe), so describing the same
    reference many times costs one analysis.
    """
    digest = hashlib.blake2b(image.tobytes(), digest_size=16)
    digest.update(f"{image.mode}{image.size}".encode())
    key = digest.hexdigest()
    known = _CACHE.get(key)
    return known if known is not None else _CACHE.put(key, _perceive(image))
