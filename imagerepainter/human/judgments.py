"""People's judgments of image pairs: the record, its SQLite store, and CSV / JSONL files.

One :class:`Judgment` says which of two images a rater found closer to a reference. Images are
named by paths relative to the evaluation folder (a case's ``best_image``, the reference copy
the judging page serves), or by any path for triplet sets that come from elsewhere.

The file format (CSV with a header row, or JSON Lines with one object per line) has the
fields of :class:`Judgment`; ``reference_id``, ``image_a``, ``image_b`` and ``choice`` are
required, the rest optional. ``choice`` is ``a``, ``b`` or ``tie`` (also read: ``left``/``right``
are refused, since which side an image was shown on is :attr:`Judgment.shown_left`).

Example:
    >>> import tempfile
    >>> store = JudgmentStore(tempfile.mkdtemp())
    >>> store.add(Judgment(reference_id="r1", image_a="images/x.png", image_b="images/y.png",
    ...     choice="a", rater="ann"))
    1
    >>> [(j.reference_id, j.choice, j.rater) for j in store.judgments()]
    [('r1', 'a', 'ann')]
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigurationError

__all__ = ["JUDGMENTS_NAME", "Choice", "Judgment", "JudgmentStore", "export_judgments", "read_judgments_file"]

JUDGMENTS_NAME = "judgments.sqlite"
"""The judgments database's file name inside an evaluation folder."""

Choice = Literal["a", "b", "tie"]
"""Which image the rater found closer to the reference; ``tie`` is "can't tell"."""


class Judgment(BaseModel):
    """One rater's answer to one pair: which of ``image_a`` and ``image_b`` is closer to the reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference_id: str = Field(min_length=1)
    """The reference's id within its dataset (as in ``results.sqlite``)."""
    image_a: str = Field(min_length=1)
    image_b: str = Field(min_length=1)
    choice: Choice
    rater: str = "anonymous"
    reference_image: str | None = None
    """The reference image's path, where the judgment is not tied to an evaluation (triplet sets)."""
    pair_id: str | None = None
    """The judging page's id of the pair shown (the same id for a repeated pair)."""
    shown_left: Literal["a", "b"] | None = None
    """Which image the page showed on the left (``None`` when unknown, e.g. imported)."""
    repeat: bool = False
    """Whether this was a repeated showing of a pair the rater had already judged (sides swapped)."""
    seconds: float | None = None
    """How long the rater took, when known."""
    created: float = Field(default_factory=time.time)
    """When it was made (seconds since the epoch)."""
    source: str = "page"
    """Where it came from: ``page``, ``import:<file name>``, ``simulated``, ..."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reference_id TEXT NOT NULL,
    image_a TEXT NOT NULL,
    image_b TEXT NOT NULL,
    choice TEXT NOT NULL,
    rater TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS judgments_by_rater ON judgments (rater);
"""


class JudgmentStore:
    """The ``judgments.sqlite`` of one folder (created on first use); safe for several threads.

    Args:
        folder: The evaluation folder (or any folder for judgments of triplet sets).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / JUDGMENTS_NAME
        try:
            with self._connect() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"{str(self.path)!r} is not a judgments database ({exc}).") from None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=60.0)) as db, db:
            yield db

    def add(self, judgment: Judgment) -> int:
        """Store one judgment; returns its row id."""
        return self.add_many([judgment])[0]

    def add_many(self, judgments: Iterable[Judgment]) -> list[int]:
        """Store several judgments in one transaction; returns their row ids in order."""
        ids = []
        with self._connect() as db:
            for j in judgments:
                cursor = db.execute(
                    "INSERT INTO judgments (reference_id, image_a, image_b, choice, rater, record)"
                    " VALUES (?,?,?,?,?,?)",
                    (j.reference_id, j.image_a, j.image_b, j.choice, j.rater, j.model_dump_json()),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def judgments(self, *, rater: str | None = None) -> list[Judgment]:
        """Every stored judgment in the order stored (one rater's, with ``rater``)."""
        query, args = "SELECT record FROM judgments", tuple[str, ...]()
        if rater is not None:
            query, args = query + " WHERE rater = ?", (rater,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id", args).fetchall()
        return [Judgment.model_validate_json(row[0]) for row in rows]


def read_judgments_file(path: str | os.PathLike[str]) -> list[Judgment]:
    """Read judgments from a ``.csv`` (header row) or ``.jsonl`` file made elsewhere.

    Every row is checked before any is returned: a bad row raises
    :class:`~imagerepainter.errors.ConfigurationError` naming its line, so nothing is half imported.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    rows: list[tuple[int, dict[str, object]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = [(n + 2, {k: v for k, v in row.items() if v not in (None, "")}) for n, row in enumerate(reader)]
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ConfigurationError(f"{path}:{n}: not JSON ({exc.msg}).") from None
    else:
        raise ConfigurationError(f"{path}: judgments are read from .csv or .jsonl files.")
    out = []
    for number, row in rows:
        row.setdefault("source", f"import:{path.name}")
        try:
            out.append(Judgment.model_validate(row))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"{path}:{number}: {problems}.") from None
    return out


def export_judgments(judgments: Iterable[Judgment], path: str | os.PathLike[str]) -> Path:
    """Write judgments as ``.csv`` or ``.jsonl`` (by the file's suffix), readable by :func:`read_judgments_file`."""
    path = Path(path)
    items = list(judgments)
    if path.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(Judgment.model_fields))
        writer.writeheader()
        for j in items:
            writer.writerow({k: ("" if v is None else v) for k, v in j.model_dump().items()})
        path.write_text(buffer.getvalue(), encoding="utf-8")
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        path.write_text("".join(j.model_dump_json() + "\n" for j in items), encoding="utf-8")
    else:
        raise ConfigurationError(f"{path}: judgments are written as .csv or .jsonl files.")
    return path
