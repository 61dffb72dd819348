"""The results database of an evaluation: ``results.sqlite`` in its output folder.

Two tables:

* ``cases`` — one row per case, keyed by ``case_id`` (see :func:`case_key`), holding the
  :class:`~imagerepainter.bench.records.CaseResult` as JSON plus indexed columns;
* ``descriptions`` — the MLLM's description of each reference, keyed by (reference sha256,
  MLLM, prompt version, the settings that shape a description), so a reference is
  described once and every model and mode starts from the same prompt.

The database runs in WAL mode and every write is one short transaction on its own
connection, so several threads or processes can write the same file; a case's row is
written only once the case is complete (its best image is already on disk), so a run killed
at any point leaves only complete rows behind.

Example:
    >>> import tempfile
    >>> from imagerepainter.bench.records import CaseResult
    >>> db = ResultsStore(tempfile.mkdtemp())
    >>> db.put_case(CaseResult(case_id="c1", dataset="d", reference_id="a", reference_sha256="0" * 64,
    ...     model="m", model_spec="sandbox", mode="single", seed=0, status="ok", metrics={"paper": 0.5}))
    >>> db.case_status(["c1", "c2"])
    {'c1': 'ok'}
    >>> db.cases()[0].metrics
    {'paper': 0.5}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .records import CaseResult

__all__ = ["DATABASE_NAME", "ResultsStore", "case_key", "stable_hash"]

DATABASE_NAME = "results.sqlite"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    dataset TEXT NOT NULL,
    reference_id TEXT NOT NULL,
    reference_sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    mode TEXT NOT NULL,
    seed INTEGER NOT NULL,
    record TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cases_by_model ON cases (model, mode);
CREATE TABLE IF NOT EXISTS descriptions (
    key TEXT PRIMARY KEY,
    reference_sha256 TEXT NOT NULL,
    mllm TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    record TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


def stable_hash(value: Any) -> str:
    """SHA-256 of ``value``'s canonical JSON (sorted keys): the same data, the same hash.

    Example:
        >>> stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
        True
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def case_key(
    *,
    reference_sha256: str,
    model: str,
    model_spec: str,
    mode: str,
    metrics: Sequence[str],
    seed: int,
    config_hash: str,
    describer: str | None = None,
) -> str:
    """The ``case_id`` of a case: a hash of everything that decides its result.

    The model's name and spec (with its options), the mode, the metric set, the seed and a
    hash of the settings (loop config, MLLM, scorer, prompt version) are part of it; the other
    models of the evaluation are not, so adding a model leaves every existing case as it is.
    A named describer (``--mllm NAME=SPEC``) is part of it too; ``None`` (one unnamed MLLM, the
    :data:`~imagerepainter.bench.records.DEFAULT_DESCRIBER`) leaves the key as it always was.
    """
    fields: dict[str, Any] = {
        "reference": reference_sha256,
        "model": model,
        "spec": model_spec,
        "mode": mode,
        "metrics": sorted(metrics),
        "seed": seed,
        "config": config_hash,
    }
    if describer is not None:
        fields["describer"] = describer
    return stable_hash(fields)[:32]


class ResultsStore:
    """The ``results.sqlite`` database of one output folder (created on first use).

    Args:
        out: The evaluation's output folder.

    Raises:
        ConfigurationError: the file exists but is not a results database of this version.
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / DATABASE_NAME
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=60.0, isolation_level=None)) as init:
                init.execute("PRAGMA journal_mode=WAL")  # persistent; not allowed inside a transaction
            with self._connect() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(_SCHEMA_VERSION),))
                version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"{str(self.path)!r} is not a results database ({exc}); choose another --out folder."
            ) from None
        if version != str(_SCHEMA_VERSION):
            raise ConfigurationError(
                f"{str(self.path)!r} was written by another version of the benchmark (schema {version}); "
                "use a new --out folder."
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One short transaction on a fresh connection (safe across threads and processes)."""
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=60000")
            # WAL + NORMAL: a commit survives a crash or SIGKILL of the process (only a power cut
            # may lose the last commits) and costs no fsync per case.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # ------------------------------------------------------------------ cases

    def put_case(self, case: CaseResult) -> None:
        """Insert or replace the row of ``case``."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case.case_id,
                    case.status,
                    case.dataset,
                    case.reference_id,
                    case.reference_sha256,
                    case.model,
                    case.mode,
                    case.seed,
                    case.model_dump_json(),
                    time.time(),
                ),
            )

    def case_status(self, case_ids: Iterable[str]) -> dict[str, str]:
        """The stored status (``ok`` / ``failed`` / ``skipped``) of each of ``case_ids`` that has a row."""
        ids = list(case_ids)
        out: dict[str, str] = {}
        with self._connect() as db:
            for start in range(0, len(ids), 500):  # SQLite caps the number of parameters
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                out.update(db.execute(f"SELECT case_id, status FROM cases WHERE case_id IN ({marks})", chunk))
        return out

    def cases(self, case_ids: Iterable[str] | None = None) -> list[CaseResult]:
        """Every stored case (or those of ``case_ids``), ordered by dataset, model, mode, reference."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT case_id, record FROM cases ORDER BY dataset, model, mode, reference_id"
            ).fetchall()
        wanted = None if case_ids is None else set(case_ids)
        return [CaseResult.model_validate_json(record) for cid, record in rows if wanted is None or cid in wanted]

    # ------------------------------------------------------------------ descriptions

    def get_description(self, key: str) -> dict[str, Any] | None:
        """The stored description under ``key``, or ``None``."""
        with self._connect() as db:
            row = db.execute("SELECT record FROM descriptions WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put_description(
        self, key: str, *, reference_sha256: str, mllm: str, prompt_version: str, record: Mapping[str, Any]
    ) -> None:
        """Store a description (the first one stored under ``key`` wins)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO descriptions VALUES (?, ?, ?, ?, ?, ?)",
                (key, reference_sha256, mllm, prompt_version, json.dumps(dict(record)), time.time()),
            )

    def description_count(self) -> int:
        """How many descriptions are stored."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM descriptions").fetchone()[0])

    # ------------------------------------------------------------------ settings

    def set_meta(self, key: str, value: Any) -> None:
        """Remember a setting of the evaluation (e.g. the primary metric) as JSON."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A setting stored with :meth:`set_meta`, or ``default``."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])
