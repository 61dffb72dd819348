"""``run.json``, the record of a run folder, as one model: :class:`RunRecord`.

:class:`~imagerepainter.runs.folder.RunFolder` reads and writes ``run.json`` through it, so a
status is one of :data:`RunStatus` and the keys every record has are checked on both ways.

Example:
    >>> record = RunRecord.model_validate({"status": "running", "created": "2026-12-07T10:00:00+00:00",
    ...     "thread_id": "t1", "specs": {"mllm": "sandbox", "t2i": "sandbox", "scorer": "sandbox"},
    ...     "demo": {"seed": 7}})
    >>> record.status, record.model_dump(mode="json", exclude_unset=True)["demo"]
    ('running', {'seed': 7})
    >>> RunRecord.model_validate({**record.model_dump(), "status": "done"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for RunRecord
    ...
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["RunRecord", "RunStatus"]

RunStatus = Literal["running", "paused", "finished", "failed", "interrupted"]
"""Where a run folder's run stands: ``running`` (or killed while it ran), ``paused`` for a
person's review, ``finished``, ``failed`` (a backend error; resumable) or ``interrupted``."""


class RunRecord(BaseModel):
    """The keys of every ``run.json``; other keys (``extra=`` of ``RunFolder.run``) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    status: RunStatus
    created: str
    """When the folder was created (ISO 8601, UTC)."""
    thread_id: str
    specs: dict[str, Any]
    """The backend specs (:class:`~imagerepainter.runs.folder.BackendSpecs` as a dict)."""
    overrides: dict[str, Any] = {}
    prompt: str | None = None
    versions: dict[str, Any] = {}
    result: dict[str, Any] | None = None
    """The run as far as it got (:class:`~imagerepainter.results.RepaintResult` as JSON)."""
    error: str | None = None
    """Why a ``failed`` run failed (credentials redacted)."""

    def to_json(self) -> dict[str, Any]:
        """The record as ``run.json`` holds it: the keys that were set, in order, extra keys last."""
        return self.model_dump(mode="json", exclude_unset=True)
