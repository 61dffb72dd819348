"""Pixel-level similarity: SSIM and PSNR, computed in float64 with numpy alone.

Both compare RGB pixels in ``[0, 1]``. A candidate whose size differs from the
reference's is first **resized to the reference's size** (bicubic, aspect ratio not
kept), so a 1024x1024 render can be compared with a 512x512 reference; crop beforehand
if the aspect ratios differ and distortion matters. Neither needs model weights, torch, SciPy
or any extra, so both work offline with the base install; they are cheap sanity metrics next to
the embedding scores. Both punish small shifts: a copy moved by a few pixels scores far below a
blurred one.

**The SSIM variant is pinned** (it is computed here, not by whichever torchmetrics is
installed, whose versions disagree by up to ~7e-3): Wang et al. (2004) with a Gaussian window
of ``sigma = 1.5`` truncated at radius ``kernel_size // 2`` (5 for the default 11), population
(co)variances, ``K1 = 0.01``, ``K2 = 0.03``, data range 1, the filter reflecting at the borders
(``scipy.ndimage``'s mode ``"reflect"``, numpy's ``"symmetric"`` padding), and the SSIM map averaged
over its **interior** only (``radius`` pixels cropped on every side), per channel, then over R, G
and B. That is scikit-image's ``structural_similarity(a, b, channel_axis=-1, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1.0)``. In float64 an image against itself scores
``1 - O(1e-15)``.

Example:
    >>> from PIL import Image
    >>> ssim = SSIMScorer()
    >>> ref = ssim.prepare(Image.radial_gradient("L").convert("RGB"))
    >>> score = ssim.score(ref, [Image.radial_gradient("L").convert("RGB")])[0]
    >>> abs(1.0 - score) < 1e-12
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .._loading import library_versions, positive_float, positive_int
from ..backends.base import describe_scorer
from ..errors import ConfigurationError

__all__ = ["PSNRScorer", "SSIMScorer", "to_array"]

_K1, _K2 = 0.01, 0.03


def to_array(image: Image.Image, size: tuple[int, int] | None = None) -> np.ndarray:
    """Return ``image`` as a float64 ``(H, W, 3)`` array in ``[0, 1]``.

    When ``size`` = (W, H) is given and differs, the image is first resized to it (bicubic).

    Example:
        >>> to_array(Image.new("RGB", (4, 2), "white")).shape, float(to_array(Image.new("L", (2, 2))).max())
        ((2, 4, 3), 0.0)
    """
    if not isinstance(image, Image.Image):
        raise ConfigurationError(f"Scorers take PIL images, got {type(image).__name__}.")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if size is not None and rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.float64) / 255.0


@dataclass(frozen=True)
class PreparedPixels:
    """A reference as a float64 ``(H, W, 3)`` array in ``[0, 1]``, its size (W, H), and per-scorer statistics."""

    array: np.ndarray
    size: tuple[int, int]
    stats: tuple[np.ndarray, ...] = ()
    """What the scorer computes once per reference (SSIM: the local mean and mean square)."""


class _PixelScorer:
    name: str
    higher_is_better: bool = True
    bounds: tuple[float, float]

    def __init__(self, *, batch_size: int = 16) -> None:
        self.batch_size = positive_int(batch_size, "batch_size")
        """Kept for compatibility with the other scorers' options; pixel scores are computed one image at a time."""

    @property
    def spec(self) -> str:
        """The scorer's name, e.g. ``"ssim"``."""
        return self.name

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of this scorer's settings, for run results."""
        return {
            **describe_scorer(self),
            "resize": "candidates resized (bicubic) to the reference size",
            "precision": "float64",
            **self._settings(),
            "versions": library_versions("numpy", *self._libraries()),
        }

    def _settings(self) -> dict[str, Any]:
        return {}

    def _libraries(self) -> tuple[str, ...]:
        return ()

    def load(self) -> _PixelScorer:
        """Import what the scorer needs now (nothing to load); return ``self``."""
        return self

    def prepare(self, reference: Image.Image) -> PreparedPixels:
        """Convert ``reference`` to an array once (and anything else per reference), for :meth:`score`."""
        self.check_reference(reference)
        array = to_array(reference)
        return PreparedPixels(array=array, size=reference.size, stats=self._reference_stats(array))

    def check_reference(self, reference: Image.Image) -> None:
        """Raise :class:`~imagerepainter.errors.ConfigurationError` for a reference this scorer cannot use.

        A run checks it when it prepares, before any paid call
        (:func:`~imagerepainter.backends.base.check_scorer_reference`)."""

    def _reference_stats(self, array: np.ndarray) -> tuple[np.ndarray, ...]:
        return ()

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """Score each candidate (resized to the reference's size) against the prepared reference, in order."""
        if not isinstance(prepared, PreparedPixels):
            raise ConfigurationError(
                f"{type(self).__name__}.score expects the value returned by its prepare(), "
                f"got {type(prepared).__name__}."
            )
        return [self._compare(prepared, to_array(c, prepared.size)) for c in candidates]

    def _compare(self, prepared: PreparedPixels, candidate: np.ndarray) -> float:
        raise NotImplementedError


