"""Reading references safely, and keeping images out of the graph state.

* :func:`load_image` turns a path, PIL image or bytes into a normalised RGB image, or raises
  a typed :class:`~imagerepainter.errors.InvalidImageError` that says what is wrong. Odd but
  valid images (RGBA, palette, 16-bit, grayscale, CMYK, EXIF-rotated) are normalised.
* :class:`ImageRef` is what the state holds: a content hash and a size, small enough for
  any LangGraph checkpointer.
* An :class:`ImageStore` maps refs to pixels: :class:`MemoryImageStore` for notebooks,
  :class:`DirectoryImageStore` for runs that must survive a crash.

Example:
    >>> from PIL import Image
    >>> store = MemoryImageStore()
    >>> ref = store.put(Image.new("RGB", (4, 3), "red"))
    >>> (ref["width"], ref["height"]), store.get(ref).getpixel((0, 0))
    ((4, 3), (255, 0, 0))
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

from PIL import Image, ImageOps, UnidentifiedImageError
from typing_extensions import TypedDict

from .errors import ConfigurationError, ImageTooLargeError, InvalidImageError

__all__ = [
    "DirectoryImageStore",
    "ImageInput",
    "ImageRef",
    "ImageStore",
    "MemoryImageStore",
    "encode_png",
    "image_sha256",
    "load_image",
    "to_data_url",
]

ImageInput = str | os.PathLike[str] | bytes | bytearray | Image.Image
"""What a reference may be given as: a file path, encoded bytes or a PIL image."""


class ImageRef(TypedDict):
    """A reference to an image in an :class:`ImageStore`; plain data, safe in checkpoints."""

    sha256: str
    """SHA-256 of the image's PNG encoding; the key in the store."""
    width: int
    height: int


def encode_png(image: Image.Image) -> bytes:
    """Encode ``image`` as PNG bytes (deterministic for the same pixels)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def image_sha256(image: Image.Image) -> str:
    """SHA-256 hex digest of the PNG encoding of ``image``."""
    return hashlib.sha256(encode_png(image)).hexdigest()


def to_data_url(image: Image.Image, *, max_side: int | None = None) -> str:
    """Return ``image`` as a ``data:image/png;base64,...`` URL, shrunk so its longest side is ``max_side``."""
    if max_side is not None and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def load_image(source: ImageInput, *, max_pixels: int = 40_000_000) -> Image.Image:
    """Read ``source`` into a fully decoded RGB image, or raise a typed error.

    The checks run before any model is called: a missing or empty file, bytes that are not
    an image, a truncated file and an absurd size each raise their own error, with the fix.

    Args:
        source: A path, encoded image bytes, or a PIL image.
        max_pixels: Refuse images with more pixels than this (decompression-bomb guard).

    Raises:
        InvalidImageError: the source is missing, empty, truncated or not an image.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    if isinstance(source, Image.Image):
        image = source
        _check_size(image.size, max_pixels, what="The image")
        try:
            image.load()
        except OSError as exc:
            raise InvalidImageError(f"The image could not be decoded ({exc}).") from None
        return _normalise(image)

    if isinstance(source, (bytes, bytearray)):
        data, what = bytes(source), "The image data"
    elif isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and source.split("://", 1)[0].lower() in ("http", "https", "s3", "gs", "ftp"):
            raise InvalidImageError(
                f"{source!r} is a URL; references are not downloaded. Download it and pass the file path or bytes."
            )
        path = Path(source)
        what = f"The file {str(path)!r}"
        if not path.exists():
            raise InvalidImageError(f"{what} does not exist. Check the path.")
        if path.is_dir():
            raise InvalidImageError(f"{what} is a folder; pass an image file.")
        if not path.is_file():  # a device or a named pipe: reading it could block or never end
            raise InvalidImageError(f"{what} is not a regular file (a device, pipe or socket); pass an image file.")
        data = path.read_bytes()
    else:
        raise InvalidImageError(
            f"A reference must be a file path, image bytes or a PIL image, not {type(source).__name__}."
        )
    if not data:
        raise InvalidImageError(f"{what} is empty (0 bytes); pass a PNG, JPEG or WebP image.")

    with warnings.catch_warnings():
        # Pillow warns before its own bomb limit; we apply ours from the header first.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{what} is too large to decode safely ({exc}).") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, AttributeError, EOFError):
            # Pillow's parsers raise several types on garbage (even AttributeError); all mean the same.
            raise InvalidImageError(
                f"{what} is not an image Pillow can read ({len(data)} bytes); pass a PNG, JPEG or WebP image."
            ) from None
        _check_size(image.size, max_pixels, what=what)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidImageError(
                f"{what} is truncated or corrupt ({exc}); re-export or re-download the image."
            ) from None
    return _normalise(image)


