"""A cheap perceptual similarity in pure numpy, for the sandbox and for tests.

The score blends three terms computed on box-downsampled images:

* colour agreement at 64x64 and at 16x16 pixels: one minus the mean CIELAB difference
  (each pixel's difference capped at :data:`CAP`), so a shape that is slightly off
  still earns partial credit at the coarse scale;
* structure: the mean SSIM of the lightness channel at 64x64 (7x7 box windows), clipped at 0.

Identical images score 1.0; the score rises as the candidate's colours and layout approach
the reference's. It is no substitute for DINO or CLIP on real photographs.

Example:
    >>> from PIL import Image
    >>> scorer = SandboxScorer()
    >>> ref = scorer.prepare(Image.new("RGB", (128, 128), "navy"))
    >>> candidates = [Image.new("RGB", (64, 64), c) for c in ("navy", "darkblue", "blue", "white")]
    >>> [round(s, 2) for s in scorer.score(ref, candidates)]
    [1.0, 0.92, 0.21, 0.08]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from .colors import rgb_to_lab

__all__ = ["CAP", "SandboxScorer", "similarity"]

CAP = 50.0
"""Largest per-pixel CIELAB difference counted; bigger ones count as this (a different colour is a different colour)."""
_WEIGHTS = (0.4, 0.3, 0.3)
_SIDE = 64
_COARSE = 16
_WINDOW = 7


@dataclass(frozen=True)
class _Prepared:
    fine: NDArray[np.float64]
    coarse: NDArray[np.float64]
    stats: tuple[NDArray[np.float64], NDArray[np.float64]]


def _lab(image: Image.Image, side: int) -> NDArray[np.float64]:
    image = image.convert("RGB")
    if image.size != (side, side):
        image = image.resize((side, side), Image.Resampling.BOX)
    return rgb_to_lab(np.asarray(image, dtype=np.float64))


def _box(a: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Means over every ``k`` x ``k`` window (valid positions only)."""
    c = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), axis=0), axis=1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def _moments(lightness: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    mu = _box(lightness, _WINDOW)
    return mu, _box(lightness * lightness, _WINDOW) - mu * mu


def _prepare(image: Image.Image) -> _Prepared:
    fine = _lab(image, _SIDE)
    return _Prepared(fine=fine, coarse=_lab(image, _COARSE), stats=_moments(fine[..., 0]))


def _color_term(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return 1.0 - float(np.minimum(np.linalg.norm(a - b, axis=-1), CAP).mean()) / CAP


def _ssim(ref: _Prepared, fine: NDArray[np.float64]) -> float:
    la, lb = ref.fine[..., 0], fine[..., 0]
    mu_a, var_a = ref.stats
    mu_b, var_b = _moments(lb)
    cov = _box(la * lb, _WINDOW) - mu_a * mu_b
    c1, c2 = 1.0, 9.0  # (0.01 * 100) ** 2, (0.03 * 100) ** 2 for lightness in 0-100
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return max(0.0, float(ssim.mean()))


def _score(ref: _Prepared, image: Image.Image) -> float:
    fine = _lab(image, _SIDE)
    terms = (_color_term(ref.fine, fine), _color_term(ref.coarse, _lab(image, _COARSE)), _ssim(ref, fine))
    return float(min(1.0, max(0.0, sum(w * t for w, t in zip(_WEIGHTS, terms, strict=True)))))


def similarity(reference: Image.Image, candidate: Image.Image) -> float:
    """The sandbox score of one pair of images, in [0, 1] (1 for identical images)."""
    return _score(_prepare(reference), candidate)


class SandboxScorer:
    """The sandbox scorer (:class:`~imagerepainter.backends.base.Scorer`): fast, pure numpy, higher is better."""

    name = "sandbox"
    higher_is_better = True
    bounds = (0.0, 1.0)

    def __repr__(self) -> str:
        return "SandboxScorer()"

    def prepare(self, reference: Image.Image) -> _Prepared:
        """Downsample the reference once (CIELAB at 64x64 and 16x16, lightness statistics)."""
        return _prepare(reference)

    def score(self, prepared: _Prepared, candidates: Sequence[Image.Image]) -> list[float]:
        """Score each candidate against the prepared reference, in order."""
        return [_score(prepared, image) for image in candidates]
