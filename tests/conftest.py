"""Shared fixtures. Tests never reach the network: every server binds 127.0.0.1."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

EVALREF = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "evalref-100"


@pytest.fixture(scope="session")
def evalref_dir() -> Path:
    """The EvalRef-100 photographs, read in place from ../shared (never copied into the repo)."""
    if not EVALREF.is_dir():
        pytest.skip(f"EvalRef-100 not found at {EVALREF}")
    return EVALREF


class _ImageHandler(BaseHTTPRequestHandler):
    """Serves one PNG at ``/ref.png``; anything else is a 404."""

    body = b""

    def do_GET(self) -> None:
        if self.path.startswith("/ref.png"):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    """A loopback HTTP server whose ``/ref.png`` is a 256x256 sandbox scene; yields its base URL."""
    from imagerepainter.images import encode_png
    from imagerepainter.sandbox import random_scene, render_scene

    handler = type("Handler", (_ImageHandler,), {"body": encode_png(render_scene(random_scene(5)))})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


pytest_plugins = ["tests.conftest_models"]
