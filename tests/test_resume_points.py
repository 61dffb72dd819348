"""Resume from every point where a crash can leave a run folder.

A process killed mid-run leaves its SQLite checkpoints at some checkpoint, with or without
the saved writes of the tasks that ran after it (LangGraph saves a task's writes as soon as
the task ends, and the next checkpoint once the whole step has ended). Cutting a finished
run's database back to each of those points reproduces every such crash deterministically;
resuming must then give exactly the uninterrupted result.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from imagerepainter.runs.folder import BackendSpecs, RunFolder
from imagerepainter.sandbox import random_scene, render_scene

SPECS = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")
SETTINGS = {"max_rounds": 3, "patience": None}


def _signature(record: dict) -> tuple:
    result = record["result"]
    candidates = [(r["index"], c["prompt"], c["seed"], c["score"]) for r in result["rounds"] for c in r["candidates"]]
    return candidates, result["stop_reason"], result["best"]["seed"]


def _checkpoints(db) -> list:
    """Every checkpoint of the database, oldest first, read through the checkpointer's own API."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(db, check_same_thread=False)
    try:
        return list(reversed(list(SqliteSaver(conn).list(None))))
    finally:
        conn.close()


def _cut(db, keep: int, *, keep_writes: bool) -> None:
    """Leave the first ``keep`` checkpoints; the last kept one keeps its tasks' writes or not.

    The kept checkpoints and writes are saved again into a new database through the
    checkpointer's API (``put``, ``put_writes``), as a process killed at that point left them.
    """
    from langgraph.checkpoint.sqlite import SqliteSaver

    kept = _checkpoints(db)[:keep]
    fresh = db.with_name("cut.sqlite")
    conn = sqlite3.connect(fresh, check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        for i, saved in enumerate(kept):
            thread = {k: saved.config["configurable"][k] for k in ("thread_id", "checkpoint_ns")}
            parent = saved.parent_config or {"configurable": thread}
            config = saver.put(parent, saved.checkpoint, saved.metadata, saved.checkpoint["channel_versions"])
            if i < len(kept) - 1 or keep_writes:
                by_task: dict[str, list] = {}
                for task_id, channel, value in saved.pending_writes or []:
                    by_task.setdefault(task_id, []).append((channel, value))
                for task_id, writes in by_task.items():
                    saver.put_writes(config, writes, task_id)
    finally:
        conn.close()
    fresh.replace(db)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole") / "run"
    RunFolder(folder).run(SPECS, render_scene(random_scene(5), seed=5), overrides=SETTINGS)
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished" and len(record["result"]["rounds"]) == 3
    return folder, record


def test_resume_from_every_crash_point_gives_the_uninterrupted_result(finished_run, tmp_path):
    folder, whole = finished_run
    total = len(_checkpoints(folder / "checkpoint.sqlite"))
    assert total > 3 * 4  # several steps a round: the cut points below fall at every node boundary
    points = [(keep, writes) for keep in range(total + 1) for writes in (True, False) if keep or writes]
    for keep, keep_writes in points:
        crashed = tmp_path / f"cut{keep}{'w' if keep_writes else ''}"
        shutil.copytree(folder, crashed)
        _cut(crashed / "checkpoint.sqlite", keep, keep_writes=keep_writes)
        record = json.loads((crashed / "run.json").read_text())
        record = {k: v for k, v in record.items() if k != "result"} | {"status": "running"}
        (crashed / "run.json").write_text(json.dumps(record))

        RunFolder(crashed).resume()
        after = json.loads((crashed / "run.json").read_text())
        assert after["status"] == "finished", (keep, keep_writes)
        assert _signature(after) == _signature(whole), (keep, keep_writes)
        shutil.rmtree(crashed)


def test_run_json_and_report_hold_each_round_once_it_is_checkpointed(tmp_path):
    folder = tmp_path / "live"
    seen = []

    def watch(event):
        if event.kind == "critique":  # the request after round N went out and came back
            record = json.loads((folder / "run.json").read_text())
            seen.append((event.round, len(record["result"]["rounds"]), record["result"]["finished"]))

    result = RunFolder(folder).run(SPECS, render_scene(random_scene(8), seed=8), overrides=SETTINGS, on_event=watch)
    assert seen == [(n, n, False) for n in range(1, len(result.rounds))]
    report = (folder / "report.html").read_text()
    assert result.finished and "not finished" not in report and "in progress" not in report


def test_resume_of_a_finished_folder_builds_nothing_and_a_lost_checkpoint_is_refused(finished_run, tmp_path):
    from imagerepainter.errors import ConfigurationError

    folder, whole = finished_run
    done = tmp_path / "done"
    shutil.copytree(folder, done)
    (done / "checkpoint.sqlite").unlink()

    def no_backends(**kwargs):
        raise AssertionError("a finished run must not build backends")

    assert _signature(json.loads((done / "run.json").read_text())) == _signature(whole)
    result = RunFolder(done).resume(build=no_backends)
    assert result.finished and len(result.rounds) == 3
    # a run whose rounds are recorded but whose checkpoints are gone would be paid for again: refused
    record = json.loads((done / "run.json").read_text()) | {"status": "running"}
    (done / "run.json").write_text(json.dumps(record))
    with pytest.raises(ConfigurationError, match=r"checkpoints .* are missing"):
        RunFolder(done).resume()


def test_an_interrupt_before_the_first_checkpoint_still_marks_the_folder(tmp_path, monkeypatch):
    from imagerepainter import Repainter
    from imagerepainter.errors import ConfigurationError

    def no_checkpoint_yet(self, thread_id):
        raise ConfigurationError("No checkpoint")

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt
        yield  # a generator, like the real stream

    monkeypatch.setattr(Repainter, "result_of", no_checkpoint_yet)
    monkeypatch.setattr(Repainter, "stream", interrupted)
    folder = tmp_path / "early"
    with pytest.raises(KeyboardInterrupt):
        RunFolder(folder).run(SPECS, render_scene(random_scene(5), seed=5), overrides=SETTINGS)
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted"


def test_a_run_folder_and_a_saved_result_load_the_same_way(finished_run, tmp_path):
    from imagerepainter import RepaintResult
    from imagerepainter.errors import ConfigurationError

    folder, whole = finished_run
    from_folder = RepaintResult.load(folder)  # run.json holds the same JSON a saved result does
    assert from_folder.model_dump(mode="json") == whole["result"]
    from_folder.save(tmp_path / "saved")
    again = RepaintResult.load(tmp_path / "saved")
    assert again.model_dump() == from_folder.model_dump() and again.best.image.size == from_folder.best.image.size
    with pytest.raises(ConfigurationError, match=r"No result\.json or run\.json"):
        RepaintResult.load(tmp_path)


def test_a_run_folders_settings_are_validated_once(tmp_path, monkeypatch):
    from imagerepainter.config import RepainterConfig

    seen = []
    validated, parse = RepainterConfig.validated.__func__, RepainterConfig.model_validate_json.__func__
    monkeypatch.setattr(RepainterConfig, "validated", classmethod(lambda cls, d: seen.append(d) or validated(cls, d)))
    monkeypatch.setattr(
        RepainterConfig, "model_validate_json", classmethod(lambda cls, d, **k: seen.append(d) or parse(cls, d, **k))
    )
    result = RunFolder(tmp_path / "run").run(SPECS, render_scene(random_scene(2), seed=2), overrides=SETTINGS)
    assert result.finished and result.config.max_rounds == 3
    assert len(seen) == 1  # where the folder checks its input; the Repainter and its nodes take it as it is


_KILLED_MID_TRANSACTION = """
import os, signal, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)  # a new database: rollback journal, as before setup()
conn.execute("PRAGMA cache_size=1")  # spill mid-transaction: the journal becomes hot
conn.execute("BEGIN")
conn.execute("CREATE TABLE half (x BLOB)")
for _ in range(100):
    conn.execute("INSERT INTO half VALUES (?)", (os.urandom(4000),))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_resume_after_a_kill_while_the_checkpoints_were_created_is_not_taken_for_damage(finished_run, tmp_path):
    """A run killed while its checkpoint database was being set up leaves a hot journal. Opening it
    read-only fails ("attempt to write a readonly database"); that is a crash to recover from."""
    import subprocess
    import sys

    folder, whole = finished_run
    crashed = tmp_path / "crashed"
    shutil.copytree(folder, crashed)
    db = crashed / "checkpoint.sqlite"
    for leftover in crashed.glob("checkpoint.sqlite*"):
        leftover.unlink()
    record = {k: v for k, v in json.loads((crashed / "run.json").read_text()).items() if k != "result"}
    (crashed / "run.json").write_text(json.dumps(record | {"status": "running"}))  # no round yet
    subprocess.run([sys.executable, "-c", _KILLED_MID_TRANSACTION, str(db)], check=False, timeout=60)
    assert db.with_name("checkpoint.sqlite-journal").stat().st_size > 0  # hot: the kill left it
    RunFolder(crashed).resume()
    assert not db.with_name("checkpoint.sqlite-journal").exists()
    assert _signature(json.loads((crashed / "run.json").read_text())) == _signature(whole)


def test_resume_deletes_what_a_write_killed_mid_way_left_and_nothing_else(finished_run, tmp_path):
    """A kill inside an atomic write leaves a hidden, often empty, ``.tmp`` file; the next resume removes it."""
    import os
    import time

    folder, whole = finished_run
    crashed = tmp_path / "killed-mid-write"
    shutil.copytree(folder, crashed)
    _cut(crashed / "checkpoint.sqlite", len(_checkpoints(crashed / "checkpoint.sqlite")) // 2, keep_writes=True)
    record = json.loads((crashed / "run.json").read_text())
    (crashed / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "result"}))
    images = crashed / "images"
    sha = next(images.glob("*.png")).stem
    stale = [images / f".{sha}.bmp.0123456789ab.tmp", crashed / ".run.json.ba9876543210.tmp"]
    for path in stale:
        path.write_bytes(b"")
        os.utime(path, (time.time() - 60, time.time() - 60))
    others = [images / "notes.tmp", images / ".keep", crashed / "reference.png.tmp.bak"]
    for path in others:
        path.write_text("not a leftover of an atomic write")
    started_after = images / f".{sha}.png.abcdefabcdef.tmp"  # a write that began after the lock was taken
    started_after.write_bytes(b"")
    os.utime(started_after, (time.time() + 3600, time.time() + 3600))

    RunFolder(crashed).resume()
    assert _signature(json.loads((crashed / "run.json").read_text())) == _signature(whole)
    assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in [*others, started_after])
