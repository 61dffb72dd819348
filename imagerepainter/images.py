"""Reading references safely, and keeping images out of the graph state.

* :func:`load_image` turns a path, PIL image or bytes into a normalised RGB image, or raises
  a typed :class:`~imagerepainter.errors.InvalidImageError` that says what is wrong. Odd but
  valid images (RGBA, palette, 16-bit, grayscale, CMYK, EXIF-rotated) are normalised.
* :class:`ImageRef` is what the state holds: a hash of the decoded pixels and a size, small
  enough for any LangGraph checkpointer, and the same whatever Pillow or zlib encoded them.
* An :class:`ImageStore` maps refs to pixels: :class:`MemoryImageStore` for notebooks,
  :class:`DirectoryImageStore` for runs that must survive a crash. Both keep decoded images
  in memory, so the loop never decodes what it just rendered.
* :func:`to_data_url` encodes an image for a model request once, however many requests carry it.

Example:
    >>> from PIL import Image
    >>> store = MemoryImageStore()
    >>> ref = store.put(Image.new("RGB", (4, 3), "red"))
    >>> (ref["width"], ref["height"]), store.get(ref).getpixel((0, 0))
    ((4, 3), (255, 0, 0))
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import threading
import warnings
import weakref
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from PIL import Image, ImageOps, UnidentifiedImageError
from typing_extensions import TypedDict

from ._files import atomic_write
from ._memo import LRU
from .errors import ImageNotFoundError, ImageTooLargeError, InvalidImageError

__all__ = [
    "ORIGINAL_INFO",
    "DirectoryImageStore",
    "ImageFormat",
    "ImageInput",
    "ImageRef",
    "ImageStore",
    "MemoryImageStore",
    "encode_png",
    "image_sha256",
    "is_image_ref",
    "load_image",
    "put_image",
    "shrink",
    "to_data_url",
]

ImageInput = str | os.PathLike[str] | bytes | bytearray | Image.Image
"""What a reference may be given as: a file path, encoded bytes or a PIL image."""


class ImageRef(TypedDict):
    """A reference to an image in an :class:`ImageStore`; plain data, safe in checkpoints."""

    sha256: str
    """SHA-256 of the decoded pixels with their mode and size (:func:`image_sha256`); the key in the store."""
    width: int
    height: int


def is_image_ref(value: object) -> bool:
    """Whether ``value`` is an :class:`ImageRef` (a dict with a ``sha256`` string and an integer size).

    Example:
        >>> is_image_ref({"sha256": "ab" * 32, "width": 4, "height": 3}), is_image_ref("photo.png")
        (True, False)
    """
    return (
        isinstance(value, dict)
        and isinstance(value.get("sha256"), str)
        and isinstance(value.get("width"), int)
        and isinstance(value.get("height"), int)
    )


def image_sha256(image: Image.Image) -> str:
    """The identity of ``image``: SHA-256 of its mode, size and raw pixels.

    It depends on the pixels only, not on how a file encoded them, so the same picture has
    the same identity under any Pillow or zlib build, and a file may be re-encoded freely.

    Example:
        >>> a, b = Image.new("RGB", (2, 2), "red"), Image.new("RGB", (2, 2), (255, 0, 0))
        >>> image_sha256(a) == image_sha256(b) != image_sha256(a.convert("RGBA"))
        True
    """
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode("ascii"))
    row_bytes = max(1, _pixel_bytes(image) // max(1, image.height))
    rows = max(1, _HASH_STRIP_BYTES // row_bytes)
    if rows >= image.height:
        digest.update(image.tobytes())
    else:  # a large image is hashed a strip of rows at a time: the same digest, without a copy of it all
        for top in range(0, image.height, rows):
            digest.update(image.crop((0, top, image.width, min(image.height, top + rows))).tobytes())
    return digest.hexdigest()


_HASH_STRIP_BYTES = 16 << 20


def _ref(image: Image.Image) -> ImageRef:
    return ImageRef(sha256=image_sha256(image), width=image.width, height=image.height)


def shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """``image`` itself if its longest side is at most ``max_side``, else a LANCZOS-shrunk copy.

    The one downscaling rule of the package (images sent to models, thumbnails in reports).

    Example:
        >>> shrink(Image.new("RGB", (800, 400)), 200).size
        (200, 100)
    """
    if max_side is None or max(image.size) <= max_side:
        return image
    small = image.copy()
    small.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return small


def encode_png(image: Image.Image, *, compress_level: int = 6) -> bytes:
    """Encode ``image`` as PNG bytes (lossless at every level).

    Levels 1 to 3 use zlib's run-length strategy: after PNG's row filters, a photograph then
    compresses within a few percent of level 6 in a quarter of the time (a 512 px photo: about
    15 ms and 360 KB, against 56 ms and 350 KB at level 6).
    """
    buf = io.BytesIO()
    strategy = {"compress_type": zlib.Z_RLE} if 1 <= compress_level <= 3 else {}
    image.save(buf, format="PNG", compress_level=compress_level, **strategy)
    return buf.getvalue()


ImageFormat = Literal["jpeg", "png"]
"""How an image is encoded for a model request (``RepainterConfig.mllm_image_format``)."""

_DATA_URLS: dict[tuple[int, str], tuple[weakref.ref[Image.Image], str]] = {}
_DATA_URLS_LOCK = threading.Lock()
_ENCODING: dict[tuple[int, str], threading.Lock] = {}  # one lock per encoding in progress: concurrent requests wait


def _encode_for_model(image: Image.Image, image_format: ImageFormat) -> str:
    if image_format == "jpeg":
        buf = io.BytesIO()
        rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
        rgb.save(buf, format="JPEG", quality=95, subsampling=0)  # 4:4:4: colour at full resolution
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    if image_format == "png":
        return "data:image/png;base64," + base64.b64encode(encode_png(image, compress_level=1)).decode("ascii")
    raise ValueError(f"image_format must be 'jpeg' or 'png', not {image_format!r}")


def to_data_url(image: Image.Image, *, max_side: int | None = None, image_format: ImageFormat = "png") -> str:
    """Return ``image`` as a ``data:`` URL (PNG or JPEG), shrunk so its longest side is ``max_side``.

    The encoding is computed once per (image object, format) and reused while the object
    lives, so a reference sent with six concurrent requests is encoded once. Images are
    treated as immutable: do not draw on an image after sending it. ``"png"`` is lossless;
    ``"jpeg"`` is quality 95 with full-resolution colour.

    Example:
        >>> image = Image.new("RGB", (4, 4), "red")
        >>> to_data_url(image) is to_data_url(image)
        True
        >>> to_data_url(image, image_format="jpeg")[:23]
        'data:image/jpeg;base64,'
    """
    image = shrink(image, max_side)
    key = (id(image), image_format)
    with _DATA_URLS_LOCK:
        cached = _DATA_URLS.get(key)
        if cached is not None and cached[0]() is image:
            return cached[1]
        lock = _ENCODING.setdefault(key, threading.Lock())
    with lock:
        with _DATA_URLS_LOCK:
            cached = _DATA_URLS.get(key)
        if cached is not None and cached[0]() is image:  # another request encoded it meanwhile
            return cached[1]
        url = _encode_for_model(image, image_format)

        def forget(_: object, key: tuple[int, str] = key) -> None:
            with _DATA_URLS_LOCK:
                entry = _DATA_URLS.get(key)
                if entry is not None and entry[0]() is None:
                    del _DATA_URLS[key]

        with _DATA_URLS_LOCK:
            _DATA_URLS[key] = (weakref.ref(image, forget), url)
            _ENCODING.pop(key, None)
    return url


ORIGINAL_INFO = "imagerepainter.original"
"""Key of ``Image.info`` where :func:`load_image` notes what it reduced: the original's ``width``,
``height`` and ``sha256`` (of its encoded bytes; of its pixels for a PIL image)."""


def _load_pil(
    image: Image.Image, max_pixels: int, max_side: int | Callable[[tuple[int, int]], int] | None
) -> Image.Image:
    """:func:`load_image` of a PIL image: checked, decoded, and reduced to ``max_side``."""
    _check_size(image.size, max_pixels, what="The image")
    try:
        image.load()
    except OSError as exc:
        raise InvalidImageError(f"The image could not be decoded ({exc}).") from None
    max_side = _side_for(image, max_side)
    if max_side is not None and max(image.size) > max_side:
        known = image.info.get(ORIGINAL_INFO)  # reduced before: the original is the one it came from
        original = known or {
            "width": image.width,
            "height": image.height,
            "sha256": image_sha256(image),
            "sha256_of": "pixels",
        }
        return _reduced(image, max_side, original)
    return _normalise(image)


def _read_bytes(source: ImageInput) -> tuple[bytes, str]:
    """The encoded bytes of a path or bytes reference, and how messages name it."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "The image data"
    if isinstance(source, (str, os.PathLike)):
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
        return path.read_bytes(), what
    raise InvalidImageError(
        f"A reference must be a file path, image bytes or a PIL image, not {type(source).__name__}."
    )


