"""Image-image similarity scorers that implement the :class:`~imagerepainter.backends.base.Scorer` protocol.

* :class:`CLIPScorer` — cosine of CLIP image embeddings; bounds ``(-1, 1)``; needs CLIP weights.
* :class:`DINOv2Scorer` — cosine of mean-pooled DINOv2 embeddings; ``(-1, 1)``; needs DINOv2 weights.
* :class:`SSIMScorer` — structural similarity of the pixels (scikit-image's Gaussian variant); ``(-1, 1)``; no weights.
* :class:`PSNRScorer` — peak signal-to-noise ratio, capped at ``max_db``; ``(0, max_db)``; no weights.
* :class:`LPIPSScorer`, :class:`DreamSimScorer` — learned perceptual **distances** (lower is better);
  ``(0, inf)``; need the ``perceptual`` extra and their weights.
* :class:`WeightedScorer` — a weighted sum of any scorers; bounds are the weighted sums of theirs.

:func:`paper_scorer` builds the paper's ``0.5 * CLIP ViT-B/32 + 0.5 * DINOv2-base``.
Every scorer here declares ``higher_is_better`` (the loop selects and converges by it), has a
``spec`` string and a JSON-able ``describe()`` for run records; each is also a benchmark metric
under the same spec. torch and transformers are imported only when an
embedding scorer is first used (``pip install "imagerepainter[metrics]"``); SSIM and PSNR are
computed in float64 with numpy alone: they need no extra.

Example:
    >>> from imagerepainter.scorers import paper_scorer
    >>> scorer = paper_scorer(device="cpu")          # cheap: nothing is loaded yet
    >>> scorer.name, scorer.higher_is_better, scorer.bounds
    ('0.5*clip+0.5*dinov2', True, (-1.0, 1.0))
"""

from __future__ import annotations

from .._loading import cached_model_keys, clear_model_cache
from .composite import WeightedScorer, paper_scorer
from .embedding import CLIPScorer, DINOv2Scorer
from .perceptual import DreamSimScorer, LPIPSScorer
from .pixel import PSNRScorer, SSIMScorer

__all__ = [
    "CLIPScorer",
    "DINOv2Scorer",
    "DreamSimScorer",
    "LPIPSScorer",
    "PSNRScorer",
    "SSIMScorer",
    "WeightedScorer",
    "cached_model_keys",
    "clear_model_cache",
    "paper_scorer",
]
