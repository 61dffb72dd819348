"""An evaluation killed with SIGKILL half-way resumes without recomputing a finished case."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from imagerepainter.sandbox import random_scene, render_scene
from tests.signals import as_a_background_job, spawn

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from imagerepainter.bench.runner import evaluate
    from imagerepainter.sandbox import SandboxT2I

    class SlowT2I(SandboxT2I):
        name = "slow"

        def generate(self, requests):
            time.sleep(float(sys.argv[3]))
            return super().generate(requests)

    try:
        report = evaluate(sys.argv[1], mllm="sandbox", models={"slow": SlowT2I()}, out=sys.argv[2],
                          metrics=["sandbox"], settings={"max_rounds": 2, "variants": 2, "height": 64, "width": 64},
                          max_concurrency=2)
    except KeyboardInterrupt:
        sys.exit(130)
    print(json.dumps({"computed": report.computed, "skipped": report.skipped, "failed": report.failed,
                      "described": report.descriptions_computed, "reused": report.descriptions_reused}))
    """
)


def _rows(db_path: Path) -> dict[str, tuple]:
    if not db_path.exists():
        return {}
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return {r[0]: r[1:] for r in db.execute("SELECT case_id, record, updated FROM cases")}
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def _setup(tmp_path: Path) -> tuple[Path, Path, Path, dict[str, str]]:
    data = tmp_path / "scenes"
    data.mkdir()
    for i in range(6):
        render_scene(random_scene(i), 96, 96).save(data / f"scene_{i}.png")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return data, script, tmp_path / "out", {**os.environ, "PYTHONPATH": str(ROOT)}


def _stop_after(
    rows: int, sig: int, data: Path, script: Path, out: Path, env: dict[str, str], delay: float
) -> tuple[int, float]:
    """Start the evaluation, send ``sig`` once ``rows`` cases are stored; its exit code and seconds to exit."""
    argv = [sys.executable, str(script), str(data), str(out), str(delay)]
    with as_a_background_job():  # as `pytest ... &` from a script starts it: the child must take Ctrl-C back
        child = spawn(argv, env=env, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(_rows(out / "results.sqlite")) < rows:
            assert child.poll() is None, "the evaluation ended before it could be stopped"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(sig)
        sent = time.monotonic()
        code = child.wait(30)
        return code, time.monotonic() - sent
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)


def test_ctrl_c_stops_at_once_and_keeps_finished_cases(tmp_path):
    data, script, out, env = _setup(tmp_path)
    code, seconds = _stop_after(2, signal.SIGINT, data, script, out, env, delay=0.5)
    kept = _rows(out / "results.sqlite")
    # No new case starts; only the renders already in flight or queued on the device (<= 2 x 0.5 s) end.
    # Finishing the evaluation would take over 5 s more.
    assert code == 130 and seconds < 3.0
    assert 2 <= len(kept) < 12


def test_sigkill_half_way_then_restart_finishes_without_recomputing(tmp_path):
    data, script, out, env = _setup(tmp_path)
    _stop_after(3, signal.SIGKILL, data, script, out, env, delay=0.15)
    before = _rows(out / "results.sqlite")
    assert 3 <= len(before) < 12  # killed half-way
    with sqlite3.connect(out / "results.sqlite") as db:
        described_before = db.execute("SELECT COUNT(*) FROM descriptions").fetchone()[0]

    done = subprocess.run(
        [sys.executable, str(script), str(data), str(out), "0.15"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["skipped"] == len(before) and summary["computed"] == 12 - len(before)
    assert summary["failed"] == 0
    assert summary["described"] == 6 - described_before  # a stored description is never paid for again
    after = _rows(out / "results.sqlite")
    assert len(after) == 12
    assert {k: after[k] for k in before} == before  # finished rows untouched (same record, same write time)

    again = subprocess.run(
        [sys.executable, str(script), str(data), str(out), "0.15"], env=env, capture_output=True, text=True, timeout=300
    )
    assert json.loads(again.stdout.strip().splitlines()[-1])["computed"] == 0
    assert _rows(out / "results.sqlite") == after