def load_image(
    source: ImageInput,
    *,
    max_pixels: int = 40_000_000,
    max_side: int | Callable[[tuple[int, int]], int] | None = None,
) -> Image.Image:
    """Read ``source`` into a fully decoded RGB image, or raise a typed error.

    The checks run before any model is called: a missing or empty file, bytes that are not
    an image, a truncated file and an absurd size each raise their own error, with the fix.

    With ``max_side``, a larger image is reduced as it is read, so a 36-megapixel photograph
    costs memory in proportion to the size used, not to its own: a JPEG is decoded at the
    smallest of 1/2, 1/4 or 1/8 scale still at least ``max_side`` (libjpeg's scaled decoding,
    Pillow's ``draft``), then shrunk with LANCZOS; ``image.info[ORIGINAL_INFO]`` keeps the
    original's size and SHA-256 (``sha256_of``: of its encoded ``"bytes"``, or of its
    ``"pixels"`` for a PIL image, as :func:`image_sha256`); the bytes themselves are not kept. An image
    within ``max_side`` is read exactly as without it.

    Args:
        source: A path, encoded image bytes, or a PIL image.
        max_pixels: Refuse images with more pixels than this (decompression-bomb guard).
        max_side: Reduce the image so its longest side is at most this (``None``: never); or a
            function of the upright image's ``(width, height)`` (read from the header, before
            decoding) that returns it.

    Raises:
        InvalidImageError: the source is missing, empty, truncated or not an image.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    if isinstance(source, Image.Image):
        return _load_pil(source, max_pixels, max_side)
    data, what = _read_bytes(source)
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
        original = None
        max_side = _side_for(image, max_side)
        if max_side is not None and max(image.size) > max_side:
            width, height = image.size
            original = {
                "width": width,
                "height": height,
                "sha256": hashlib.sha256(data).hexdigest(),
                "sha256_of": "bytes",
            }
            del data  # only its hash is kept
            if image.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale, still at least max_side
                image.draft(None, (max_side, max_side))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InvalidImageError(
                f"{what} is truncated or corrupt ({exc}); re-export or re-download the image."
            ) from None
    if original is not None:
        return _reduced(image, max_side, original, own=True)  # type: ignore[arg-type]
    return _normalise(image)


_ROTATED = {5, 6, 7, 8}
"""EXIF orientations that turn the image a quarter: its upright width is its stored height."""


def _side_for(image: Image.Image, max_side: int | Callable[[tuple[int, int]], int] | None) -> int | None:
    """``max_side``, or what it returns for the upright size of ``image`` (from the header: nothing decoded)."""
    if not callable(max_side):
        return max_side
    width, height = image.size
    with contextlib.suppress(Exception):  # a broken EXIF block: take the stored size
        if image.getexif().get(0x0112) in _ROTATED:
            width, height = height, width
    return max_side((width, height))


def _reduced(image: Image.Image, max_side: int, original: dict[str, object], *, own: bool = False) -> Image.Image:
    """``image`` normalised and shrunk (LANCZOS) so its longest side is at most ``max_side``, with the
    ``original`` noted in its info. RGB and grayscale are shrunk first, so no full-size copy is made;
    ``own``: ``image`` may be changed in place (this module decoded it)."""
    if image.mode not in ("RGB", "L"):
        image, own = _normalise(image), True
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image, own = _resize_in_strips(image, size), True
    image = _normalise(image, own=own)
    image.info[ORIGINAL_INFO] = original
    return image


def _check_size(size: tuple[int, int], max_pixels: int, *, what: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise InvalidImageError(f"{what} has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}. "
            "Resize it first, or raise max_reference_pixels if you really mean it."
        )


def _resize_in_strips(image: Image.Image, size: tuple[int, int], rows: int = 256) -> Image.Image:
    """``image.resize(size)`` with LANCZOS, ``rows`` output rows at a time: Pillow's two-pass resize
    would hold a full-height intermediate image (60 MB for a 36-megapixel photograph), a strip
    holds a little more than its rows. Each strip's filter reads the source rows around it, so the
    seams match a whole resize (to within one level of rounding)."""
    width, height = size
    out = Image.new(image.mode, size)
    scale = image.height / height
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        box = (0.0, top * scale, float(image.width), bottom * scale)
        out.paste(image.resize((width, bottom - top), Image.Resampling.LANCZOS, box=box), (0, top))
    return out


def _normalise(source: Image.Image, *, own: bool = False) -> Image.Image:
    """Apply EXIF rotation and convert any mode to 8-bit RGB (alpha composited on white); a new
    image unless ``own`` (``source`` may then be rotated in place and returned)."""
    image = source
    if own:
        ImageOps.exif_transpose(image, in_place=True)
    else:
        image = ImageOps.exif_transpose(source) or source
    if image.mode.startswith("I") or image.mode == "F":
        image = _gray_to_8_bits(image)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        image = background
    return image if image.mode == "RGB" and (own or image is not source) else image.convert("RGB")


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
    """Where the loop keeps pixels; the state only holds :class:`ImageRef` s.

    ``get`` returns an image the caller may modify (a copy), so a result's images cannot
    corrupt the store.
    """

    def put(self, image: Image.Image) -> ImageRef:
        """Store ``image`` (idempotent for the same pixels) and return its ref."""
        ...

    def get(self, ref: ImageRef) -> Image.Image:
        """Return the image ``ref`` points to."""
        ...


class MemoryImageStore:
    """Keeps decoded images in memory; the default for notebooks and tests. Thread-safe.

    Nothing is encoded: putting an image costs a copy and a hash of its pixels.

    Images may be put on behalf of an *owner* (``Repainter`` uses the run's thread id), and
    :meth:`release` forgets an owner: images no other owner holds are dropped, so a long-lived
    store does not keep every finished run. Images put without an owner stay until the store
    goes. :meth:`subset` hands a finished run's images to its result first.

    Example:
        >>> store = MemoryImageStore()
        >>> red, blue = Image.new("RGB", (4, 4), "red"), Image.new("RGB", (4, 4), "blue")
        >>> a = store.put(red, owner="run-a")
        >>> b = store.put(blue, owner="run-b")
        >>> _ = store.put(red, owner="run-b")  # the same pixels in two runs: one image, two owners
        >>> kept = store.subset([b])  # what run b's result keeps
        >>> store.release("run-b")
        >>> len(store), store.nbytes, kept.get(b).getpixel((0, 0))
        (1, 48, (0, 0, 255))
    """

    def __init__(self) -> None:
        self._images: dict[str, Image.Image] = {}
        self._owners: dict[str, set[str]] = {}  # sha -> owners holding it (absent: put without one, kept)
        self._lock = threading.Lock()
        self.travels_with_results = False
        """A result's own images (:meth:`subset`): a pickled result carries them along."""

    def __getstate__(self) -> dict[str, object]:
        with self._lock:
            return {"images": dict(self._images), "travels_with_results": self.travels_with_results}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__()  # type: ignore[misc]
        self._images.update(state["images"])  # type: ignore[call-overload]
        self.travels_with_results = bool(state["travels_with_results"])

    def put(self, image: Image.Image, *, owner: str | None = None) -> ImageRef:
        """Store ``image`` (idempotent for the same pixels) and return its ref; ``owner`` holds it
        until :meth:`release` (``None``: kept for the store's life)."""
        ref = _ref(image)
        sha = ref["sha256"]
        with self._lock:
            if sha not in self._images:
                self._images[sha] = image.copy()
                if owner is not None:
                    self._owners[sha] = set()
            holders = self._owners.get(sha)
            if holders is not None:
                if owner is None:  # someone wants it kept for good
                    del self._owners[sha]
                else:
                    holders.add(owner)
        return ref

    def get(self, ref: ImageRef) -> Image.Image:
        with self._lock:
            image = self._images.get(ref["sha256"])
        if image is None:
            raise ImageNotFoundError(
                f"Image {ref['sha256'][:12]} is not in this in-memory store. A run resumed in another "
                "process needs a DirectoryImageStore (or a run folder) to find its images."
            )
        return image.copy()

    def release(self, owner: str) -> None:
        """Forget ``owner``: drop the images it put that no other owner holds."""
        with self._lock:
            for sha, holders in list(self._owners.items()):
                holders.discard(owner)
                if not holders:
                    del self._owners[sha]
                    self._images.pop(sha, None)

    def subset(self, refs: Sequence[ImageRef]) -> MemoryImageStore:
        """A new store holding the images of ``refs`` that this one has (the same image objects: stored
        images are never modified, so nothing is copied), kept for that store's life. A result bound
        to it carries these images when pickled."""
        kept = MemoryImageStore()
        kept.travels_with_results = True
        with self._lock:
            for ref in refs:
                image = self._images.get(ref["sha256"])
                if image is not None:
                    kept._images[ref["sha256"]] = image
        return kept

    @property
    def nbytes(self) -> int:
        """The pixel bytes the store holds (what its images weigh in memory)."""
        with self._lock:
            return sum(_pixel_bytes(image) for image in self._images.values())

    def __len__(self) -> int:
        return len(self._images)


def _pixel_bytes(image: Image.Image) -> int:
    per_band = 4 if image.mode in ("I", "F") else 2 if image.mode.startswith("I;16") else 1
    return image.width * image.height * len(image.getbands()) * per_band


def put_image(store: ImageStore, image: Image.Image, *, owner: str | None) -> ImageRef:
    """``store.put(image)``, on behalf of ``owner`` where the store tracks owners (:class:`MemoryImageStore`)."""
    if owner is not None and isinstance(store, MemoryImageStore):
        return store.put(image, owner=owner)
    return store.put(image)


class DirectoryImageStore:
    """Keeps each image as ``<folder>/<sha256>.png``; survives crashes and process restarts.

    :meth:`put` returns once the image is safely on disk, without making the loop wait for a
    PNG encoder: it writes the raw pixels (``<sha256>.bmp``, atomically: a temporary file,
    then a rename) and a background thread re-encodes them as PNG (atomically too) and removes
    the raw file. Since an image's identity is its pixels, either file serves the same ref, so
    a crash at any moment loses nothing. :meth:`compact` waits until every image is a PNG
    (run folders call it when a run stops). Recently used images are also kept decoded in
    memory (``cache_size`` of them), so the loop does not re-read what it just wrote.
    """

    RAW_SUFFIX = ".bmp"
    """Raw pixel files waiting for their PNG (lossless, written at memory speed)."""

    def __init__(self, folder: str | os.PathLike[str], *, cache_size: int = 64, compress_level: int = 1) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.compress_level = compress_level
        self._cache = LRU[str, Image.Image](cache_size)
        self._lock = threading.Lock()
        self._encoder: ThreadPoolExecutor | None = None
        self._encoding: dict[str, Future[None]] = {}

    def path(self, ref: ImageRef) -> Path:
        """The PNG file of ``ref`` (present once :meth:`compact` has run, or its background encoding ended)."""
        return self.folder / f"{ref['sha256']}.png"

    def _raw_path(self, sha: str) -> Path:
        return self.folder / f"{sha}{self.RAW_SUFFIX}"

    def _remember(self, sha: str, image: Image.Image) -> None:
        self._cache.put(sha, image)

    def put(self, image: Image.Image) -> ImageRef:
        ref = _ref(image)
        sha = ref["sha256"]
        kept = image.copy()  # the caller may change its image; ours is never changed (cache and encoder share it)
        if not self.path(ref).exists() and not self._raw_path(sha).exists():
            if image.mode in ("RGB", "L"):  # BMP holds these losslessly
                buf = io.BytesIO()
                kept.save(buf, format="BMP")
                atomic_write(self._raw_path(sha), buf.getvalue())
                self._encode_later(sha, kept)
            else:
                atomic_write(self.path(ref), encode_png(kept, compress_level=self.compress_level))
        self._remember(sha, kept)
        return ref

    def _encode_later(self, sha: str, image: Image.Image) -> None:
        with self._lock:
            if self._encoder is None:
                self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagerepainter-png")
            self._encoding = {k: f for k, f in self._encoding.items() if not f.done()}
            self._encoding[sha] = self._encoder.submit(self._to_png, sha, image)

    def _to_png(self, sha: str, image: Image.Image | None = None) -> None:
        raw = self._raw_path(sha)
        if image is None:
            image = Image.open(raw)
            image.load()
        atomic_write(self.folder / f"{sha}.png", encode_png(image, compress_level=self.compress_level))
        with contextlib.suppress(FileNotFoundError):
            raw.unlink()

    def compact(self) -> None:
        """Wait for the background PNG encodings, and encode any raw file a stopped process left.

        The encoder's thread then ends (a later :meth:`put` starts another), so a process that opens
        many run folders keeps no thread per folder.
        """
        with self._lock:
            pending = list(self._encoding.values())
            self._encoding.clear()
            encoder, self._encoder = self._encoder, None
        if encoder is not None:
            encoder.shutdown(wait=False)  # what it was given still finishes
        for future in pending:
            future.result()
        for raw in sorted(self.folder.glob(f"*{self.RAW_SUFFIX}")):
            with contextlib.suppress(FileNotFoundError):  # encoded meanwhile by a put's background job
                self._to_png(raw.stem)

    def get(self, ref: ImageRef) -> Image.Image:
        sha = ref["sha256"]
        cached = self._cache.get(sha)
        if cached is not None:
            return cached.copy()
        for target in (self.path(ref), self._raw_path(sha)):
            with contextlib.suppress(FileNotFoundError):  # the raw file may be replaced by its PNG meanwhile
                image = Image.open(target)
                image.load()
                self._remember(sha, image)
                return image.copy()
        raise ImageNotFoundError(f"Image {sha[:12]} is missing from {str(self.folder)!r}.")
