"""A benchmark dataset's records and its JSONL manifest: :class:`Reference`, :class:`Dataset`, and
reading a manifest's lines into references (checked against their files).

:mod:`imagerepainter.bench.datasets` loads datasets from folders, manifests and names, and
:mod:`imagerepainter.bench.evalref` fetches the named sets; both build on this module.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigurationError

__all__ = [
    "IMAGE_SUFFIXES",
    "MANIFEST_NAME",
    "Dataset",
    "Reference",
    "file_sha256",
    "read_manifest",
    "reference_from_row",
    "stand_in_sha",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
"""File suffixes a folder dataset reads (case-insensitive)."""
MANIFEST_NAME = "manifest.jsonl"
"""A folder holding a file of this name is read through it."""
_KNOWN_KEYS = {"id", "path", "category", "style", "prompt", "sha256"}


class Reference(BaseModel):
    """One reference image of a dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """Unique within the dataset: the manifest's ``id``, else the path relative to the dataset root."""
    path: Path
    """Where the image file is."""
    sha256: str
    """SHA-256 of the file's bytes: measured, or the manifest's when the file cannot be read
    (then :attr:`problem` says why); a stand-in derived from :attr:`id` when neither exists."""
    category: str | None = None
    style: str | None = None
    prompt: str | None = None
    """A human-written prompt for the image, kept for comparison (never given to the models)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Any other keys of the manifest line."""
    problem: str | None = None
    """Why this reference cannot be evaluated (its cases are recorded as failed), or ``None``."""


class Dataset(BaseModel):
    """An ordered list of references, with a name and (for published sets) a licence."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    references: list[Reference]
    licence: str | None = None
    """The licence the images are distributed under, shown to users (``None``: the user's own)."""
    source: str | None = None
    """Where the images came from (a folder, a manifest, a URL)."""

    def __iter__(self) -> Iterator[Reference]:  # type: ignore[override]
        return iter(self.references)

    def __len__(self) -> int:
        return len(self.references)

    @property
    def categories(self) -> list[str]:
        """The distinct categories, sorted."""
        return sorted({r.category for r in self.references if r.category})

    def select(
        self, *, categories: Sequence[str] | None = None, per_category: int | None = None, limit: int | None = None
    ) -> Dataset:
        """Keep the references of ``categories`` (all when ``None``), the first ``per_category`` of
        each category, then the first ``limit``; the order is kept.

        Raises:
            ConfigurationError: a category that no reference has (with those that exist), or a
                ``limit`` or ``per_category`` below 1.

        Example:
            >>> refs = [Reference(id=f"{c}{i}", path=Path("x"), sha256="0", category=c) for c in "ab" for i in range(3)]
            >>> [r.id for r in Dataset(name="d", references=refs).select(per_category=2)]
            ['a0', 'a1', 'b0', 'b1']
        """
        refs = list(self.references)
        if categories:
            unknown = sorted(set(categories) - set(self.categories))
            if unknown:
                raise ConfigurationError(
                    f"No reference of {self.name!r} has category {', '.join(map(repr, unknown))}; "
                    f"its categories are: {', '.join(self.categories) or 'none'}."
                )
            refs = [r for r in refs if r.category in set(categories)]
        if per_category is not None:
            if per_category < 1:
                raise ConfigurationError(f"per_category must be at least 1, got {per_category}.")
            seen: dict[str | None, int] = {}
            kept = []
            for ref in refs:
                seen[ref.category] = seen.get(ref.category, 0) + 1
                if seen[ref.category] <= per_category:
                    kept.append(ref)
            refs = kept
        if limit is not None:
            if limit < 1:
                raise ConfigurationError(f"limit must be at least 1, got {limit}.")
            refs = refs[:limit]
        return self.model_copy(update={"references": refs})


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stand_in_sha(text: str) -> str:
    """A stable key for a reference whose file cannot be hashed (it is missing or refused)."""
    return hashlib.sha256(f"unreadable:{text}".encode()).hexdigest()


def read_manifest(manifest: Path) -> list[dict[str, Any]]:
    """The manifest's lines as dicts (blank lines skipped).

    Raises:
        ConfigurationError: a line is not a JSON object with a string ``path``.
    """
    rows = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{manifest}:{number} is not valid JSON ({exc.msg}).") from None
        if not isinstance(row, dict) or not isinstance(row.get("path"), str) or not row["path"].strip():
            raise ConfigurationError(f'{manifest}:{number} needs a "path" string (relative to the manifest).')
        rows.append(row)
    return rows


def reference_from_row(row: dict[str, Any], root: Path) -> Reference:
    """Build the reference of one manifest line; a refused path, a missing file or a hash
    mismatch sets :attr:`Reference.problem` instead of raising."""
    rel = str(row["path"])
    ref_id = str(row.get("id") or rel)
    expected = str(row["sha256"]).lower() if row.get("sha256") else None
    fields: dict[str, Any] = {
        "id": ref_id,
        "category": _text(row.get("category")),
        "style": _text(row.get("style")),
        "prompt": _text(row.get("prompt")),
        "metadata": {k: v for k, v in row.items() if k not in _KNOWN_KEYS},
    }
    target = (root / rel).resolve()
    if Path(rel).is_absolute() or not target.is_relative_to(root):
        escape = f"path {rel!r} leaves the manifest's folder; paths must be relative and stay inside it"
        return Reference(path=root / Path(rel).name, sha256=expected or stand_in_sha(ref_id), problem=escape, **fields)
    if not target.is_file():
        return Reference(
            path=target, sha256=expected or stand_in_sha(ref_id), problem=f"image file {rel!r} is missing", **fields
        )
    actual = file_sha256(target)
    problem: str | None = None
    if expected is not None and actual != expected:
        problem = f"sha256 of {rel!r} is {actual[:12]}…, the manifest says {expected[:12]}…; the file was changed"
    return Reference(path=target, sha256=expected or actual, problem=problem, **fields)


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