def _check_size(size: tuple[int, int], max_pixels: int, *, what: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidImageError(f"{what} has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}. "
            "Resize it first, or raise max_reference_pixels if you really mean it."
        )


def _normalise(image: Image.Image) -> Image.Image:
    """Apply EXIF rotation and convert any mode to 8-bit RGB (alpha composited on white)."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode.startswith("I") or image.mode == "F":
        image = _gray_to_8_bits(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        image = background
    return image.convert("RGB")


def _gray_to_8_bits(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float grayscale to 8 bits, keeping brightness (no contrast stretch).

    16-bit values are read as 0-65535; 32-bit integers as 0-255 when they fit, else 0-65535;
    floats as 0-1 (else 0-255). Only values beyond those ranges are scaled by their extremes.
    """
    import numpy as np

    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidImageError("The image has non-finite pixel values (NaN or infinity); export it as PNG or JPEG.")
    lo, hi = float(values.min()), float(values.max())
    if image.mode == "F" and lo >= 0 and hi <= 1:
        values = values * 255
    elif lo < 0 or hi > (255 if image.mode == "F" else 65535):
        values = (values - lo) * (255 / max(hi - lo, 1e-12))
    elif image.mode.startswith("I;16") or (image.mode == "I" and hi > 255):
        values = values / 257
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


# ----------------------------------------------------------------------------- stores


@runtime_checkable
class ImageStore(Protocol):
    """Where the loop keeps pixels; the state only holds :class:`ImageRef` s."""

    def put(self, image: Image.Image) -> ImageRef:
        """Store ``image`` (idempotent for the same pixels) and return its ref."""
        ...

    def get(self, ref: ImageRef) -> Image.Image:
        """Return the image ``ref`` points to."""
        ...


class MemoryImageStore:
    """Keeps PNG bytes in memory; the default for notebooks and tests. Thread-safe."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, image: Image.Image) -> ImageRef:
        png = encode_png(image)
        sha = hashlib.sha256(png).hexdigest()
        with self._lock:
            self._data.setdefault(sha, png)
        return ImageRef(sha256=sha, width=image.width, height=image.height)

    def get(self, ref: ImageRef) -> Image.Image:
        try:
            png = self._data[ref["sha256"]]
        except KeyError:
            raise ConfigurationError(
                f"Image {ref['sha256'][:12]} is not in this in-memory store. A run resumed in another "
                "process needs a DirectoryImageStore (or a run folder) to find its images."
            ) from None
        image = Image.open(io.BytesIO(png))
        image.load()
        return image

    def __len__(self) -> int:
        return len(self._data)


class DirectoryImageStore:
    """Keeps each image as ``<folder>/<sha256>.png``; survives crashes and process restarts.

    Files are written atomically (temporary file, then rename), so a crash never leaves
    a half-written image behind.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, ref: ImageRef) -> Path:
        """The file holding ``ref``."""
        return self.folder / f"{ref['sha256']}.png"

    def put(self, image: Image.Image) -> ImageRef:
        png = encode_png(image)
        ref = ImageRef(sha256=hashlib.sha256(png).hexdigest(), width=image.width, height=image.height)
        target = self.path(ref)
        if not target.exists():
            tmp = target.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(png)
            os.replace(tmp, target)
        return ref

    def get(self, ref: ImageRef) -> Image.Image:
        target = self.path(ref)
        if not target.exists():
            raise ConfigurationError(f"Image {ref['sha256'][:12]} is missing from {str(self.folder)!r}.")
        image = Image.open(target)
        image.load()
        return image
