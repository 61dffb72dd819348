"""Run folders: everything a person or a program needs after a run, written as it goes.

Layout of a run folder::

    reference.png          the (normalised) reference
    images/<sha256>.png    every candidate image (content-addressed; run.json maps them)
    run.json               config, backend specs and versions, every prompt, seed, score,
                           critique, stop reason, usage, timings; rewritten after each round
    checkpoint.sqlite      the LangGraph checkpoints that ``resume`` continues from
    history.sqlite         each round, critique and model call, written once (a LangGraph store)
    report.html            the self-contained report (written after each round too)
    run.lock               held (an OS lock) by the one process working in the folder

One process at a time works in a folder: ``run`` and ``resume`` hold an OS lock on
``run.lock`` for the run's life (released by the OS however the process ends), and a second
process is refused with the holder's pid. Ctrl-C or SIGTERM stop a run promptly even while a
model request hangs: the run executes in a worker thread and the calling thread only waits.

A crash loses nothing already done: images are written before the state that refers to
them is checkpointed, each round's record before the checkpoint that counts it, and
``run.json`` is replaced atomically. A process killed inside one of those atomic writes leaves
a hidden temporary file (``.<name>.<hex>.tmp``); the next ``run`` or ``resume`` of the folder
deletes such leftovers once it holds the lock.

Example:
    >>> import tempfile
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> folder = RunFolder(tempfile.mkdtemp())
    >>> specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    >>> reference = render_scene(random_scene(1))
    >>> result = folder.run(specs, reference, overrides={"max_rounds": 2})
    >>> sorted(p.name for p in folder.path.iterdir())
    ['checkpoint.sqlite', 'history.sqlite', 'images', 'reference.png', 'report.html', 'run.json', 'run.lock']
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import queue
import shlex
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .._files import atomic_write, remove_stale_temporaries
from .._imports import Need
from .._secrets import redact, refuse_credentials
from .._sqlite import check_database
from ..backends.registry import check_backends, check_installed
from ..config import RepainterConfig
from ..errors import ConfigurationError, RepainterError, ThreadInUseError
from ..images import DirectoryImageStore, ImageInput, image_sha256
from ..loop.graph import ROUND_CLOSING_NODE
from ..loop.sizing import check_run_inputs
from ..repainter import Repainter, RepaintEvent
from ..results import RepaintResult
from .record import RunRecord, RunStatus

__all__ = ["BackendSpecs", "RUN_FILE", "RunFolder", "RunRecord", "RunStatus"]

RUN_FILE = "run.json"
REFERENCE_FILE = "reference.png"
CHECKPOINT_FILE = "checkpoint.sqlite"
HISTORY_FILE = "history.sqlite"
REPORT_FILE = "report.html"
LOCK_FILE = "run.lock"
_FOLDER_NEEDS = Need("a run folder", ("langgraph.checkpoint.sqlite", "langgraph.store.sqlite"), "cli")
"""The SQLite checkpointer and store that make a run folder resumable."""
_STOP_GRACE_S = 2.0
"""How long an interrupted run waits for its worker to stop before leaving it behind."""
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


_SPEC_FIELDS = frozenset(f.name for f in fields(BackendSpecs))


def _refuse_credentials(specs: BackendSpecs) -> None:
    """Refuse specs that carry a credential (:func:`~imagerepainter._secrets.spec_credential`):
    ``run.json`` records them, so it would be saved. The message never repeats the value."""
    labelled = {"MLLM": specs.mllm, "text-to-image": specs.t2i, "scorer": specs.scorer}
    refuse_credentials(labelled, recorded_in=f"Run folders record the specs in {RUN_FILE}")


def _check_installed(specs: BackendSpecs, build: Callable[..., Repainter] | None) -> None:
    """Check the specs (a typo is named as one), then name every missing extra (the backends' and
    the folder's) in one error, before anything is created.

    A ``build`` function may pass objects instead of what the specs name: then only the folder's
    own packages are checked.
    """
    if build is None:
        check_backends(mllm=specs.mllm, t2i=specs.t2i, scorer=specs.scorer, also=(_FOLDER_NEEDS,))
    else:
        check_installed(also=(_FOLDER_NEEDS,))


def _resumed(kept: RepaintResult | None, *, finished: bool) -> RepaintEvent:
    """The ``"resumed"`` event: what a resume keeps (``kept``: the run as far as it got, if anywhere)."""
    rounds, usage = (len(kept.rounds), kept.usage) if kept else (0, {})
    kept_counts = {"rounds": rounds, "images": usage.get("images", 0), "mllm_calls": usage.get("mllm_calls", 0)}
    return RepaintEvent("resumed", round=None if finished else rounds + 1, data={"finished": finished, **kept_counts})


def _record_text(record: dict[str, Any]) -> str:
    """``record`` checked by :class:`RunRecord`, as JSON; or a ConfigurationError: NaN, infinity and
    objects are not valid JSON."""
    try:
        return json.dumps(RunRecord.model_validate(record).to_json(), indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a pydantic ValidationError is a ValueError
        raise ConfigurationError(f"The run's settings cannot be saved in {RUN_FILE}: {exc}.") from None


def _create_history(store_mod: Any, path: Path) -> None:
    """Create the history database in a temporary file, then rename it into place.

    The store's migrations are separate statements, so a process killed during them would
    leave a half-migrated database that the next setup cannot finish; a renamed file is
    either absent or complete.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        store_mod.SqliteStore(conn).setup()
    finally:
        conn.close()
    os.replace(tmp, path)


class RunFolder:
    """One run's folder: creates it, runs into it, and resumes from it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.left_running = False
        """True when a stopped run left a worker blocked in a backend call (e.g. a request that never
        returns); the folder is already marked, and the process should exit (the command line
        does, with ``os._exit``) instead of waiting for that call."""

    @property
    def record_path(self) -> Path:
        return self.path / RUN_FILE

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def read_record(self) -> dict[str, Any]:
        """The current ``run.json``, checked to be the record of a run.

        Raises:
            ConfigurationError: the folder holds no ``run.json`` (the message says whether a run
                stopped there before it started), or one that is empty, corrupt or not a run's.
        """
        where = str(self.path)
        if not self.record_path.is_file():
            if self.path.is_dir() and any(p.suffix == ".tmp" for p in self.path.iterdir()):
                raise ConfigurationError(
                    f"The run in {where!r} stopped before it started (it never wrote {RUN_FILE}), so there is "
                    f"nothing to resume: start it again with `imagerepainter run REFERENCE --out {where}`."
                )
            raise ConfigurationError(f"{where!r} is not a run folder (no {RUN_FILE}).")
        try:
            record = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigurationError(
                f"{where!r} is not a readable run folder: its {RUN_FILE} is empty or corrupt ({exc})."
            ) from None
        specs = record.get("specs") if isinstance(record, dict) else None
        if (
            not isinstance(specs, dict)
            or not all(isinstance(specs.get(k), str) for k in ("mllm", "t2i", "scorer"))
            or not isinstance(record.get("thread_id"), str)
        ):
            raise ConfigurationError(
                f"{where!r} is not a readable run folder: its {RUN_FILE} lacks the backend specs or thread id."
            )
        try:
            return RunRecord.model_validate(record).to_json()
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(
                f"{where!r} is not a readable run folder: its {RUN_FILE} is not a run's ({problems})."
            ) from None

    @contextlib.contextmanager
    def _repainter(
        self, specs: BackendSpecs, build: Callable[..., Repainter] | None, config: RepainterConfig | None = None
    ) -> Iterator[Repainter]:
        from .._imports import require

        sqlite_mod = require("langgraph.checkpoint.sqlite", extra="cli", purpose="resumable run folders")
        store_mod = require("langgraph.store.sqlite", extra="cli", purpose="resumable run folders")
        history_path = self.path / HISTORY_FILE
        check_database(self.path / CHECKPOINT_FILE, "the run's checkpoints")  # damaged: a one-line error
        check_database(history_path, "the run's history")
        if not history_path.exists():
            _create_history(store_mod, history_path)
        conn = sqlite3.connect(self.path / CHECKPOINT_FILE, check_same_thread=False)
        history_conn = sqlite3.connect(history_path, check_same_thread=False, isolation_level=None)
        try:
            saver = sqlite_mod.SqliteSaver(conn)
            history = store_mod.SqliteStore(history_conn)
            history.setup()  # already migrated: a no-op
            store = DirectoryImageStore(self.path / "images")
            factory = build or Repainter
            settings: dict[str, Any] = {} if config is None else {"config": config}  # a run's, validated once
            rp = factory(
                mllm=specs.mllm,
                t2i=specs.t2i,
                scorer=specs.scorer,
                preset=specs.preset,
                **settings,
                store=store,
                checkpointer=saver,
                history=history,
                durability="sync",
            )
            try:
                yield rp
            finally:
                if not self.left_running:  # a worker left behind still uses them: the process's exit ends it
                    rp.close()
                    store.compact()  # every image a PNG once the run stops, however it stopped
        finally:
            if not self.left_running:  # a worker left behind may still use them; exiting closes them safely
                history_conn.close()
                conn.close()

    @contextlib.contextmanager
    def _lock(self, thread_id: str) -> Iterator[None]:
        """Hold ``run.lock`` for the run's life, or refuse: one process at a time works in a folder.

        The lock is ``flock``'s: the OS releases it however the process ends (even SIGKILL), so
        the claim of a process that died is taken over with nothing to clean up. The holder
        writes its pid and host into the file for the refusal's message.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            yield
            return
        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot write to the run folder {str(self.path)!r} ({exc.strerror or exc}); a run needs to lock it."
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
                pid, host = [*holder, "unknown", "unknown"][:2]
                raise ThreadInUseError(
                    f"The run in {str(self.path)!r} is in progress (pid {pid}, host {host}); wait for it or stop it.",
                    thread_id=thread_id,
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            self._remove_stale_temporaries(time.time())
            yield
        finally:
            os.close(fd)  # releases the lock (the file stays: removing it could let two processes lock)

    def _remove_stale_temporaries(self, locked_at: float) -> None:
        """Delete what writers killed mid-write left (hidden ``.*.tmp`` files) in the folder and ``images/``.

        Called with the lock held, so no other process writes here; files modified since the lock
        was taken are this process's own and stay.
        """
        for folder in (self.path, self.path / "images"):
            remove_stale_temporaries(folder, older_than=locked_at)

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
        extra: dict[str, Any] | None = None,
        unique: bool = False,
    ) -> RepaintResult:
        """Run into this folder (which must be new or empty) and return the result.

        Everything that can be checked is checked before anything is created: the settings
        (``overrides`` against the preset's config), the prompt, the reference, and the specs,
        which must hold no credentials because ``run.json`` records them. Then the run claims
        the folder atomically: ``run.json`` comes into being with one hard link, which fails if
        another run got there first, so two processes can never share a folder. A run that
        fails before anything was paid for (no model call made, no image rendered, e.g. the
        scorer's model cannot be loaded) removes what it created, so the same folder can be
        used again; a folder holding paid-for work is never removed.

        Args:
            specs: The backends, saved so :meth:`resume` can rebuild them.
            reference: The reference image (path, bytes or PIL image).
            prompt: Start from this prompt instead of describing the reference.
            overrides: Settings for this run (e.g. ``{"max_rounds": 3}``).
            on_event: Called with every :class:`RepaintEvent`.
            build: Replaces the ``Repainter`` constructor (it receives the same keyword
                arguments), e.g. to pass backend objects that specs cannot express.
            extra: More keys for ``run.json``, such as the demo's hidden scene (JSON values).
            unique: Take the path as a suggestion: use the first of ``path``, ``path-2``,
                ``path-3``, ... that this call creates itself (``self.path`` becomes it). Runs
                started at the same moment with the same suggestion get different folders.

        Raises:
            ConfigurationError: a setting, the prompt or a spec is invalid, or the folder is not
                new or empty, cannot be created, or was claimed by another run.
            InvalidImageError: the reference cannot be used.
        """
        overrides = dict(overrides or {})
        cfg = RepainterConfig.from_preset(specs.preset).with_overrides(**overrides)  # validated here, once
        image = check_run_inputs(cfg, reference, prompt)
        _refuse_credentials(specs)
        _check_installed(specs, build)
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
        if clash := set(extra or {}) & set(record):
            raise ConfigurationError(f"extra must not replace the keys {sorted(clash)} of {RUN_FILE}.")
        record.update(extra or {})
        text = _record_text(record)
        created = self._make_folder(unique)
        before = {p.name for p in self.path.iterdir()}  # leftovers (*.tmp) of a run that never started
        with self._lock(thread_id):
            try:
                self._claim(text, image, thread_id, created)
            except ConfigurationError:  # another run's folder: leave no lock file of ours in it
                if LOCK_FILE not in before:
                    (self.path / LOCK_FILE).unlink(missing_ok=True)
                    if created:
                        with contextlib.suppress(OSError):
                            self.path.rmdir()  # only if empty
                raise
            return self._run_claimed(specs, image, prompt, cfg, record, on_event, build, created, before)

    def _run_claimed(
        self,
        specs: BackendSpecs,
        image: Any,
        prompt: str | None,
        cfg: RepainterConfig,
        record: dict[str, Any],
        on_event: Callable[[RepaintEvent], None] | None,
        build: Callable[..., Repainter] | None,
        created: bool,
        before: set[str],
    ) -> RepaintResult:
        thread_id = record["thread_id"]
        seen_event = False

        def watch(event: RepaintEvent) -> None:
            nonlocal seen_event
            seen_event = True
            if on_event is not None:
                on_event(event)

        with contextlib.ExitStack() as stack:
            try:
                rp = stack.enter_context(self._repainter(specs, build, cfg))
            except BaseException:  # the backends could not be built: nothing ran, leave nothing behind
                stack.close()
                self._remove_created(created, before)
                raise
            stop = threading.Event()
            try:  # the Repainter holds the settings
                events = rp.stream(image, prompt=prompt, thread_id=thread_id, stop=stop)
                return self._drive(rp, events, stop, record, watch)
            except Exception:  # a failure before anything was paid for: leave nothing behind (Ctrl-C keeps it, marked)
                if not seen_event and self._nothing_paid_for(rp, thread_id, image_sha256(image)):
                    stack.close()
                    self._remove_created(created, before)
                raise

    def _make_folder(self, unique: bool) -> bool:
        """Create the run folder; True when this call created it, False when it existed (empty)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if unique:
                base = self.path
                for n in itertools.count(1):
                    self.path = base if n == 1 else base.with_name(f"{base.name}-{n}")
                    with contextlib.suppress(FileExistsError):
                        self.path.mkdir()  # atomic: exactly one caller creates a given name
                        return True
            self._check_usable()
            try:
                self.path.mkdir()
                return True
            except FileExistsError:  # created since the check: usable if it is still an empty folder
                self._check_usable()
                return False
        except OSError as exc:
            blocked = isinstance(exc, (FileExistsError, NotADirectoryError))
            reason = "a file is in the way" if blocked else (exc.strerror or str(exc))
            raise ConfigurationError(
                f"Cannot create the run folder {str(self.path)!r}: {reason}. Choose another --out."
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends

    def _check_usable(self) -> None:
        """Refuse a path that is a file, or a folder holding anything but ``*.tmp`` leftovers."""
        if self.path.exists() and not self.path.is_dir():
            raise ConfigurationError(f"{str(self.path)!r} exists and is not a folder. Choose another --out.")
        if self.path.is_dir() and any(p.suffix != ".tmp" for p in self.path.iterdir()):
            raise ConfigurationError(
                f"The run folder {str(self.path)!r} is not empty. Choose a new --out, or resume it."
            )

    def _claim(self, text: str, image: Any, thread_id: str, created: bool) -> None:
        """Write the reference and ``run.json``, claiming the folder for this run only.

        Order matters for a crash at any moment: the reference is complete on disk (under a
        temporary name) before the record that makes the folder resumable exists, and takes its
        final name after it. Temporary names carry the thread id, so runs never share one.
        """
        reference_tmp = self._reference_tmp(thread_id)
        record_tmp = self.path / f"{RUN_FILE}.{thread_id}.tmp"
        try:
            try:
                image.save(reference_tmp, format="PNG")
                record_tmp.write_text(text, encoding="utf-8")
                try:
                    os.link(record_tmp, self.record_path)  # atomic, and fails if run.json exists
                except FileExistsError:
                    raise
                except OSError:  # a filesystem without hard links: an exclusive create instead
                    with open(self.record_path, "x", encoding="utf-8") as fh:
                        fh.write(text)
            finally:
                record_tmp.unlink(missing_ok=True)
        except OSError as exc:
            reference_tmp.unlink(missing_ok=True)
            if created:
                with contextlib.suppress(OSError):
                    self.path.rmdir()  # only if empty: never what another run put there
            if isinstance(exc, FileExistsError):
                raise ConfigurationError(
                    f"Another run claimed the run folder {str(self.path)!r} first. Choose another --out."
                ) from None
            raise ConfigurationError(f"Cannot write to the run folder {str(self.path)!r}: {exc}.") from None
        os.replace(reference_tmp, self.path / REFERENCE_FILE)

    def _reference_tmp(self, thread_id: str) -> Path:
        return self.path / f"{REFERENCE_FILE}.{thread_id}.tmp"

    def _nothing_paid_for(self, rp: Repainter, thread_id: str, reference_sha: str) -> bool:
        """True when the run failed before any model call or rendered image.

        The first node ("start") calls nothing paid for; if the thread never got past it and
        the image store holds only the reference, removing the folder loses nothing.
        """
        with contextlib.suppress(Exception):
            snapshot = rp.as_graph().get_state({"configurable": {"thread_id": thread_id}})
            if snapshot.values and not set(snapshot.next) <= {"start"}:
                return False
            images = self.path / "images"
            return {p.stem for p in images.iterdir() if not p.name.startswith(".")} <= {reference_sha}
        return False

    def _remove_created(self, created: bool, before: set[str]) -> None:
        """Remove what this run created: the folder itself, or the entries it added to an empty one."""
        if created:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for entry in self.path.iterdir():
            if entry.name not in before:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def resume(
        self,
        *,
        on_event: Callable[[RepaintEvent], None] | None = None,
        build: Callable[..., Repainter] | None = None,
        review: Any = None,
    ) -> RepaintResult:
        """Continue the interrupted run in this folder from its last checkpoint.

        A run paused for a person's review (status ``"paused"``, the ``review`` setting) goes on
        with ``review``, their answer (see :meth:`Repainter.resume`).
        Before anything else, ``on_event`` gets a ``"resumed"`` :class:`RepaintEvent` saying what
        is kept: ``data`` has ``finished`` (True: the run had already finished, nothing is built or
        called, and its result is returned), ``rounds`` (finished rounds kept), ``images`` and
        ``mllm_calls`` (paid for and kept); ``round`` is the round the run continues with.

        Raises:
            ThreadInUseError: another process is working in this folder now (its pid is named).
            ReviewError: the run is paused and ``review`` is missing or invalid, or ``review`` is
                given for a run that is not paused (nothing was called or changed).
        """
        record = self.read_record()
        if record.get("status") == "finished" and "result" in record:
            return self._already_finished(self.result(), on_event)  # nothing built, nothing called
        with self._lock(record["thread_id"]):
            return self._resume_locked(on_event, build, review)

    @staticmethod
    def _already_finished(result: RepaintResult, on_event: Callable[[RepaintEvent], None] | None) -> RepaintResult:
        if on_event is not None:
            on_event(_resumed(result, finished=True))
        return result

    def _resume_locked(
        self, on_event: Callable[[RepaintEvent], None] | None, build: Callable[..., Repainter] | None, review: Any
    ) -> RepaintResult:
        record = self.read_record()  # again: the process that held the lock may have changed it
        if record.get("status") == "finished" and "result" in record:
            return self._already_finished(self.result(), on_event)
        specs = BackendSpecs(**{k: v for k, v in record["specs"].items() if k in _SPEC_FIELDS})
        thread_id = record["thread_id"]
        _check_installed(specs, build)
        with self._repainter(specs, build) as rp:
            status = rp.status(thread_id)
            rp.check_review_answer(thread_id, review)  # before the folder says it runs again
            if status == "not_started" and record.get("result", {}).get("rounds"):
                raise ConfigurationError(
                    f"The run in {str(self.path)!r} has recorded rounds but its checkpoints ({CHECKPOINT_FILE}) are "
                    f"missing, so it cannot be continued without paying again. Its rounds stay in {RUN_FILE}; "
                    "start a new run to go on."
                )
            record["status"] = "running"
            record.setdefault("resumed", []).append(datetime.now(UTC).isoformat(timespec="seconds"))
            if status == "not_started":  # stopped before the first checkpoint: start it, same thread
                reference = self.path / REFERENCE_FILE
                for leftover in (self._reference_tmp(thread_id), self.path / (REFERENCE_FILE + ".tmp")):
                    if leftover.exists() and not reference.exists():
                        os.replace(leftover, reference)
                if not reference.exists():
                    raise ConfigurationError(
                        f"The run in {str(self.path)!r} stopped before it started and its reference is missing; "
                        "start it again with a new --out."
                    )
                self._write_record(record)
                if on_event is not None:
                    on_event(_resumed(None, finished=False))
                stop = threading.Event()
                events = rp.stream(
                    reference,
                    prompt=record.get("prompt"),
                    thread_id=thread_id,
                    stop=stop,
                    **record.get("overrides", {}),
                )
                return self._drive(rp, events, stop, record, on_event)
            if status == "finished":  # killed after the last checkpoint, before run.json said so
                result = rp.result_of(thread_id)
                self._finish(record, result, "finished")
                return self._already_finished(result, on_event)
            self._write_record(record)
            if on_event is not None:
                on_event(_resumed(rp.result_of(thread_id), finished=False))
            stop = threading.Event()
            return self._drive(rp, rp.stream_resume(thread_id, review=review, stop=stop), stop, record, on_event)

    def _drive(
        self,
        rp: Repainter,
        events: Iterator[RepaintEvent],
        stop: threading.Event,
        record: dict[str, Any],
        on_event: Callable[[RepaintEvent], None] | None,
    ) -> RepaintResult:
        """Run ``events`` to the end, keeping ``run.json`` and the report current, and mark how it ended.

        The events are produced in a worker thread, one at a time: the worker waits until this
        thread has handled an event before producing the next, so the run is paused exactly as
        when iterating in place. This thread only waits (with a timeout, so Ctrl-C and SIGTERM
        reach it at once, even while a model request hangs).

        Stopping is ordered. On an interrupt this thread sets ``stop`` (the stream's, see
        :meth:`Repainter.stream`): the step in progress finishes and is checkpointed, the graph
        refuses to start the next one and ends through LangGraph's own error path, and the
        worker ends with it; the stream is never torn down under a running step. When the worker
        ends within ``_STOP_GRACE_S``, the backends, the image store and the databases are
        closed after it, in that order. When it is stuck in a backend call it is left behind (a
        daemon) with all of them open, and :attr:`left_running` says so. The folder is marked
        either way: every checkpoint is written atomically, so the last one is always whole.
        """
        thread_id = record["thread_id"]
        round_closed = False
        produced: queue.Queue[tuple[str, Any]] = queue.Queue()
        handled = threading.Semaphore(0)

        def produce() -> None:
            try:
                for event in events:
                    if stop.is_set():  # nobody handles it: the graph stops before its next step
                        continue
                    produced.put(("event", event))
                    handled.acquire()
                produced.put(("end", None))
            except BaseException as exc:  # handed to the waiting thread, which raises it
                produced.put(("error", exc))

        worker = threading.Thread(target=produce, name=f"imagerepainter-run-{thread_id[:8]}", daemon=True)
        try:
            worker.start()  # inside: an interrupt as it starts still stops it before the folder closes
            while True:
                try:
                    kind, item = produced.get(timeout=0.2)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise item
                if kind == "end":
                    raise RuntimeError("the run ended without a result")  # pragma: no cover
                event = item
                try:
                    if round_closed:  # keep run.json and the report current as rounds finish
                        self._snapshot(record, rp.result_of(thread_id), "running")
                        round_closed = False
                    # The score node closes a round; its events come before its checkpoint. With
                    # durability="sync" that checkpoint is saved before any later node runs, so the
                    # next event (from a later node) finds the round in the checkpointer.
                    round_closed = event.kind == "node" and event.data.get("node") == ROUND_CLOSING_NODE
                    if on_event is not None:
                        on_event(event)
                    if event.result is not None:  # the end, or a pause for review
                        self._finish(record, event.result, "paused" if event.kind == "review" else "finished")
                        result: RepaintResult = event.result
                        break
                finally:
                    handled.release()
            worker.join()  # the stream ends right after its result: let it finish before the folder closes
            return result
        except RepainterError as exc:
            self._stop(worker, stop, handled)
            self._mark(rp, record, "failed", error=redact(str(exc)))
            raise
        except BaseException:  # KeyboardInterrupt, SIGTERM: keep what is done, mark it resumable
            self._stop(worker, stop, handled)
            self._mark(rp, record, "interrupted")
            raise
        finally:
            stop.set()

    def _stop(self, worker: threading.Thread, stop: threading.Event, handled: threading.Semaphore) -> None:
        """Ask the run to stop before its next step and wait a little; note it when it is stuck in a call."""
        with contextlib.suppress(BaseException):  # a second Ctrl-C while stopping: stop waiting
            stop.set()
            handled.release()  # in case it waits for the event this thread did not finish handling
            worker.join(_STOP_GRACE_S)
        self.left_running = worker.is_alive()

    def _mark(self, rp: Repainter, record: dict[str, Any], status: RunStatus, error: str | None = None) -> None:
        """Record how a run ended early: with its result so far, or (before its first checkpoint)
        with the status alone. Never raises: the original error is what the caller must see."""
        try:
            self._snapshot(record, rp.result_of(record["thread_id"]), status, error=error)
        except Exception:
            with contextlib.suppress(Exception):
                self._write_record({**record, "status": status, **({"error": error} if error else {})})

    # ------------------------------------------------------------------ writing

    def _snapshot(
        self, record: dict[str, Any], result: RepaintResult, status: RunStatus, error: str | None = None
    ) -> None:
        record = dict(record, status=status, result=result.model_dump(mode="json"))
        if error:
            record["error"] = error
        self._write_record(record)
        resume = f"continue it with: imagerepainter resume {self.path}"
        notice = {
            "running": "This run is in progress; this report is rewritten after every round.",
            "interrupted": f"This run was interrupted; {resume}",
            "failed": f"This run failed: {error}. The finished rounds are kept; {resume}",
            "paused": "This run is paused for a person's review; answer it with "
            f"imagerepainter resume {shlex.quote(str(self.path))} --approve (or --prompt TEXT, --edits TEXT, --stop), "
            f"or RunFolder({str(self.path)!r}).resume(review=...).",
        }.get(status)
        self._write_report(result, notice)

    def _finish(self, record: dict[str, Any], result: RepaintResult, status: RunStatus) -> None:
        record.pop("error", None)
        self._snapshot(record, result, status)

    def _write_record(self, record: dict[str, Any]) -> None:
        atomic_write(self.record_path, _record_text(record))

    def _write_report(self, result: RepaintResult, notice: str | None) -> None:
        from ..report import write_report

        write_report(result, self.report_path, notice=notice)

    def result(self) -> RepaintResult:
        """The result recorded in ``run.json``, bound to this folder's images."""
        if "result" not in self.read_record():
            raise ConfigurationError(f"The run in {str(self.path)!r} has not finished a round yet.")
        return RepaintResult.load(self.path)
