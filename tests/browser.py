"""Drive headless Chromium from tests, without selenium or playwright.

Chromium runs once per call (``--dump-dom`` or ``--screenshot``) with a throw-away profile
folder, no network services, and a hard timeout after which its whole process group is
killed. To look inside a page, :func:`probe` writes a copy next to it with a small script
that, on ``load``, records what it finds as ``data-*`` attributes of ``<body>``; the dumped
DOM is then parsed. The page's own Content-Security-Policy is kept, with only the probe's
hash added to it, so the test also proves the policy does not block the page's images.

Install Chromium as CI does: ``apt-get install -y --no-install-recommends chromium``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

__all__ = [
    "FLAGS",
    "HEADLESS_MIN_WIDTH",
    "LAYOUT_JS",
    "PROBE_JS",
    "chart_probe",
    "chromium_binary",
    "dump_dom",
    "probe",
    "screenshot",
]

HEADLESS_MIN_WIDTH = 500
"""Headless Chromium never makes its window narrower (px): :func:`probe` emulates a narrower phone's viewport."""

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests often run as root in containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)

_CHART_PROBE = """addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var chart = document.getElementById("%(chart)s");
  var d = document.body.dataset;
  d.imagesLoaded = ok + "/" + imgs.length;
%(counts)s
  d.chartWidth = chart ? String(Math.round(chart.getBoundingClientRect().width)) : "0";
  d.overflowX = String(document.documentElement.scrollWidth > window.innerWidth);
%(more)s
  d.probe = "done";
});"""


def chart_probe(chart: str, *, more: str = "", **counts: str) -> str:
    """A probe script for a page with a chart: on ``load`` it writes into ``<body data-*>``.

    ``data-images-loaded`` (``"decoded/all"``), ``data-chart-width`` (px, ``"0"`` without the
    element ``#chart``), ``data-overflow-x`` (the page scrolls sideways), one count per
    ``counts`` item (``chartMeans="circle.pt-mean"`` gives ``data-chart-means``: the chart's
    elements matching the selector, ``"none"`` without the chart), what the JavaScript
    statements ``more`` record, and last ``data-probe="done"``.
    """
    lines = [
        f'  d.{key} = chart ? String(chart.querySelectorAll("{css}").length) : "none";' for key, css in counts.items()
    ]
    return _CHART_PROBE % {"chart": chart, "counts": "\n".join(lines), "more": more}


PROBE_JS = chart_probe(
    "score-chart",
    chartPoints="circle.pt-cand",
    more="""  // a click focuses a candidate's frame: the image shows large
  var frame = document.querySelector(".cand .frame[tabindex]");
  if (frame) {
    var img = frame.querySelector("img");
    var before = img ? img.getBoundingClientRect().width : 0;
    frame.focus();
    var after = img ? img.getBoundingClientRect().width : 0;
    d.zoom = Math.round(before) + "->" + Math.round(after);
    frame.blur();
  }
  d.tocLinks = String(document.querySelectorAll("nav.toc a[href^='#round-']").length);""",
)
"""The run report's probe (``#score-chart``'s candidates, the zoom on focus, the rounds' links)."""


LAYOUT_JS = """addEventListener("load", function () {
  var d = document.body.dataset;
  function rects(node, start, end) {
    var range = document.createRange();
    range.setStart(node, start);
    range.setEnd(node, end);
    return Array.prototype.filter.call(range.getClientRects(), function (r) { return r.width > 0; });
  }
  // Words cut across lines: a whitespace-free run of text whose boxes lie on more than one line.
  var broken = [];
  var walker = document.createTreeWalker(document.querySelector("main") || document.body, NodeFilter.SHOW_TEXT);
  for (var node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement.closest("td, th") || node.parentElement.closest("svg")) continue;
    var re = /\\S+/g, m;
    while ((m = re.exec(node.data))) {
      var tops = rects(node, m.index, m.index + m[0].length).map(function (r) { return Math.round(r.top); });
      if (new Set(tops).size > 1) broken.push(m[0]);
    }
  }
  d.brokenWords = String(broken.length);
  d.brokenExample = broken.slice(0, 3).join(" | ");
  // The charts' text: the smallest glyph box as drawn, labels drawn over each other or past the chart's edges.
  var charts = Array.prototype.slice.call(document.querySelectorAll("svg[id$='-chart']"));
  var texts = [], boxes = [], outside = [];
  charts.forEach(function (svg) {
    var edge = svg.getBoundingClientRect();
    Array.prototype.forEach.call(svg.querySelectorAll("text"), function (t) {
      var r = t.getBoundingClientRect();
      if (r.width === 0) return;
      texts.push(t);
      boxes.push(r);
      if (r.left < edge.left - 1 || r.right > edge.right + 1) outside.push(t.textContent);
    });
  });
  var heights = boxes.map(function (r) { return Math.round(r.height * 10) / 10; });
  d.chartTextMinHeight = String(heights.length ? Math.min.apply(null, heights) : 0);
  d.chartTextOutside = String(outside.length);
  d.outsideExample = outside.slice(0, 3).join(" | ");
  var overlaps = [];
  for (var i = 0; i < boxes.length; i++) for (var j = i + 1; j < boxes.length; j++) {
    var a = boxes[i], b = boxes[j];
    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
      overlaps.push(texts[i].textContent + " / " + texts[j].textContent);
  }
  d.chartTextOverlaps = String(overlaps.length);
  d.overlapExample = overlaps.slice(0, 3).join(" | ");
  var chart = document.querySelector("svg[id$='-chart']");
  d.chartWidth = chart ? String(Math.round(chart.getBoundingClientRect().width)) : "0";
  d.overflowX = String(document.documentElement.scrollWidth > window.innerWidth);
  d.probe = "done";
});"""
"""Runs on ``load`` and measures what makes a page readable at any width (see :func:`probe`):
``data-broken-words`` (words in table cells cut across lines), ``data-chart-text-min-height``
(px, the smallest chart label as drawn), ``data-chart-text-overlaps`` (chart labels drawn over
each other), ``data-chart-text-outside`` (chart labels past the chart's left or right edge),
``data-chart-width`` and ``data-overflow-x`` (the page wider than the window)."""


