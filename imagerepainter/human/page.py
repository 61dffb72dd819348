"""The judging page: one self-contained HTML page (inline CSS and script, no network beyond its server).

It asks for a rater name (remembered in the browser's ``localStorage``), then shows the
reference above two regenerations and asks *which is closer to the reference?*; ← picks the
left image, → the right one, ↓, space or ``t`` says "can't tell". Everything it shows comes from
the JSON API of :mod:`imagerepainter.human.server` (``/api/next``, ``/api/judgment``), with the
session token taken from the page's own URL. The page holds no model or mode name: images are
fetched by opaque ids.

The Content-Security-Policy allows only this page's own script (by its hash), its inline
style, and images and requests to the server it came from.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["PAGE_CSP", "page_html"]

_CSS = """
:root{--bg:#f7f7f5;--card:#fff;--fg:#1d1d1f;--muted:#6b6b70;--line:#e2e2e0;--accent:#2563eb}
@media (prefers-color-scheme:dark){:root{--bg:#111214;--card:#1b1c1f;--fg:#e8e8ea;--muted:#9a9aa2;--line:#2c2d31;
--accent:#60a5fa}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif}
main{max-width:1200px;margin:0 auto;padding:12px}
header{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center;justify-content:space-between}
h1{font-size:1.25rem;margin:0}
.muted{color:var(--muted)}
input{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:6px;background:var(--card);
color:var(--fg)}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:8px;text-align:center}
figure img{display:block;width:100%;height:auto;max-height:42vh;object-fit:contain;image-rendering:auto}
figcaption{font-size:.9rem;color:var(--muted);margin-top:4px}
.reference{max-width:480px;margin:12px auto}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.answers{display:flex;flex-wrap:wrap;gap:8px;justify-content:center;margin:12px 0}
button{font:inherit;padding:8px 14px;border-radius:8px;border:1px solid var(--line);background:var(--card);
color:var(--fg);cursor:pointer}
button:focus-visible{outline:2px solid var(--accent)}
kbd{border:1px solid var(--line);border-radius:4px;padding:0 4px;font-size:.85em}
#status{min-height:1.5em;text-align:center}
[hidden]{display:none!important}
@media (max-width:640px){.pair{grid-template-columns:1fr}figure img{max-height:none}}
"""

_SCRIPT = r"""(function () {
  "use strict";
  var q = new URLSearchParams(location.search), token = q.get("token") || "";
  var $ = function (id) { return document.getElementById(id); };
  var body = document.body.dataset, name = $("rater"), current = null, shownAt = 0, busy = true;
  name.value = localStorage.getItem("judging.rater") || "";
  function say(text) { $("status").textContent = text; }
  function api(path, init) {
    return fetch(path + (path.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(token), init)
      .then(function (r) {
        return r.json().then(function (data) {
          if (!r.ok) { throw new Error(data.error || ("HTTP " + r.status)); }
          return data;
        });
      });
  }
  function minutes(s) {
    if (s === null || s === undefined) { return ""; }
    return s < 90 ? " \u00b7 about " + Math.max(1, Math.round(s)) + " s left"
      : " \u00b7 about " + Math.round(s / 60) + " min left";
  }
  function progress(p, left) { $("progress").textContent = p.done + " / " + p.total + " judged" + minutes(left); }
  function whenLoaded(imgs, done) {
    var waiting = imgs.length;
    imgs.forEach(function (img) {
      if (img.complete && img.naturalWidth > 0) { waiting -= 1; return; }
      img.addEventListener("load", function () { waiting -= 1; if (!waiting) { done(); } }, { once: true });
      img.addEventListener("error", function () { say("An image failed to load; reload the page."); }, { once: true });
    });
    if (!waiting) { done(); }
  }
  function next() {
    busy = true;
    body.state = "loading";
    api("/api/next?rater=" + encodeURIComponent(name.value.trim())).then(function (data) {
      if (data.done) {
        $("study").hidden = true; $("finished").hidden = false; body.state = "done";
        if (data.progress) { progress(data.progress, null); }
        return;
      }
      current = data;
      progress(data.progress, data.seconds_left);
      var imgs = [$("ref"), $("left"), $("right")];
      imgs[0].src = data.reference; imgs[1].src = data.left; imgs[2].src = data.right;
      $("study").hidden = false;
      whenLoaded(imgs, function () {
        shownAt = performance.now(); busy = false; body.state = "ready"; body.pair = data.pair_id; say("");
      });
    }).catch(function (e) { say(e.message); body.state = "error"; });
  }
  function answer(choice) {
    if (busy || !current) { return; }
    busy = true;
    body.state = "saving";
    var seconds = (performance.now() - shownAt) / 1000;
    api("/api/judgment", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pair_id: current.pair_id, rater: name.value.trim(), choice: choice, seconds: seconds })
    }).then(function () {
      body.answered = String(Number(body.answered || 0) + 1);
      next();
    }).catch(function (e) { say(e.message); busy = false; body.state = "ready"; });
  }
  function start() {
    var who = name.value.trim();
    if (!who) { say("Type your name first (it keeps your progress)."); name.focus(); return; }
    localStorage.setItem("judging.rater", who);
    name.blur();
    next();
  }
  name.addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); start(); } });
  $("start").addEventListener("click", start);
  $("pick-left").addEventListener("click", function () { answer("left"); });
  $("pick-tie").addEventListener("click", function () { answer("tie"); });
  $("pick-right").addEventListener("click", function () { answer("right"); });
  document.addEventListener("keydown", function (e) {
    if (e.target === name || e.altKey || e.ctrlKey || e.metaKey) { return; }
    var choice = { ArrowLeft: "left", ArrowRight: "right", ArrowDown: "tie", " ": "tie", t: "tie", T: "tie" }[e.key];
    if (choice) { e.preventDefault(); answer(choice); }
  });
  if (name.value) { start(); } else { body.state = "name"; name.focus(); }
})();"""

_BODY = """<main>
<header><h1>Which is closer to the reference?</h1>
<label>Your name <input id="rater" autocomplete="name" maxlength="64" size="14"></label>
<button id="start" type="button">Start</button>
<span id="progress" class="muted"></span></header>
<div id="study" hidden>
<figure class="reference"><img id="ref" alt="the reference"><figcaption>reference</figcaption></figure>
<div class="pair">
<figure><img id="left" alt="left candidate"><figcaption><kbd>\u2190</kbd> left</figcaption></figure>
<figure><img id="right" alt="right candidate"><figcaption>right <kbd>\u2192</kbd></figcaption></figure>
</div>
<div class="answers">
<button id="pick-left" type="button">\u2190 Left is closer</button>
<button id="pick-tie" type="button">Can't tell (<kbd>\u2193</kbd>, space or <kbd>t</kbd>)</button>
<button id="pick-right" type="button">Right is closer \u2192</button>
</div>
</div>
<p id="finished" hidden>All pairs are judged. Thank you!</p>
<p id="status" class="muted" role="status"></p>
</main>"""


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


PAGE_CSP = (
    f"default-src 'none'; script-src '{_script_hash(_SCRIPT)}'; style-src 'unsafe-inline'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page's Content-Security-Policy (also sent as a response header)."""


def page_html() -> str:
    """The judging page's HTML (the same for every session; the token comes from its URL)."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>Which is closer?</title><style>{_CSS}</style></head>\n<body>{_BODY}"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
