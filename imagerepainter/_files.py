"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Example:
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "run.json"
    >>> atomic_write(target, '{"status": "running"}') == target
    True
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('{"status": "running"}', ['run.json'])
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically and durably; return the path.

    The data goes to a temporary file in the same folder (``.<name>.<random>.tmp``), is flushed
    to disk (``fsync``), and then replaces ``path`` in one step (``os.replace``). A crash at any
    moment leaves the previous file intact; a failed write leaves no temporary file behind.
    Concurrent writers each use their own temporary file; the last replace wins.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp_name = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _sync_folder(target.parent)
    return target


def _sync_folder(folder: Path) -> None:
    """Flush the folder entry of a replaced file (best effort: not every system can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
