"""A parent graph that embeds the loop survives a SIGKILL: a new process resumes its thread.

The parent (examples/as_subgraph.py, ``--folder`` mode) keeps its checkpoints in SQLite, the
loop's history in a SQLite LangGraph store and the images in a DirectoryImageStore. A child
process runs it and is killed after round 2's event, while it renders round 3; another resumes it with
``graph.stream(None, config)``. Finished rounds are not rendered again, and the result read with
``rp.result_from(state)`` is the one an uninterrupted run gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = [sys.executable, str(ROOT / "tests" / "subgraph_child.py")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
KILL_AFTER_ROUND = 2


def _run(folder: Path, log: Path, mode: str) -> tuple[list[str], dict]:
    out = subprocess.run([*CHILD, str(folder), str(log), mode], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    return lines, json.loads(lines[-1])


def _rendered(log: Path, mode: str) -> list[tuple[str, int]]:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [(e["prompt"], e["seed"]) for e in entries if e["mode"] == mode]


def test_a_killed_parent_graph_resumes_in_a_new_process_without_rendering_finished_rounds_again(tmp_path):
    _, whole = _run(tmp_path / "whole", tmp_path / "whole.log", "whole")
    assert whole["finished"] and len({c[0] for c in whole["candidates"]}) == 4

    folder, log = tmp_path / "app", tmp_path / "app.log"
    by_round = {r: [(c[1], c[2]) for c in whole["candidates"] if c[0] == r] for r in range(1, 5)}
    proc = subprocess.Popen([*CHILD, str(folder), str(log), "run"], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(KILL_AFTER_ROUND)]
        assert [line.split(":")[0] for line in seen] == ["round 1", "round 2"], seen
        deadline = time.monotonic() + 60  # then wait for round 3's render: the renderer hangs in it
        while len(_rendered(log, "run")) <= len(by_round[1] + by_round[2]) and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert _rendered(log, "run") == by_round[1] + by_round[2] + by_round[3]  # killed while rendering round 3

    lines, resumed = _run(folder, log, "resume")
    assert lines[0] == "resuming"
    assert [line.split(":")[0] for line in lines if line.startswith("round ")] == ["round 3", "round 4"]
    assert resumed == whole  # every round's prompts, seeds and scores, and the stop reason
    # rounds 1 and 2 are not rendered again; round 3, cut off mid-render, is rendered once more
    assert _rendered(log, "resume") == by_round[3] + by_round[4]

    # a finished run is read back, nothing rendered
    lines, read_back = _run(folder, log, "read")
    assert lines[0] == "finished earlier" and read_back == whole
    assert _rendered(log, "read") == []
