"""Named colours of the sandbox world, and colour arithmetic in CIELAB.

The sandbox speaks about colour in three ways, from coarse to exact:

* the eleven *basic* colour terms (``"blue"``, ``"brown"``, ...) — what the sandbox model
  uses in its first, coarse description;
* the full :data:`PALETTE` of named shades (``"navy"``, ``"teal"``, ``"light green"``, ...)
  — what its critique uses;
* ``#rrggbb`` hex codes — the last resort for a shade no name fits.

Prompts may also modify a name: ``"light X"``, ``"dark X"``, ``"pale X"``, ``"deep X"``,
``"lighter X"``, ``"darker X"``.

Example:
    >>> parse_color("navy")
    (20, 30, 100)
    >>> parse_color("#ff8000")
    (255, 128, 0)
    >>> format_color((20, 30, 100)), format_color((21, 30, 100))
    ('navy', '#151e64')
    >>> nearest_name((30, 40, 110)), basic_name((30, 40, 110))
    ('navy', 'blue')
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BASIC_TERMS",
    "PALETTE",
    "RGB",
    "basic_name",
    "delta_e",
    "format_color",
    "mix",
    "nearest_name",
    "parse_color",
    "rgb_to_lab",
]

RGB = tuple[int, int, int]
"""A colour as 0-255 red, green and blue."""

PALETTE: dict[str, RGB] = {
    # the eleven basic colour terms
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (245, 220, 50),
    "green": (60, 170, 70),
    "blue": (40, 90, 220),
    "purple": (130, 60, 180),
    "pink": (240, 130, 180),
    "brown": (130, 80, 40),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    # finer shades
    "navy": (20, 30, 100),
    "dark blue": (25, 50, 150),
    "light blue": (150, 190, 245),
    "sky blue": (90, 175, 235),
    "teal": (20, 130, 130),
    "cyan": (40, 205, 225),
    "dark green": (20, 95, 40),
    "light green": (150, 225, 130),
    "olive": (120, 120, 40),
    "lime": (170, 225, 40),
    "mint": (175, 240, 205),
    "maroon": (115, 20, 40),
    "crimson": (200, 20, 70),
    "magenta": (215, 40, 175),
    "violet": (155, 100, 225),
    "lavender": (200, 180, 235),
    "indigo": (70, 40, 140),
    "beige": (235, 220, 180),
    "tan": (205, 170, 125),
    "gold": (225, 175, 20),
    "coral": (250, 115, 90),
    "peach": (250, 205, 165),
    "light gray": (205, 205, 205),
    "dark gray": (70, 70, 70),
}
"""Every colour name the sandbox knows, with its RGB value."""

BASIC_TERMS: tuple[str, ...] = tuple(list(PALETTE)[:11])
"""The basic colour terms used for coarse descriptions."""

_BASIC_OF: dict[str, str] = {
    "navy": "blue",
    "dark blue": "blue",
    "light blue": "blue",
    "sky blue": "blue",
    "teal": "green",
    "cyan": "blue",
    "dark green": "green",
    "light green": "green",
    "olive": "green",
    "lime": "green",
    "mint": "green",
    "maroon": "red",
    "crimson": "red",
    "magenta": "pink",
    "violet": "purple",
    "lavender": "purple",
    "indigo": "purple",
    "beige": "white",
    "tan": "brown",
    "gold": "yellow",
    "coral": "orange",
    "peach": "orange",
    "light gray": "gray",
    "dark gray": "gray",
}

ALIASES: dict[str, str] = {
    "grey": "gray",
    "light grey": "light gray",
    "dark grey": "dark gray",
    "silver": "light gray",
    "charcoal": "dark gray",
    "golden": "gold",
    "scarlet": "red",
    "azure": "sky blue",
    "aqua": "cyan",
    "turquoise": "cyan",
    "emerald": "green",
    "forest green": "dark green",
    "burgundy": "maroon",
    "cream": "beige",
    "ivory": "white",
    "khaki": "tan",
    "salmon": "coral",
    "lilac": "lavender",
    "fuchsia": "magenta",
    "amber": "gold",
    "ochre": "gold",
    "rose": "pink",
    "sand": "beige",
}
"""Other names a prompt may use, mapped to a :data:`PALETTE` name."""

_MODIFIERS: dict[str, tuple[str, float]] = {
    "very light": ("light", 0.6),
    "very dark": ("dark", 0.45),
    "slightly lighter": ("light", 0.15),
    "slightly darker": ("dark", 0.85),
    "lighter": ("light", 0.25),
    "darker": ("dark", 0.75),
    "light": ("light", 0.4),
    "pale": ("light", 0.55),
    "dark": ("dark", 0.6),
    "deep": ("dark", 0.75),
}

_ALL_NAMES: dict[str, RGB] = {**PALETTE, **{a: PALETTE[n] for a, n in ALIASES.items()}}
_NAME_ALT = "|".join(sorted((re.escape(n) for n in _ALL_NAMES), key=len, reverse=True))
_MOD_ALT = "|".join(sorted((re.escape(m) for m in _MODIFIERS), key=len, reverse=True))
COLOR_PATTERN = rf"(?:#[0-9a-f]{{6}}\b|\b(?:(?:{_MOD_ALT})\s+)?(?:{_NAME_ALT})\b)"
"""A regular expression matching one colour phrase in lower-case text."""
_COLOR_RE = re.compile(rf"^(?:(?P<mod>{_MOD_ALT})\s+)?(?P<name>{_NAME_ALT})$")


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Blend ``a`` towards ``b`` by ``t`` (0 gives ``a``, 1 gives ``b``)."""
    return _clip((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t))