def chromium_binary() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` if set, else the first known name on ``PATH``."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    return next((found for name in _NAMES if (found := shutil.which(name))), None)


def _run(args: list[str], *, window: tuple[int, int], timeout: float) -> str:
    binary = chromium_binary()
    if binary is None:
        raise RuntimeError("No Chromium binary found; install it with: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}", *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            # The session we started (browser, zygote, renderers, crash handler): none may outlive the call.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"Chromium exited with {proc.returncode}: {err[-2000:]}")
        return out


def dump_dom(page: Path, *, window: tuple[int, int] = (1280, 2000), timeout: float = 60.0) -> str:
    """Load ``page`` (a local file) and return its DOM after ``load`` as serialised HTML."""
    return _run(["--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()], window=window, timeout=timeout)


def screenshot(page: Path, out: Path, *, window: tuple[int, int] = (1280, 2000), timeout: float = 60.0) -> Path:
    """Render ``page`` into the PNG ``out`` (the top ``window``-sized part of the page)."""
    _run(
        ["--virtual-time-budget=5000", f"--screenshot={out.resolve()}", page.resolve().as_uri()],
        window=window,
        timeout=timeout,
    )
    return out


class _BodyAttrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and self.attrs is None:
            self.attrs = {k: v or "" for k, v in attrs}


def probe(
    page: Path, *, window: tuple[int, int] = (1280, 2000), timeout: float = 60.0, script: str = PROBE_JS
) -> dict[str, str]:
    """Load a copy of ``page`` with ``script`` (:data:`PROBE_JS`, :data:`LAYOUT_JS` or a test's own)
    and return ``<body>``'s attributes after ``load``.

    The copy sits next to ``page`` (so relative image links resolve the same) and is removed
    afterwards. Keys are as in the DOM, e.g. ``data-images-loaded``. A window narrower than
    :data:`HEADLESS_MIN_WIDTH` (a phone) is emulated over the DevTools protocol, so the page
    really lays out at that width.
    """
    source = page.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    source, n = re.subn(
        r'(http-equiv="Content-Security-Policy" content=")', rf"\1script-src 'sha256-{digest}'; ", source, count=1
    )
    if n != 1:
        raise AssertionError("the page has no Content-Security-Policy meta tag")
    source = source.replace("</body>", f"<script>{script}</script></body>", 1)
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(source, encoding="utf-8")
    try:
        if window[0] < HEADLESS_MIN_WIDTH:
            return _live_body_attrs(copy, window=window, timeout=timeout)
        parser = _BodyAttrs()
        parser.feed(dump_dom(copy, window=window, timeout=timeout))
    finally:
        copy.unlink(missing_ok=True)
    if parser.attrs is None:
        raise AssertionError("no <body> in Chromium's DOM dump")
    return parser.attrs


def _live_body_attrs(page: Path, *, window: tuple[int, int], timeout: float) -> dict[str, str]:
    """``<body>``'s attributes once the probe script has written ``data-probe``, in a page whose
    viewport :class:`~tests.browser_cdp.LivePage` emulates at ``window``'s size."""
    from tests.browser_cdp import LivePage  # it builds on this module

    with LivePage(window=window, timeout=timeout) as live:
        live.open(page.resolve().as_uri())
        live.wait_for("document.body !== null && document.body.dataset.probe === 'done'")
        found = live.evaluate("Array.from(document.body.attributes, function (a) { return [a.name, a.value]; })")
    return {str(name): str(value) for name, value in found}