class SSIMScorer(_PixelScorer):
    """Structural similarity (SSIM) over RGB, in ``[-1, 1]``; 1 means identical.

    The variant is pinned (see the module docstring): scikit-image's Gaussian-window SSIM
    with population statistics, the interior of the map averaged, in float64.

    Args:
        kernel_size: Side of the Gaussian window (odd): the window's radius is ``kernel_size // 2``
            and the map loses that many pixels on each side before it is averaged. The reference
            must be larger than the window.
        sigma: Standard deviation of the Gaussian window.
        batch_size: Accepted for symmetry with the other scorers; unused.
    """

    name: str = "ssim"

    def __init__(self, *, kernel_size: int = 11, sigma: float = 1.5, batch_size: int = 16) -> None:
        super().__init__(batch_size=batch_size)
        kernel_size = positive_int(kernel_size, "kernel_size")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ConfigurationError(f"kernel_size must be an odd number >= 3, got {kernel_size!r}.")
        self.kernel_size = kernel_size
        self.sigma = positive_float(sigma, "sigma")
        self.bounds = (-1.0, 1.0)

    @property
    def radius(self) -> int:
        """Pixels of the window on each side of its centre (and cropped from each border of the map)."""
        return self.kernel_size // 2

    def _settings(self) -> dict[str, Any]:
        return {
            "kernel_size": self.kernel_size,
            "sigma": self.sigma,
            "variant": "gaussian window, population covariance, K1=0.01, K2=0.03, reflect padding, "
            "interior of the map averaged per channel (scikit-image's gaussian_weights=True convention)",
        }

    def check_reference(self, reference: Image.Image) -> None:
        """Refuse a reference not larger than the window (the map would have no interior)."""
        side = min(reference.size)
        if side <= 2 * self.radius:
            largest = side - 1 if side % 2 == 0 else side - 2  # the largest odd window the reference holds
            fix = (
                f"pass kernel_size={largest} or smaller (odd)"
                if largest >= 3
                else "SSIM cannot compare images this thin; choose another scorer (e.g. 'psnr' or 'paper')"
            )
            raise ConfigurationError(
                f"The reference is {reference.size[0]}x{reference.size[1]}, not larger than the SSIM window "
                f"({self.kernel_size}); {fix}."
            )

    def _filter(self, values: np.ndarray) -> np.ndarray:
        """The local (Gaussian-weighted) mean of each channel of an ``(H, W, 3)`` array.

        A separable filter: the normalised window ``exp(-x^2 / 2 sigma^2)``, ``x`` in ``[-radius, radius]``,
        along the rows, then the columns, the borders mirrored (``d c b a | a b c d | d c b a``).
        """
        r = self.radius
        offsets = np.arange(-r, r + 1, dtype=np.float64)
        weights = np.exp(-0.5 * (offsets / self.sigma) ** 2)
        weights /= weights.sum()
        out = values
        for axis in (0, 1):
            n = out.shape[axis]
            padding = [(0, 0)] * out.ndim
            padding[axis] = (r, r)
            padded = np.pad(out, padding, mode="symmetric")
            window: list[slice] = [slice(None)] * out.ndim
            acc = np.zeros_like(out)
            for k, weight in enumerate(weights):
                window[axis] = slice(k, k + n)
                acc += weight * padded[tuple(window)]
            out = acc
        return out

    def _reference_stats(self, array: np.ndarray) -> tuple[np.ndarray, ...]:
        return (self._filter(array), self._filter(array * array))

    def _compare(self, prepared: PreparedPixels, candidate: np.ndarray) -> float:
        x = prepared.array
        ux, uxx = prepared.stats
        uy, uyy, uxy = self._filter(candidate), self._filter(candidate * candidate), self._filter(x * candidate)
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
        c1, c2 = _K1**2, _K2**2  # data range 1
        ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        r = self.radius
        interior = ssim_map[r:-r, r:-r, :]
        value = float(interior.mean(axis=(0, 1)).mean())
        return min(1.0, max(-1.0, value))

    def __repr__(self) -> str:
        return f"SSIMScorer(kernel_size={self.kernel_size}, sigma={self.sigma})"


class PSNRScorer(_PixelScorer):
    """Peak signal-to-noise ratio in decibels (RGB in ``[0, 1]``, float64); higher is more similar.

    ``10 * log10(1 / MSE)`` with the mean squared error over every pixel and channel. Identical
    images have an infinite PSNR; it is capped at ``max_db`` so scores stay finite and
    comparable, which makes :attr:`bounds` ``(0, max_db)`` (8-bit images cannot differ by more
    than the full range, so the value is never negative).

    Args:
        max_db: The cap, reached by identical images (default 100 dB).
        batch_size: Accepted for symmetry with the other scorers; unused.

    Example:
        >>> from PIL import Image
        >>> psnr = PSNRScorer()
        >>> ref = psnr.prepare(Image.new("RGB", (8, 8), "white"))
        >>> psnr.score(ref, [Image.new("RGB", (8, 8), "white"), Image.new("RGB", (8, 8), "black")])
        [100.0, 0.0]
    """

    name: str = "psnr"

    def __init__(self, *, max_db: float = 100.0, batch_size: int = 16) -> None:
        super().__init__(batch_size=batch_size)
        self.max_db = positive_float(max_db, "max_db")
        self.bounds = (0.0, self.max_db)

    def _settings(self) -> dict[str, Any]:
        return {"max_db": self.max_db}

    def _compare(self, prepared: PreparedPixels, candidate: np.ndarray) -> float:
        mse = float(np.mean((prepared.array - candidate) ** 2))
        if mse == 0.0:
            return self.max_db
        return min(self.max_db, max(0.0, -10.0 * math.log10(mse)))

    def __repr__(self) -> str:
        return f"PSNRScorer(max_db={self.max_db})"
