"""Run folders: everything a person or a program needs after a run, written as it goes.

Layout of a run folder::

    reference.png          the (normalised) reference
    images/<sha256>.png    every candidate image (content-addressed; run.json maps them)
    run.json               config, backend specs and versions, every prompt, seed, score,
                           critique, stop reason, usage, timings; rewritten after each round
    checkpoint.sqlite      the LangGraph checkpoints that ``resume`` continues from
    report.html            the self-contained report (written after each round too)

A crash loses nothing already done: images are written before the state that refers to
them is checkpointed, and ``run.json`` is replaced atomically.

Example:
    >>> import tempfile
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> folder = RunFolder(tempfile.mkdtemp())
    >>> specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    >>> reference = render_scene(random_scene(1))
    >>> result = folder.run(specs, reference, overrides={"max_rounds": 2})
    >>> sorted(p.name for p in folder.path.iterdir())
    ['checkpoint.sqlite', 'images', 'reference.png', 'report.html', 'run.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ._secrets import redact
from .errors import ConfigurationError, RepainterError
from .images import DirectoryImageStore, ImageInput, load_image
from .repainter import Repainter, RepaintEvent
from .results import RepaintResult

__all__ = ["BackendSpecs", "RUN_FILE", "RunFolder"]

RUN_FILE = "run.json"
REFERENCE_FILE = "reference.png"
CHECKPOINT_FILE = "checkpoint.sqlite"
REPORT_FILE = "report.html"
_VERSIONED = (
    "imagerepainter",
    "langgraph",
    "langchain-core",
    "langchain-openai",
    "openai",
    "diffusers",
    "transformers",
    "torch",
    "torchmetrics",
    "pillow",
    "numpy",
    "pydantic",
)


@dataclass(frozen=True)
class BackendSpecs:
    """The spec strings of a run's backends, saved so ``resume`` can rebuild them.

    Specs hold no secrets: keys come from the environment (``OPENAI_API_KEY``).
    """

    mllm: str
    t2i: str
    scorer: str
    preset: str = "default"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


class RunFolder:
    """One run's folder: creates it, runs into it, and resumes from it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def record_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def read_record(self) -> dict[str, Any]:
        """The current ``run.json``."""
        if not self.record_path.exists():
            raise ConfigurationError(f"{str(self.path)!r} is not a run folder (no {RUN_FILE}).")
        return json.loads(self.record_path.read_text())

    @contextlib.contextmanager
    def _repainter(self, specs: BackendSpecs, build: Callable[..., Repainter] | None) -> Iterator[Repainter]:
        from ._imports import require

        sqlite_mod = require("langgraph.checkpoint.sqlite", extra="cli", purpose="resumable run folders")
        conn = sqlite3.connect(self.path / CHECKPOINT_FILE, check_same_thread=False)
        try:
            saver = sqlite_mod.SqliteSaver(conn)
            store = DirectoryImageStore(self.path / "images")
            factory = build or Repainter
            rp = factory(
                mllm=specs.mllm,
                t2i=specs.t2i,
                scorer=specs.scorer,
                preset=specs.preset,
                store=store,
                checkpointer=saver,
            )
            try:
                yield rp
            finally:
                rp.close()
        finally:
            conn.close()

    # ------------------------------------------------------------------ running

    def run(
        self,
        specs: BackendSpecs,
        reference: ImageInput,
        *,
        prompt: str | None = None,
        overrides: dict[str, Any] | None = None,
        on_event: Callable[[RepaintEvent], None] | None = None,
        build: Callable[..., Repainter] | None = None,
    ) -> RepaintResult:
        """Run into this folder (which must be new or empty) and return the result.

        ``build`` replaces the ``Repainter`` constructor (it receives the same keyword
        arguments), e.g. to pass backend objects that specs cannot express.
        """
        if self.path.exists() and any(p.suffix != ".tmp" for p in self.path.iterdir()):
            raise ConfigurationError(
                f"The run folder {str(self.path)!r} is not empty. Choose a new --out, or resume it."
            )
        overrides = dict(overrides or {})
        image = load_image(reference)  # fail on a bad reference before creating anything
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        thread_id = uuid.uuid4().hex
        record = {
            "status": "running",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "thread_id": thread_id,
            "specs": asdict(specs),
            "overrides": overrides,
            "prompt": prompt,
            "versions": _versions(),
        }
        # Order matters for a crash at any moment: the reference is complete on disk before the
        # record that makes the folder resumable exists, and takes its final name after it.
        tmp = self.path / (REFERENCE_FILE + ".tmp")
        image.save(tmp, format="PNG")
        self._write_record(record)
        os.replace(tmp, self.path / REFERENCE_FILE)
        with contextlib.ExitStack() as stack:
            try:
                rp = stack.enter_context(self._repainter(specs, build))
            except BaseException:  # the backends could not be built: nothing ran, leave nothing behind
                stack.close()
                if created:
                    shutil.rmtree(self.path, ignore_errors=True)
                raise
            events = rp.stream(image, prompt=prompt, thread_id=thread_id, **overrides)
            return self._drive(rp, events, record, on_event)

    def resume(
        self, *, on_event: Callable[[RepaintEvent], None] | None = None, build: Callable[..., Repainter] | None = None
    ) -> RepaintResult:
        """Continue the interrupted run in this folder from its last checkpoint."""
        record = self.read_record()
        specs = BackendSpecs(**record["specs"])
        thread_id = record["thread_id"]
        with self._repainter(specs, build) as rp:
            status = rp.status(thread_id)
            record["status"] = "running"
            record.setdefault("resumed", []).append(datetime.now(UTC).isoformat(timespec="seconds"))
            if status == "not_started":  # stopped before the first checkpoint: start it, same thread
                leftover = self.path / (REFERENCE_FILE + ".tmp")
                if leftover.exists() and not (self.path / REFERENCE_FILE).exists():
                    os.replace(leftover, self.path / REFERENCE_FILE)
                if not (self.path / REFERENCE_FILE).exists():
                    raise ConfigurationError(
                        f"The run in {str(self.path)!r} stopped before it started; start it again with a new --out."
                    )
                self._write_record(record)
                events = rp.stream(
                    self.path / REFERENCE_FILE,
                    prompt=record.get("prompt"),
                    thread_id=thread_id,
                    **record.get("overrides", {}),
                )
                return self._drive(rp, events, record, on_event)
            if status == "finished":  # killed after the last checkpoint, before run.json said so
                result = rp.result_of(thread_id)
                self._finish(record, result, "finished")
                return result
            self._write_record(record)
            return self._drive(rp, rp.stream_resume(thread_id), record, on_event)

    def _drive(
        self,
        rp: Repainter,
        events: Iterator[RepaintEvent],
        record: dict[str, Any],
        on_event: Callable[[RepaintEvent], None] | None,
    ) -> RepaintResult:
        thread_id = record["thread_id"]
        try:
            for event in events:
                if on_event is not None:
                    on_event(event)
                if event.kind == "round":  # keep run.json and the report current as rounds finish
                    self._snapshot(record, rp.result_of(thread_id), "running")
                if event.result is not None:
                    self._finish(record, event.result, "finished")
                    return event.result
        except RepainterError as exc:
            with contextlib.suppress(Exception):
                self._snapshot(record, rp.result_of(thread_id), "failed", error=redact(str(exc)))
            raise
        except BaseException:  # KeyboardInterrupt: keep what is done, mark it resumable
            with contextlib.suppress(Exception):
                self._snapshot(record, rp.result_of(thread_id), "interrupted")
            raise
        raise RuntimeError("the run ended without a result")  # pragma: no cover

    # ------------------------------------------------------------------ writing

    def _snapshot(self, record: dict[str, Any], result: RepaintResult, status: str, error: str | None = None) -> None:
        record = dict(record, status=status, result=result.model_dump(mode="json"))
        if error:
            record["error"] = error
        self._write_record(record)
        self._write_report(result)

    def _finish(self, record: dict[str, Any], result: RepaintResult, status: str) -> None:
        record.pop("error", None)
        self._snapshot(record, result, status)

    def _write_record(self, record: dict[str, Any]) -> None:
        tmp = self.record_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, self.record_path)

    def _write_report(self, result: RepaintResult) -> None:
        from .report import write_report

        write_report(result, self.report_path)

    def result(self) -> RepaintResult:
        """The result recorded in ``run.json``, bound to this folder's images."""
        record = self.read_record()
        if "result" not in record:
            raise ConfigurationError(f"The run in {str(self.path)!r} has not finished a round yet.")
        return RepaintResult.model_validate(record["result"]).bind(DirectoryImageStore(self.path / "images"))
