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
import re
import uuid
from pathlib import Path

__all__ = ["TEMPORARY_NAME", "atomic_write", "remove_stale_temporaries"]

TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+)\.[0-9a-f]{12}\.tmp$")
"""The name :func:`atomic_write` gives its temporary file: ``.<name>.<12 hex digits>.tmp``."""


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` atomically and durably; return the path.

    The data goes to a temporary file in the same folder (``.<name>.<random>.tmp``), is flushed
    to disk (``fsync``), and then replaces ``path`` in one step (``os.replace``). A crash at any
    moment leaves the previous file intact; a failed write leaves no temporary file behind.
    Concurrent writers each use their own temporary file; the last replace wins.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp_name = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")  # matches TEMPORARY_NAME
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


def remove_stale_temporaries(folder: str | os.PathLike[str], *, older_than: float) -> list[str]:
    """Delete the temporary files that writers killed mid-write left in ``folder``; return their names.

    A process killed inside :func:`atomic_write` (SIGKILL, power loss) never reaches its cleanup,
    so its temporary file (often empty) stays in the folder for good. Only files named as
    :func:`atomic_write` names them (:data:`TEMPORARY_NAME`) and last modified before
    ``older_than`` (a ``time.time()`` value) are removed: call it while holding the folder's
    lock, with the moment the lock was taken, so that no writer still alive is robbed of its
    file. A missing folder, or a file another cleaner removed first, is not an error.

    Example:
        >>> import tempfile, time, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / ".a.png.0123456789ab.tmp").write_bytes(b"")  # a writer killed mid-write
        >>> _ = (folder / "notes.tmp").write_text("not ours")
        >>> remove_stale_temporaries(folder, older_than=time.time() + 1)
        ['.a.png.0123456789ab.tmp']
        >>> sorted(p.name for p in folder.iterdir())
        ['notes.tmp']
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not TEMPORARY_NAME.match(entry.name):
            continue
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < older_than:
                os.unlink(entry.path)
                removed.append(entry.name)
    return sorted(removed)


def _sync_folder(folder: Path) -> None:
    """Flush the folder entry of a replaced file (best effort: not every system can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
