"""Drive a live page in headless Chromium with real key presses, over the DevTools protocol on a pipe.

:mod:`tests.browser` loads a file once and reads its DOM; a page that talks to a server and
answers the keyboard needs a browser that stays open. Chromium's ``--remote-debugging-pipe``
speaks the DevTools protocol (JSON messages ended by a NUL byte) on file descriptors 3 (in) and
4 (out), so no websocket client and no debugging port are needed. Key presses go through
``Input.dispatchKeyEvent``: the page sees trusted events, as from a keyboard.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import tempfile
import time
from typing import Any

from tests.browser import FLAGS, chromium_binary

__all__ = ["KEYS", "LivePage"]

KEYS = {
    "ArrowLeft": {"key": "ArrowLeft", "code": "ArrowLeft", "windowsVirtualKeyCode": 37},
    "ArrowRight": {"key": "ArrowRight", "code": "ArrowRight", "windowsVirtualKeyCode": 39},
    "ArrowDown": {"key": "ArrowDown", "code": "ArrowDown", "windowsVirtualKeyCode": 40},
    " ": {"key": " ", "code": "Space", "windowsVirtualKeyCode": 32, "text": " "},
    "t": {"key": "t", "code": "KeyT", "windowsVirtualKeyCode": 84, "text": "t"},
    "Enter": {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
}


class LivePage:
    """One headless Chromium with one page; use as a context manager (the browser is killed on exit)."""

    def __init__(self, *, window: tuple[int, int] = (1280, 1000), timeout: float = 30.0) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("No Chromium binary found; install it with: apt-get install -y chromium")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-live-", ignore_cleanup_errors=True)
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        args = [*FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}"]
        args += [f"--window-size={window[0]},{window[1]}", "about:blank"]
        # bash puts the pipe ends on fds 3 and 4, where Chromium expects them (no preexec_fn in a threaded test).
        script = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser} {to_browser}<&- {from_browser}>&-'
        self._proc = subprocess.Popen(
            ["bash", "-c", script, binary, *args],
            pass_fds=(to_browser, from_browser),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id, self.session = b"", 0, ""
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        if window[0] < 600:  # headless windows have a minimum width: emulate a phone's viewport instead
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=window[0],
                height=window[1],
                deviceScaleFactor=1,
                mobile=True,
            )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page once attached) and return its result."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def open(self, url: str) -> None:
        """Navigate to ``url``."""
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools evaluation is not bound by the page's CSP)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # the page may be between documents
                if value := self.evaluate(expression):
                    return value
            time.sleep(0.05)
        raise TimeoutError(f"still false after {timeout or self.timeout}s: {expression}")

    def press(self, name: str) -> None:
        """Press and release a key of :data:`KEYS`, as a keyboard would."""
        key = KEYS[name]
        self.call("Input.dispatchKeyEvent", type="keyDown", **key)
        self.call("Input.dispatchKeyEvent", type="keyUp", **{k: v for k, v in key.items() if k != "text"})

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused field."""
        self.call("Input.insertText", text=text)

    def close(self) -> None:
        """Kill the browser's whole process group and remove its profile."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> LivePage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
