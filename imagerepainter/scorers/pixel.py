"""Pixel-level similarity: SSIM and PSNR from torchmetrics' functional API.

Both compare RGB pixels in ``[0, 1]``. A candidate whose size differs from the
reference's is first **resized to the reference's size** (bicubic, aspect ratio not
kept), so a 1024x1024 render can be compared with a 512x512 reference; crop beforehand
if the aspect ratios differ and distortion matters. Neither needs model weights, so both
work offline out of the box; they are cheap sanity metrics next to the embedding scores.

Example:
    >>> from PIL import Image
    >>> ssim = SSIMScorer()
    >>> ref = ssim.prepare(Image.radial_gradient("L").convert("RGB"))
    >>> [round(s, 3) for s in ssim.score(ref, [Image.radial_gradient("L").convert("RGB")])]
    [1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .. import _loading as _cache
from .._imports import require
from ..errors import ConfigurationError

__all__ = ["PSNRScorer", "SSIMScorer", "to_tensor"]


def to_tensor(image: Image.Image, size: tuple[int, int] | None = None) -> Any:
    """Return ``image`` as a float32 ``(3, H, W)`` tensor in ``[0, 1]``.

    When ``size`` = (W, H) is given and differs, the image is first resized to it (bicubic).
    """
    torch = require("torch", extra="metrics")
    if not isinstance(image, Image.Image):
        raise ConfigurationError(f"Scorers take PIL images, got {type(image).__name__}.")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if size is not None and rgb.size != size:
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class PreparedPixels:
    """A reference as a ``(1, 3, H, W)`` tensor in ``[0, 1]``, and its size (W, H)."""

    tensor: Any
    size: tuple[int, int]


class _PixelScorer:
    name: str
    higher_is_better: bool = True
    bounds: tuple[float, float]

    def __init__(self, *, batch_size: int = 16) -> None:
        self.batch_size = _cache.positive_int(batch_size, "batch_size")
        """Most candidates compared in one tensor operation."""

    @property
    def spec(self) -> str:
        """The scorer's name, e.g. ``"ssim"``."""
        return self.name

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of this scorer's settings, for run results."""
        return {
            "name": self.name,
            "spec": self.spec,
            "higher_is_better": self.higher_is_better,
            "bounds": list(self.bounds),
            "resize": "candidates resized (bicubic) to the reference size",
            **self._settings(),
            "versions": _cache.library_versions("torch", "torchmetrics"),
        }

    def _settings(self) -> dict[str, Any]:
        return {}

    def load(self) -> _PixelScorer:
        """Import torchmetrics now (nothing else to load); return ``self``."""
        require("torchmetrics", extra="metrics", purpose=f"{self.name.upper()} scores")
        return self

    def prepare(self, reference: Image.Image) -> PreparedPixels:
        """Convert ``reference`` to a tensor once, for :meth:`score`."""
        self._check_reference(reference)
        return PreparedPixels(tensor=to_tensor(reference)[None], size=reference.size)

    def _check_reference(self, reference: Image.Image) -> None:
        pass

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """Score each candidate (resized to the reference's size) against the prepared reference, in order."""
        torch = require("torch", extra="metrics")
        if not isinstance(prepared, PreparedPixels):
            raise ConfigurationError(
                f"{type(self).__name__}.score expects the value returned by its prepare(), "
                f"got {type(prepared).__name__}."
            )
        scores: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(candidates), self.batch_size):
                batch = torch.stack([to_tensor(c, prepared.size) for c in candidates[start : start + self.batch_size]])
                target = prepared.tensor.expand(batch.shape[0], -1, -1, -1)
                scores.extend(float(v) for v in self._compare(batch, target))
        return scores

    def _compare(self, preds: Any, target: Any) -> Any:
        """One value per image of the ``(N, 3, H, W)`` batch."""
        raise NotImplementedError


class SSIMScorer(_PixelScorer):
    """Structural similarity (SSIM) over RGB, in ``[-1, 1]``; 1 means identical.

    Args:
        kernel_size: Side of the Gaussian window (odd); the reference must be at least this large.
        sigma: Standard deviation of the Gaussian window.
        batch_size: Most candidates compared at once.
    """

    name: str = "ssim"

    def __init__(self, *, kernel_size: int = 11, sigma: float = 1.5, batch_size: int = 16) -> None:
        super().__init__(batch_size=batch_size)
        kernel_size = _cache.positive_int(kernel_size, "kernel_size")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ConfigurationError(f"kernel_size must be an odd number >= 3, got {kernel_size!r}.")
        self.kernel_size = kernel_size
        self.sigma = _cache.positive_float(sigma, "sigma")
        self.bounds = (-1.0, 1.0)

    def _settings(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "sigma": self.sigma}

    def _check_reference(self, reference: Image.Image) -> None:
        if min(reference.size) < self.kernel_size:
            raise ConfigurationError(
                f"The reference is {reference.size[0]}x{reference.size[1]}, smaller than the SSIM window "
                f"({self.kernel_size}); pass a smaller odd kernel_size."
            )

    def _compare(self, preds: Any, target: Any) -> Any:
        functional = require("torchmetrics.functional.image", extra="metrics", purpose="SSIM scores")
        values = functional.structural_similarity_index_measure(
            preds, target, data_range=1.0, kernel_size=self.kernel_size, sigma=self.sigma, reduction="none"
        )
        return values.clamp(-1.0, 1.0)

    def __repr__(self) -> str:
        return f"SSIMScorer(kernel_size={self.kernel_size}, sigma={self.sigma})"


class PSNRScorer(_PixelScorer):
    """Peak signal-to-noise ratio in decibels (RGB in ``[0, 1]``); higher is more similar.

    Identical images have an infinite PSNR; it is capped at ``max_db`` so scores stay
    finite and comparable, which makes :attr:`bounds` ``(0, max_db)`` (8-bit images
    cannot differ by more than the full range, so the value is never negative).

    Args:
        max_db: The cap, reached by identical images (default 100 dB).
        batch_size: Most candidates compared at once.

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
        self.max_db = _cache.positive_float(max_db, "max_db")
        self.bounds = (0.0, self.max_db)

    def _settings(self) -> dict[str, Any]:
        return {"max_db": self.max_db}

    def _compare(self, preds: Any, target: Any) -> Any:
        functional = require("torchmetrics.functional.image", extra="metrics", purpose="PSNR scores")
        values = functional.peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
        return values.nan_to_num(posinf=self.max_db).clamp(0.0, self.max_db)

    def __repr__(self) -> str:
        return f"PSNRScorer(max_db={self.max_db})"