def _clip(c: tuple[float, float, float]) -> RGB:
    return (min(255, max(0, round(c[0]))), min(255, max(0, round(c[1]))), min(255, max(0, round(c[2]))))


def parse_color(phrase: str) -> RGB | None:
    """Return the RGB value of a colour phrase (``"navy"``, ``"light teal"``, ``"#1a2b3c"``), or ``None``."""
    phrase = " ".join(phrase.lower().replace("grey", "gray").split())
    if re.fullmatch(r"#[0-9a-f]{6}", phrase):
        return (int(phrase[1:3], 16), int(phrase[3:5], 16), int(phrase[5:7], 16))
    if phrase in _ALL_NAMES:  # "light blue" is a name of its own, not "light" + "blue"
        return _ALL_NAMES[phrase]
    match = _COLOR_RE.match(phrase)
    if match is None:
        return None
    base = _ALL_NAMES[match["name"]]
    if match["mod"] is None:
        return base
    how, amount = _MODIFIERS[match["mod"]]
    if how == "light":
        return mix(base, (255, 255, 255), amount)
    return _clip((base[0] * amount, base[1] * amount, base[2] * amount))


def format_color(rgb: RGB) -> str:
    """Name ``rgb`` exactly: its :data:`PALETTE` name when it has one, else ``#rrggbb``."""
    rgb = _clip(rgb)
    for name, value in PALETTE.items():
        if value == rgb:
            return name
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def rgb_to_lab(rgb: NDArray[np.floating] | NDArray[np.integer]) -> NDArray[np.float64]:
    """Convert an ``(..., 3)`` array of 0-255 sRGB values to CIELAB (D65)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def delta_e(a: RGB | NDArray[np.floating], b: RGB | NDArray[np.floating]) -> float:
    """CIE76 colour difference between two RGB colours (about 2.3 is just noticeable)."""
    return float(np.linalg.norm(rgb_to_lab(np.asarray(a)) - rgb_to_lab(np.asarray(b))))


_NAMES = list(PALETTE)
_LABS = rgb_to_lab(np.array([PALETTE[n] for n in _NAMES]))


def nearest_name(rgb: RGB | NDArray[np.floating], *, names: tuple[str, ...] | None = None) -> str:
    """The :data:`PALETTE` name closest to ``rgb`` in CIELAB, among ``names`` (default: all)."""
    lab = rgb_to_lab(np.asarray(rgb, dtype=np.float64))
    dist = np.linalg.norm(_LABS - lab, axis=1)
    if names is not None:
        allowed = np.array([n in names for n in _NAMES])
        dist = np.where(allowed, dist, np.inf)
    return _NAMES[int(np.argmin(dist))]


def basic_name(rgb: RGB | NDArray[np.floating]) -> str:
    """The basic colour term for ``rgb``: the hue family of its nearest :data:`PALETTE` name."""
    name = nearest_name(rgb)
    return _BASIC_OF.get(name, name)
