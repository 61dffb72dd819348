"""Reliability of run folders: a stop during a hung request, and two processes on one folder.

Both through the command line in real processes: signals and OS locks only mean something there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagerepainter.cli.main import main
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.sandbox.server import sandbox_server
from tests.signals import as_a_background_job, spawn

ROOT = Path(__file__).resolve().parents[1]
RUN_SETTINGS = ["--t2i", "sandbox", "--scorer", "sandbox", "--seed", "7", "--max-rounds", "2", "--quiet"]
_CLI_CHILD = "import sys; from imagerepainter.cli.main import main; sys.exit(main(sys.argv[1:]))"


class _HangingServer:
    """Accepts connections on 127.0.0.1 and never answers: a model request that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, freeing the port
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[_HangingServer]:
    server = _HangingServer()
    yield server
    server.close()


def _comparable(result: dict[str, Any]) -> list[Any]:
    return [
        [(c["prompt"], c["seed"], c["score"], c["image_ref"]["sha256"]) for c in r["candidates"]]
        for r in result["rounds"]
    ]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_hung_request_stops_the_run_at_once_and_resume_matches(
    tmp_path, monkeypatch, hanging, sig, code
):
    reference = tmp_path / "ref.png"
    render_scene(random_scene(3), seed=3).save(reference)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test"}
    url = f"http://127.0.0.1:{hanging.port}/v1"
    argv = ["run", str(reference), "--mllm", "openai:sandbox", "--base-url", url, *RUN_SETTINGS, "--out", "d"]
    with as_a_background_job():  # a child started from a shell's background job must take Ctrl-C back itself
        proc = spawn([sys.executable, "-c", _CLI_CHILD, *argv], cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    try:
        assert hanging.accepted.wait(60), "the run never sent its request"
        time.sleep(0.3)  # the request is in flight and will never be answered
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert took < 5, f"took {took:.1f} s to stop"
    assert b"continue with: imagerepainter resume d" in err and b"Traceback" not in err
    folder = tmp_path / "d"
    assert json.loads((folder / "run.json").read_text())["status"] == "interrupted"

    # The same URL now answers: resume there, and compare with a run that was never stopped.
    hanging.close()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with sandbox_server(port=hanging.port) as server:
        assert main(["resume", str(folder), "--quiet"]) == 0
        whole = tmp_path / "whole"
        assert main(["run", str(reference), "--mllm", "openai:sandbox", "--base-url", server.base_url,
                     *RUN_SETTINGS, "--out", str(whole)]) == 0  # fmt: skip
    resumed = json.loads((folder / "run.json").read_text())
    uninterrupted = json.loads((whole / "run.json").read_text())
    assert resumed["status"] == "finished"
    assert _comparable(resumed["result"]) == _comparable(uninterrupted["result"])
    assert len(resumed["result"]["rounds"]) == 2


def _slow_run(folder: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = [sys.executable, str(ROOT / "tests" / "crash_child.py"), "run", str(folder), str(log), "4"]
    proc = subprocess.Popen(child, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not log.exists() and time.monotonic() < deadline:  # it has started rendering: it holds the folder
        time.sleep(0.02)
    assert log.exists(), "the child never rendered"
    return proc


def test_a_second_process_is_refused_while_a_run_is_alive_and_takes_over_once_it_died(tmp_path, capsys):
    folder, log = tmp_path / "run", tmp_path / "renders.jsonl"
    proc = _slow_run(folder, log)
    try:
        assert main(["resume", str(folder), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"is in progress (pid {proc.pid}, host {socket.gethostname()}); wait for it or stop it." in err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert main(["run", "--resume", str(folder), "--quiet"]) == 2  # the same for run --resume
        capsys.readouterr()
        proc.send_signal(signal.SIGKILL)  # the holder dies with its claim: the OS releases the lock
        proc.wait(30)
    finally:
        proc.kill()
    assert json.loads((folder / "run.json").read_text())["status"] == "running"  # what the dead run left
    assert main(["resume", str(folder), "--quiet"]) == 0
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"


def test_two_resumes_at_once_pay_once(tmp_path):
    folder, log = tmp_path / "run", tmp_path / "renders.jsonl"
    proc = _slow_run(folder, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = [sys.executable, str(ROOT / "tests" / "crash_child.py"), "resume", str(folder), str(log), "4"]
    both = [subprocess.Popen(child, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(120), p.stderr.read() if p.stderr else b"") for p in both]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    assert any(b"is in progress (pid" in err for _, err in results)
    rendered = [json.loads(line) for line in log.read_text().splitlines()]
    resumed = [(r["prompt"], r["seed"]) for r in rendered if r["mode"] == "resume"]
    assert len(resumed) == len(set(resumed)), "a candidate was rendered (paid for) twice"
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"
