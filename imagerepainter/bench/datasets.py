"""Benchmark datasets: reference images with their category, style and checksum.

A :class:`Dataset` is an ordered list of :class:`Reference` s. It comes from

* a **folder**: every image in it, sorted by path; ``category`` is the sub-folder's name
  when the image lies in one. A folder holding a ``manifest.jsonl`` is read through it;
* a **JSONL manifest**: one object per line with ``path`` (relative to the manifest), and
  optionally ``id``, ``category``, ``style``, ``prompt`` (a human reference prompt, kept for
  comparison), ``sha256`` (verified) and any other keys (kept as ``metadata``);
* a **named set**: ``evalref-100`` (see :mod:`imagerepainter.bench.evalref`).

A reference that cannot be used (its path leaves the manifest's folder, the file is missing,
its hash differs from the manifest's) is kept with :attr:`Reference.problem` set: the
benchmark records its cases as failed, with that reason, and evaluates the rest. A file that
is present but not a readable image fails when its cases run, in the same way.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "cats").mkdir()
    >>> Image.new("RGB", (8, 8), "red").save(root / "cats" / "a.png")
    >>> _ = (root / "refs.jsonl").write_text(
    ...     json.dumps({"path": "cats/a.png", "style": "flat", "source": "demo"}) + "\\n"
    ...     + json.dumps({"path": "../outside.png"}) + "\\n")
    >>> data = load_dataset(root / "refs.jsonl")
    >>> [(r.id, r.category, r.style, r.metadata, r.problem is None) for r in data]
    [('cats/a.png', None, 'flat', {'source': 'demo'}, True), ('../outside.png', None, None, {}, False)]
    >>> load_dataset(root).references[0].category
    'cats'
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigurationError
from .manifest import (
    IMAGE_SUFFIXES,
    MANIFEST_NAME,
    Dataset,
    Reference,
    file_sha256,
    read_manifest,
    reference_from_row,
)

__all__ = ["IMAGE_SUFFIXES", "MANIFEST_NAME", "Dataset", "Reference", "file_sha256", "load_dataset"]


def load_dataset(
    source: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    local_dir: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
) -> Dataset:
    """Load a dataset from a folder, a JSONL manifest, or a name (``"evalref-100"``, or
    ``"sandbox-scenes[:N]"``: N generated sandbox scenes whose truth is known, see :func:`sandbox_scenes`).

    Args:
        source: A folder of images, a ``.jsonl`` manifest, or the name of a set.
        cache_dir: For a named set: where downloaded images are kept (default
            ``~/.cache/imagerepainter/datasets``).
        local_dir: For a named set: read it from this local copy instead of downloading.
        base_url: For a named set: download from this URL instead of the authors' repository.

    Raises:
        ConfigurationError: ``source`` is neither a folder, a manifest nor a known name; the
            manifest is not valid JSONL; or the dataset holds no image.
    """
    from .evalref import NAMED_SETS, load_named

    text = os.fspath(source)
    path = Path(text).expanduser()
    if not path.exists() and text.lower().split(":")[0] == SANDBOX_SCENES:
        return sandbox_scenes(_scene_count(text), cache_dir=cache_dir)
    if not path.exists() and text.lower() in NAMED_SETS:
        return load_named(text.lower(), cache_dir=cache_dir, local_dir=local_dir, base_url=base_url)
    if path.is_dir() and path.name.lower() in NAMED_SETS:  # a local copy of a named set: verified against it
        return load_named(path.name.lower(), local_dir=path)
    if path.is_dir():
        manifest = path / MANIFEST_NAME
        dataset = _from_manifest(manifest, name=path.name) if manifest.is_file() else _from_folder(path)
    elif path.is_file():
        dataset = _from_manifest(path, name=path.stem)
    else:
        raise ConfigurationError(
            f"Dataset {text!r} is not a folder, a JSONL manifest or a named set ({', '.join(sorted(NAMED_SETS))}). "
            "Check the path."
        )
    if not dataset.references:
        raise ConfigurationError(f"Dataset {text!r} holds no image ({', '.join(IMAGE_SUFFIXES)}).")
    return dataset


SANDBOX_SCENES = "sandbox-scenes"
"""Name of the generated set: ``sandbox-scenes`` (12 scenes) or ``sandbox-scenes:N``."""


def _scene_count(text: str) -> int:
    _, _, count = text.partition(":")
    if not count:
        return 12
    if not count.isdigit() or not 1 <= int(count) <= 1000:
        raise ConfigurationError(f"{text!r}: write sandbox-scenes:N with N from 1 to 1000 scenes.")
    return int(count)


def sandbox_scenes(count: int = 12, *, size: int = 256, cache_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """``count`` generated sandbox scenes, written once into the cache with a manifest, as a dataset.

    The sandbox world's scenes have a known truth (the prompt that draws them exactly, kept as
    each reference's ``prompt``), so graded sandbox models (``sandbox?fidelity=f``) can be
    ranked against it offline. Categories say how many shapes a scene has. Scene ``i`` is
    ``random_scene(1000 + i)``, so the set is the same on every machine.

    Example:
        >>> import tempfile
        >>> data = sandbox_scenes(3, size=64, cache_dir=tempfile.mkdtemp())
        >>> [r.id for r in data.references], all(r.problem is None and r.prompt for r in data.references)
        (['scene_000', 'scene_001', 'scene_002'], True)
    """
    from .._files import atomic_write
    from ..sandbox import random_scene, render_scene
    from .evalref import default_cache_dir

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / f"{SANDBOX_SCENES}-{count}-{size}px"
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            scene = random_scene(1000 + i)
            name = f"scene_{i:03d}.png"
            render_scene(scene, size, size).save(folder / name)
            shapes = len(scene.shapes)
            lines.append(
                {
                    "path": name,
                    "id": f"scene_{i:03d}",
                    "category": f"{'few' if shapes <= 2 else 'some' if shapes <= 4 else 'many'} shapes",
                    "prompt": scene.to_prompt(),
                    "sha256": file_sha256(folder / name),
                }
            )
        atomic_write(manifest, "".join(json.dumps(line) + "\n" for line in lines))
    return _from_manifest(manifest, name=f"{SANDBOX_SCENES}:{count}")


def _from_folder(root: Path) -> Dataset:
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    refs = []
    for file in files:
        rel = file.relative_to(root)
        refs.append(
            Reference(
                id=rel.as_posix(),
                path=file,
                sha256=file_sha256(file),
                category=rel.parts[0] if len(rel.parts) > 1 else None,
            )
        )
    return Dataset(name=root.name, references=refs, source=str(root))


def _from_manifest(manifest: Path, *, name: str) -> Dataset:
    root = manifest.parent.resolve()
    refs: list[Reference] = []
    seen: set[str] = set()
    for row in read_manifest(manifest):
        ref = reference_from_row(row, root)
        if ref.id in seen:
            raise ConfigurationError(f"{manifest}: the id {ref.id!r} appears twice; ids must be unique.")
        seen.add(ref.id)
        refs.append(ref)
    return Dataset(name=name, references=refs, source=str(manifest))
