"""SIGKILL through the command line at every node, then ``resume``: the uninterrupted result, nothing paid twice.

Each trial runs ``imagerepainter run`` (``imagerepainter.cli.main.main`` in a child process, see
``tests/crash_child.py``) with ``slow`` sandbox backends that log every model call, render and
scoring with its node before doing it; the trial kills the process once the log has its k-th
line, so the kill lands inside that call's node (describe, propose, generate, score, critique,
revise). k walks over the whole run, so the trials together cover every node.

All twenty run by default, as in CI (about a minute); trials past the third carry the ``soak``
marker, so ``pytest -m "not soak"`` keeps three for a quick local run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from imagerepainter.sandbox import random_scene, render_scene

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 20
DEFAULT_TRIALS = 3
DELAY = 0.05
"""Seconds each slowed call takes: the window in which its kill lands."""
ARGS = ("--mllm", "slow", "--t2i", "slow", "--scorer", "slow", "--preset", "paper", "--quiet")


def _child(log: Path, *arguments: str) -> list[str]:
    return [sys.executable, str(ROOT / "tests" / "crash_child.py"), "cli", str(log), "--", *arguments]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CRASH_CHILD_DELAY": str(DELAY)}


def _lines(log: Path, phase: str = "start") -> list[dict[str, Any]]:
    """The calls the log shows starting (or ending)."""
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    return [line for line in lines if line["phase"] == phase]


def _count(lines: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((c["node"], c["call"]) for c in lines if c["node"] in ("describe", "propose", "critique", "revise"))


def _recorded_answers(history: Path) -> int:
    """How many model answers the run's history held when the process died."""
    if not history.exists():
        return 0
    # read-write, as resume opens it: a read-only connection cannot roll back what the killed process left
    with contextlib.closing(sqlite3.connect(history)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "store" not in tables:  # killed before the history was set up
            return 0
        return int(db.execute("SELECT count(*) FROM store WHERE key LIKE 'answer:%'").fetchone()[0])


def _signature(record: dict[str, Any]) -> list[Any]:
    result = record["result"]
    rounds = [
        (r["index"], r["prompt"], [(c["prompt"], c["seed"], c["score"]) for c in r["candidates"]])
        for r in result["rounds"]
    ]
    return [result["initial_prompt"], result["stop_reason"], rounds]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted run: its record and its log of calls."""
    folder = tmp_path_factory.mktemp("whole")
    reference = folder / "reference.png"
    render_scene(random_scene(5), seed=5).save(reference)
    log = folder / "calls.log"
    subprocess.run(
        _child(log, "run", str(reference), *ARGS, "--out", str(folder / "run")), check=True, env=_env(), timeout=120
    )
    record = json.loads((folder / "run" / "run.json").read_text())
    assert record["status"] == "finished"
    return {"reference": reference, "record": record, "log": _lines(log)}


@pytest.mark.parametrize(
    "trial", [t if t < DEFAULT_TRIALS else pytest.param(t, marks=pytest.mark.soak) for t in range(TRIALS)]
)
def test_sigkill_in_any_node_then_resume_gives_the_uninterrupted_result(
    trial: int, whole: dict[str, Any], tmp_path: Path
) -> None:
    calls = whole["log"]
    rng = random.Random(trial)
    # which call to kill in: distinct for every trial (9 is prime to the count of calls), walking the whole
    # run; the first three land in describe, score and generate, all twenty in every node
    k = 1 + (trial * 9 + 3) % len(calls)
    folder, log = tmp_path / "run", tmp_path / "calls.log"
    proc = subprocess.Popen(_child(log, "run", str(whole["reference"]), *ARGS, "--out", str(folder)), env=_env())
    try:
        deadline = time.monotonic() + 60
        while len(_lines(log)) < k and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, DELAY * 0.8))  # somewhere inside the k-th call
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    killed_in = _lines(log)[-1]["node"]
    recorded = _recorded_answers(folder / "history.sqlite")
    before = json.loads((folder / "run.json").read_text())
    assert before["status"] == "running"
    finished = {r["index"] for r in before.get("result", {}).get("rounds", [])}

    resume_log = tmp_path / "resume.log"
    done = subprocess.run(_child(resume_log, "resume", str(folder), "--quiet"), env=_env(), timeout=120)
    assert done.returncode == 0
    after = json.loads((folder / "run.json").read_text())
    assert after["status"] == "finished"
    assert _signature(after) == _signature(whole["record"]), f"killed in {killed_in} (call {k})"

    # nothing finished before the kill is paid again: no finished round is rendered again, and every
    # call of the resumed run is one the killed run had not finished
    again = _lines(resume_log)
    renders_left = sum(1 for c in calls if c["node"] == "generate") - len(finished)
    assert sum(1 for c in again if c["node"] == "generate") <= renders_left
    # every model call whose answer was recorded before the kill is not asked again (answers go to the
    # run's history as they arrive): the calls asked twice are at most those the kill left unrecorded,
    # the calls in flight and any whose answer had arrived but was not yet written
    started, ended = _count(_lines(log)), _count(_lines(log, "end"))
    in_flight = sum((started - ended).values())
    unrecorded = sum(started.values()) - recorded
    asked_twice = sum((started + _count(again) - _count(calls)).values())
    # answered but not yet written: at most a concurrent batch of calls (max_concurrency, 8) ending at once
    assert in_flight <= unrecorded <= in_flight + 8, (killed_in, k, in_flight, unrecorded)
    assert asked_twice <= unrecorded, (killed_in, k, asked_twice, unrecorded)
