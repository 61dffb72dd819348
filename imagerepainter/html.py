"""The HTML kit every page of the package shares: the run report (:mod:`imagerepainter.runs.report`),
the leaderboard (:mod:`imagerepainter.bench.leaderboard_html`) and the human-agreement report.

Pages are self-contained: they load nothing, forbid scripts through :data:`PAGE_CSP`, escape every
text with :func:`escape_text`, embed images as data URLs (:func:`image_data_url`) and draw their
charts' axes at :func:`nice_ticks`.
"""

from __future__ import annotations

import base64
import html
import io
import math

from PIL import Image

from .images import shrink

__all__ = ["PAGE_CSP", "escape_text", "image_data_url", "nice_ticks", "tick_digits"]

PAGE_CSP = (
    "default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)
"""The pages' Content-Security-Policy: no scripts, no remote anything. ``file:`` lets linked images
load from disk in browsers whose file:// pages have an opaque origin that ``'self'`` does not
match (Firefox)."""


def escape_text(value: object) -> str:
    """``value`` as text that is safe anywhere in HTML, attribute values included (quotes escaped)."""
    return html.escape(str(value), quote=True)


def image_data_url(image: Image.Image, max_side: int) -> str:
    """Downscale to ``max_side`` and encode: JPEG for photo-like images (much smaller), else PNG."""
    image = shrink(image.convert("RGB"), max_side)
    buf = io.BytesIO()
    if image.getcolors(256) is None:
        image.save(buf, format="JPEG", quality=85, optimize=True)
        mime = "image/jpeg"
    else:
        image.save(buf, format="PNG", optimize=True)
        mime = "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def nice_ticks(lo: float, hi: float) -> list[float]:
    """Evenly spaced round values between ``lo`` and ``hi`` (steps of 1, 2 or 5 times a power of ten).

    Example:
        >>> nice_ticks(0.1781, 0.9205), nice_ticks(0.2, 0.21)[:3]
        ([0.2, 0.4, 0.6, 0.8], [0.2, 0.202, 0.204])
    """
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    digits = tick_digits(step)
    return [round(first + i * step, digits) for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_digits(step: float) -> int:
    """Decimals that show every tick of this step, and no more."""
    return max(0, -math.floor(math.log10(step) + 1e-9))
