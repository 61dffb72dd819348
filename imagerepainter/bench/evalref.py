"""EvalRef-100, the paper's content-diverse reference set: read locally, or fetched once and verified.

100 photographs, 512x512, 25 in each of four categories (``portrait``, ``object``, ``scene``,
``complex``), released by the paper's authors in their public repository
``SPEEDSRER/Image-Regeneration`` (folder ``data/Evalref_100/``) under **CC-BY-NC 4.0**:
attribute the authors, non-commercial use only. The images are not shipped with this
package; it ships only their names, categories and SHA-256 hashes
(``imagerepainter/bench/data/evalref-100.jsonl``).

:func:`load_named` reads a local copy when one is given (``local_dir``), else the user's
cache (``~/.cache/imagerepainter/datasets/evalref-100``), downloading the files it lacks from
the authors' repository at a pinned commit. Every file is checked against the shipped hash:
a download whose hash differs is refused (never written to the cache) and its reference is
reported as a failed case, like a missing file; the other references are evaluated.

Example:
    >>> info = NAMED_SETS["evalref-100"]
    >>> info.licence, len(info.entries()), sorted({e["category"] for e in info.entries()})
    ('CC-BY-NC 4.0', 100, ['complex', 'object', 'portrait', 'scene'])
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .._files import atomic_write
from ..errors import ConfigurationError
from .manifest import Dataset, file_sha256, read_manifest, reference_from_row

__all__ = ["NAMED_SETS", "NamedSet", "default_cache_dir", "fetch_named", "load_named"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NamedSet:
    """A published reference set this package knows how to fetch and verify."""

    name: str
    manifest: str
    """File name of the shipped manifest (in ``imagerepainter/bench/data``)."""
    base_url: str
    """Where the files are downloaded from (file name appended)."""
    licence: str
    notice: str
    """Attribution shown to the user and written next to the cached files."""

    def entries(self) -> list[dict[str, Any]]:
        """The shipped manifest's lines (path, category, sha256)."""
        with resources.as_file(resources.files("imagerepainter.bench") / "data" / self.manifest) as path:
            return read_manifest(Path(path))


_EVALREF_COMMIT = "fc84eef1e6e1d9d4b34ce70fdc81805538a621d5"
NAMED_SETS: dict[str, NamedSet] = {
    "evalref-100": NamedSet(
        name="evalref-100",
        manifest="evalref-100.jsonl",
        base_url=f"https://raw.githubusercontent.com/SPEEDSRER/Image-Regeneration/{_EVALREF_COMMIT}/data/Evalref_100/",
        licence="CC-BY-NC 4.0",
        notice=(
            "EvalRef-100 by Meng et al., 'Image Regeneration: Evaluating Text-to-Image Model via Generating "
            "Identical Image with Multimodal Large Language Models' (AAAI 2025), from github.com/SPEEDSRER/"
            "Image-Regeneration (data/Evalref_100). Licence: CC-BY-NC 4.0 (attribution, non-commercial use)."
        ),
    ),
}
"""The named sets, by name."""

_DOWNLOAD_TIMEOUT = 60.0
_MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any reference; stops an endless or hostile response


def default_cache_dir() -> Path:
    """``~/.cache/imagerepainter/datasets``: where named sets are downloaded unless told otherwise."""
    return Path.home() / ".cache" / "imagerepainter" / "datasets"


def load_named(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
) -> Dataset:
    """The named set ``name``, from ``local_dir`` or the cache (fetching what it lacks).

    Args:
        name: A key of :data:`NAMED_SETS`.
        cache_dir: The cache root (the set goes in ``<cache_dir>/<name>``); default
            :func:`default_cache_dir`.
        local_dir: A local copy to read in place (nothing is downloaded or written).
        base_url: Download from here instead of the authors' repository (a mirror).

    Each file is verified against the shipped SHA-256; a file that is missing, cannot be
    downloaded or does not match becomes a reference with a ``problem`` (a failed case).
    """
    info = NAMED_SETS.get(name)
    if info is None:
        raise ConfigurationError(f"Unknown dataset {name!r}; known named sets: {', '.join(sorted(NAMED_SETS))}.")
    if local_dir is not None:
        root = Path(local_dir).expanduser().resolve()
        if not root.is_dir():
            raise ConfigurationError(f"The local copy of {name} at {str(root)!r} is not a folder.")
        source = str(root)
    else:
        root = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / name
        source, failures = fetch_named(info, root, base_url=base_url)
    refs = [reference_from_row(row, root) for row in info.entries()]
    if local_dir is None:  # say why a file is absent: it could not be fetched, or was refused
        refs = [r.model_copy(update={"problem": failures[r.id]}) if r.id in failures else r for r in refs]
    return Dataset(name=name, references=refs, licence=info.licence, source=source)


def fetch_named(info: NamedSet, root: Path, *, base_url: str | None = None) -> tuple[str, dict[str, str]]:
    """Download into ``root`` every file of ``info`` that is not there with the right hash.

    Files are written only after their hash checks out (atomically: a temporary file, then
    a rename), so the cache never holds a wrong or half-written image. A file that fails
    is skipped; :func:`load_named` reports its reference as a failed case.

    Returns:
        The URL the files came from, and why each file that failed did (by file name).
    """
    failures: dict[str, str] = {}
    url = base_url or info.base_url
    if not url.endswith("/"):
        url += "/"
    root.mkdir(parents=True, exist_ok=True)
    notice = root / "NOTICE.txt"
    if not notice.is_file():
        notice.write_text(info.notice + "\n", encoding="utf-8")
    for row in info.entries():
        target = root / row["path"]
        if target.is_file() and file_sha256(target) == row["sha256"]:
            continue
        try:
            data = _download(url + row["path"])
        except (OSError, urllib.error.URLError, ValueError) as exc:
            failures[row["path"]] = f"could not download {row['path']!r} from {url}: {exc}"
            logger.warning(failures[row["path"]])
            continue
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            failures[row["path"]] = f"refused the download of {row['path']!r}: its sha256 differs from the shipped one"
            logger.warning(failures[row["path"]])
            continue
        atomic_write(target, data)
    return url, failures


def _download(url: str) -> bytes:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"only http(s) URLs are fetched, not {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "imagerepainter"})
    with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT) as response:  # http(s) only, checked above
        data: bytes = response.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise ValueError(f"{url} is larger than {_MAX_FILE_BYTES} bytes")
    return data
