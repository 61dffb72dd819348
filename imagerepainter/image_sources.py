"""References given as text by someone outside this process: a tool's model, or a served graph's client.

A remote caller cannot hand over a PIL image or this process's memory; it sends a string. An
:class:`ImageSourcePolicy` says which strings this process accepts, and :func:`read_source`
turns one into what :func:`~imagerepainter.images.load_image` reads (bytes or a path), or
raises a typed :class:`~imagerepainter.errors.InvalidImageError` before anything is called:

* a base64 ``data:`` URL (always accepted: the caller sends the bytes themselves);
* a file path on this machine, inside the policy's allowed folders (``roots``; ``None`` allows any path,
  an empty list none);
* an ``http(s)`` URL, only when the policy allows downloads (``allow_urls``), read up to ``max_bytes``.

Example:
    >>> policy = ImageSourcePolicy(roots=[], owner="server")
    >>> read_source("data:image/png;base64,iVBORw0KGgo=", policy)[:4]
    b'\\x89PNG'
    >>> try:
    ...     read_source("/etc/passwd", policy)
    ... except InvalidImageError as exc:
    ...     print(str(exc).split(":")[0])
    '/etc/passwd' is a file path, and this server reads no files
"""

from __future__ import annotations

import base64
import binascii
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidImageError

__all__ = ["ImageSourcePolicy", "read_source"]

_DATA_URL_HINT = "data:image/png;base64,..."


@dataclass(frozen=True)
class ImageSourcePolicy:
    """Which references given as text this process accepts.

    Args:
        roots: Folders a path may point into (resolved, so ``..`` and links cannot leave them);
            ``None`` allows any path, an empty list refuses every path.
        allow_urls: Download ``http(s)`` URLs (off by default: a download is a request to
            wherever the caller points).
        max_bytes: The most bytes a download may have.
        timeout: Seconds a download may take to answer.
        owner: Who is reading, for messages (``"tool"``, ``"server"``).
    """

    roots: list[Path] | None = None
    allow_urls: bool = False
    max_bytes: int = 50_000_000
    timeout: float = 30.0
    owner: str = "tool"

    def accepted(self) -> str:
        """What a caller may send, in words.

        Example:
            >>> ImageSourcePolicy(roots=[], allow_urls=True).accepted()
            'a data URL (data:image/png;base64,...) or an http(s) URL'
        """
        kinds = [f"a data URL ({_DATA_URL_HINT})"]
        if self.roots is None or self.roots:
            kinds.append("a file path" + (" inside the allowed folders" if self.roots else ""))
        if self.allow_urls:
            kinds.append("an http(s) URL")
        return " or ".join(kinds)

    @classmethod
    def of(
        cls, roots: list[str | os.PathLike[str]] | None, *, allow_urls: bool = False, owner: str = "tool"
    ) -> ImageSourcePolicy:
        """A policy whose ``roots`` are given as paths of any kind (resolved here)."""
        resolved = [Path(r).expanduser().resolve() for r in roots] if roots is not None else None
        return cls(roots=resolved, allow_urls=allow_urls, owner=owner)


def read_source(text: str, policy: ImageSourcePolicy) -> bytes | Path:
    """The bytes of a data URL or a download, or the path of an allowed file; checked, not yet decoded.

    Raises:
        InvalidImageError: ``text`` is not a string, is an invalid data URL, a path outside the
            allowed folders, a URL this policy does not download, or a download that failed.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidImageError(
            f"The image must be a non-empty string ({_what_is_accepted(policy)}), not {type(text).__name__}."
        )
    text = text.strip()
    if text[:5].lower() == "data:":
        return _data_url_bytes(text)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        return _download(text, policy)
    if scheme:
        raise InvalidImageError(f"{scheme}:// references are not read; {_what_is_accepted(policy)}.")
    if policy.roots is not None and not policy.roots:
        raise InvalidImageError(
            f"{text!r} is a file path, and this {policy.owner} reads no files: send the image as a data URL "
            f"({_DATA_URL_HINT})."
        )
    path = Path(text).expanduser()
    if policy.roots is not None and not any(path.resolve().is_relative_to(root) for root in policy.roots):
        raise InvalidImageError(f"{text!r} is outside the folders this {policy.owner} may read.")
    return path


def _what_is_accepted(policy: ImageSourcePolicy) -> str:
    return "send " + policy.accepted()


def _data_url_bytes(url: str) -> bytes:
    header, _, data = url.partition(",")
    if ";base64" not in header.lower():
        raise InvalidImageError(f"A data URL must be base64-encoded ({_DATA_URL_HINT}).")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImageError("The data URL's base64 payload is not valid base64.") from None


def _download(url: str, policy: ImageSourcePolicy) -> bytes:
    if not policy.allow_urls:
        raise InvalidImageError(
            f"This {policy.owner} does not download images from URLs; send the image as a data URL ({_DATA_URL_HINT})."
        )
    shown = url.split("?", 1)[0]  # a query string may carry a token: never quoted back
    try:
        with urllib.request.urlopen(url, timeout=policy.timeout) as response:  # http(s) only: checked above
            data: bytes = response.read(policy.max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise InvalidImageError(f"Could not download {shown!r}: {reason}.") from None
    if len(data) > policy.max_bytes:
        raise InvalidImageError(f"{shown!r} is larger than {policy.max_bytes} bytes; send a smaller image.")
    return data
