"""Check a SQLite file before LangGraph opens it, so a damaged one is a one-line error, not a traceback.

A run folder keeps its checkpoints and history in SQLite files. Anything else in their place
(a truncated copy, a file overwritten by mistake) would otherwise fail deep inside
LangGraph's ``setup()`` with ``sqlite3.DatabaseError: file is not a database``.

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_database(folder / "missing.sqlite", "the run's checkpoints")  # not there yet: created later
    >>> _ = (folder / "bad.sqlite").write_bytes(b"not a database, just some bytes long enough to be read")
    >>> check_database(folder / "bad.sqlite", "the run's checkpoints")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    imagerepainter.errors.ConfigurationError: the run's checkpoints (.../bad.sqlite) cannot be read: ...
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import ConfigurationError

__all__ = ["check_database"]


def check_database(path: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`ConfigurationError` when ``path`` exists but is not a readable SQLite database.

    The file is opened (never created) and its schema read, which is what fails on a damaged
    file. Nothing is written, except what SQLite itself does on opening a database that a killed
    process left mid-transaction: it recovers the write-ahead log (``<file>-wal``, ``-shm``) or rolls
    back a hot journal, as LangGraph's own connection would. (A read-only connection cannot, and
    would fail with "attempt to write a readonly database": that is a crash to recover from, not
    damage.) A missing or empty file passes: SQLite creates the database in it.

    Args:
        path: The database file.
        what: What the file holds, for the message (e.g. ``"the run's checkpoints"``).

    Raises:
        ConfigurationError: the file is not a SQLite database (or is damaged, or cannot be read).
    """
    path = Path(path)
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)  # read-only if write-protected
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigurationError(
            f"{what} ({path}) cannot be read: {exc}. The file is damaged or not a SQLite database; "
            "restore it from a copy, or start a new run."
        ) from None
