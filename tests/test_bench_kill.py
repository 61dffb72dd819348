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

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from imagerepainter.bench.runner import evaluate
    from imagerepainter.sandbox import SandboxT2I

    class SlowT2I(SandboxT2I):
        name = "slow"

        def generate(self, requests):
            time.sleep(0.15)
            return super().generate(requests)

    report = evaluate(sys.argv[1], mllm="sandbox", models={"slow": SlowT2I()}, out=sys.argv[2], metrics=["sandbox"],
                      settings={"max_rounds": 2, "variants": 2, "height": 64, "width": 64}, max_concurrency=2)
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


def test_sigkill_half_way_then_restart_finishes_without_recomputing(tmp_path):
    data = tmp_path / "scenes"
    data.mkdir()
    for i in range(6):
        render_scene(random_scene(i), 96, 96).save(data / f"scene_{i}.png")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, str(script), str(data), str(out)], env=env, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(_rows(out / "results.sqlite")) < 3:
            assert child.poll() is None, "the evaluation ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    before = _rows(out / "results.sqlite")
    assert 3 <= len(before) < 12  # killed half-way
    with sqlite3.connect(out / "results.sqlite") as db:
        described_before = db.execute("SELECT COUNT(*) FROM descriptions").fetchone()[0]

    done = subprocess.run(
        [sys.executable, str(script), str(data), str(out)], env=env, capture_output=True, text=True, timeout=300
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
        [sys.executable, str(script), str(data), str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert json.loads(again.stdout.strip().splitlines()[-1])["computed"] == 0
    assert _rows(out / "results.sqlite") == after
