"""``langgraph dev`` serves the graph that ``langgraph.json`` names; the real ``langgraph_sdk`` client drives it.

The server runs on 127.0.0.1 on a free port, offline (no tracing, no analytics), with its state
folder (``.langgraph_api``) in a temporary folder; the test starts and stops it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagerepainter import Repainter
from imagerepainter.images import to_data_url
from imagerepainter.sandbox import random_scene, render_scene

pytest.importorskip("langgraph_api", reason="needs langgraph-cli[inmem] (the serve extra)")
langgraph_sdk = pytest.importorskip("langgraph_sdk", reason="needs langgraph-sdk (the serve extra)")

pytestmark = pytest.mark.serve

ROOT = Path(__file__).resolve().parents[1]
GRAPH = "imagerepainter"  # the graph id in langgraph.json
LANGGRAPH_DEV = [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"langgraph dev did not answer within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def _langgraph_dev(home: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``langgraph dev`` asked for ``port``, run in ``home`` (offline, its images under ``home``); stopped after."""
    refs = home / "refs"
    refs.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMAGEREPAINTER_", "LANGSMITH_", "LANGCHAIN_"))}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "IMAGEREPAINTER_IMAGE_ROOTS": str(refs),
        "IMAGEREPAINTER_IMAGE_DIR": str(home / "images"),
    }
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*LANGGRAPH_DEV, "--config", str(ROOT / "langgraph.json"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    try:
        yield process, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("langgraph-dev")  # the server's working folder: .langgraph_api goes here
    port = _free_port()
    with _langgraph_dev(home, port) as (process, log):
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, process, log)
        yield {"url": url, "refs": home / "refs", "home": home}


def _stream(client: Any, graph_input: dict[str, Any]) -> tuple[list[Any], dict[str, Any], list[Any]]:
    """Run on a new thread; return the loop's events, the graph's last output, and the error events."""
    thread = client.threads.create()
    events, output, errors = [], {}, []
    for part in client.runs.stream(
        thread["thread_id"], GRAPH, input=graph_input, stream_mode=["custom", "values"], stream_subgraphs=True
    ):
        if part.event.startswith("custom"):
            event = Repainter.event_from(part.data)
            if event is not None:
                events.append(event)
        elif part.event == "values":  # the root graph's own values (a subgraph's come as "values|<ns>")
            output = part.data
        elif part.event == "error":
            errors.append(part.data)
    return events, output, errors


def _decode(data_url: str) -> Image.Image:
    header, _, data = data_url.partition(",")
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_a_client_sends_an_image_streams_rounds_and_reads_the_best_image_back(server):
    client = langgraph_sdk.get_sync_client(url=server["url"])
    reference = render_scene(random_scene(11), width=192, height=128)

    events, output, errors = _stream(client, {"image": to_data_url(reference), "overrides": {"max_rounds": 3}})

    assert errors == []
    rounds = [e for e in events if e.kind == "round"]
    assert [e.round for e in rounds] == list(range(1, len(output["rounds"]) + 1)) and rounds
    assert [e.data["best_score"] for e in rounds] == [r["best_score_so_far"] for r in output["rounds"]]
    assert {"described", "generated", "finished"} <= {e.kind for e in events}

    best = _decode(output["best_image"])
    assert abs(best.width / best.height - 1.5) < 0.05  # rendered at the reference's aspect ratio
    assert output["best_score"] == max(s for r in output["rounds"] for s in r["scores"])
    assert output["finished"] and output["stop_reason"] and output["best_prompt"]
    assert any((server["home"] / "images").iterdir())  # IMAGEREPAINTER_IMAGE_DIR holds the run's images


def test_a_server_path_inside_the_allowed_folder_works_and_one_outside_is_refused(server):
    client = langgraph_sdk.get_sync_client(url=server["url"])
    render_scene(random_scene(12)).save(server["refs"] / "ref.png")
    render_scene(random_scene(13)).save(server["home"] / "private.png")

    _, output, errors = _stream(client, {"image": str(server["refs"] / "ref.png"), "overrides": {"max_rounds": 1}})
    assert errors == [] and output["finished"] and len(output["rounds"]) == 1

    events, _, errors = _stream(client, {"image": str(server["home"] / "private.png")})
    assert events == [] and len(errors) == 1  # refused before the loop started
    assert errors[0]["error"] == "InvalidImageError"
    assert "outside the folders this server may read" in errors[0]["message"]


def test_bad_input_comes_back_as_an_error_the_client_can_read(server):
    client = langgraph_sdk.get_sync_client(url=server["url"])

    events, _, errors = _stream(client, {"image": "data:image/png;base64,AAAA"})
    assert events == [] and [e["error"] for e in errors] == ["InvalidImageError"]
    assert "not an image" in errors[0]["message"]

    _, _, errors = _stream(client, {"image": to_data_url(render_scene(random_scene(1))), "overrides": {"rounds": 3}})
    assert [e["error"] for e in errors] == ["ConfigurationError"]
    assert "max_rounds" in errors[0]["message"]  # the closest setting is suggested


def _printed_address(log: Path, process: subprocess.Popen[bytes], timeout: float = 45.0) -> str:
    """The ``API: http://...`` address ``langgraph dev`` printed in its banner."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))  # without colours
        if found := re.search(r"API: (http://\S+)", text):
            return found.group(1).rstrip("/")
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"langgraph dev printed no API address:\n{log.read_text(errors='replace')[-3000:]}")


def test_on_a_taken_port_langgraph_dev_moves_and_the_guides_client_works_with_the_address_it_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/embedding.md: clients take the address ``langgraph dev`` printed (not 2024 when that port is taken)."""
    guide = (ROOT / "docs" / "embedding.md").read_text().split("## Serving with langgraph dev", 1)[1]
    client_block = next(b for b in re.findall(r"```python\n(.*?)```", guide, re.S) if "get_sync_client" in b)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with _langgraph_dev(tmp_path, port) as (process, log):
            url = _printed_address(log, process)
            assert not url.endswith(f":{port}") and f"Port {port} is already in use" in log.read_text(errors="replace")
            _wait_until_up(url, process, log)
            monkeypatch.chdir(tmp_path)
            monkeypatch.setenv("LANGGRAPH_URL", url)
            render_scene(random_scene(5)).save(tmp_path / "photo.png")
            exec(compile(client_block, "docs/embedding.md client", "exec"), {})
    *rounds, last = capsys.readouterr().out.strip().splitlines()  # a line per round, then the outcome
    stop_reason, best_score, *_ = last.split()
    assert rounds and all(line.startswith(f"round {n}: best so far") for n, line in enumerate(rounds, 1))
    assert stop_reason in {"max_rounds", "plateau", "target_reached", "judged_match"} and 0 < float(best_score) <= 1
    assert Image.open(tmp_path / "best.png").size == (256, 256)  # the best image, read back from its data URL
