"""The judging server: the judging page and its JSON API over HTTP on 127.0.0.1 (standard library only).

:class:`JudgingStudy` is the study of one evaluation folder: the pairs to judge, the images by
opaque ids, and the judgments store. :class:`JudgingServer` serves it. Every request must carry
the session's random token (``?token=...``; a new one at each start), or it gets 403, so another
user of the machine cannot read the images or post judgments.

Images are served only from the evaluation folder, by ids that say nothing about the model or
mode: every path is resolved (symlinks included) and refused if it leaves the folder. The
references live in the dataset's folder, so they are copied once into
``EVAL_DIR/judging/references/<sha256>.<ext>`` when a study starts.

The API (see docs/human-agreement.md):

* ``GET /api/next?token=T&rater=NAME`` — the rater's next pair: ``{"pair_id", "reference",
  "left", "right", "progress": {"done", "total"}, "seconds_left"}``, or ``{"done": true, "progress"}``;
* ``POST /api/judgment?token=T`` with ``{"pair_id", "rater", "choice": "left"|"right"|"tie",
  "seconds"}`` — stores a :class:`~imagerepainter.human.judgments.Judgment` (left and right
  translated to ``a``/``b`` through what that rater was shown).

Example:
    >>> study = JudgingStudy("eval-out")                    # doctest: +SKIP
    >>> with JudgingServer(study, port=0) as server:        # doctest: +SKIP
    ...     print(server.page_url)
"""

from __future__ import annotations

import json
import math
import mimetypes
import os
import secrets
import shutil
import statistics
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..bench.records import CaseResult
from ..bench.store import DATABASE_NAME, ResultsStore
from ..errors import ConfigurationError
from .judgments import Judgment, JudgmentStore
from .page import PAGE_CSP, page_html
from .pairs import Pair, Showing, draw_pairs, judgeable_cases, pending, plan_for_rater

__all__ = ["REFERENCES_FOLDER", "JudgingServer", "JudgingStudy", "inside_folder"]

REFERENCES_FOLDER = Path("judging") / "references"
"""Where a study keeps its copies of the reference images, inside the evaluation folder."""

_MAX_BODY = 16 * 1024
_MAX_RATER = 64


class _BadRequest(Exception):
    """A request the API refuses; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def inside_folder(folder: Path, relative: str | os.PathLike[str]) -> Path | None:
    """``folder / relative`` resolved (symlinks followed), or ``None`` if it is outside ``folder`` or not a file."""
    root = folder.resolve()
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return path if path.is_relative_to(root) and path.is_file() else None


class JudgingStudy:
    """The judging study of one evaluation folder: pairs, plans per rater, images, judgments.

    Args:
        folder: The evaluation's ``--out`` folder (with ``results.sqlite``).
        seed: Decides which pairs are drawn and each rater's order and sides.
        repeat_share: Share of pairs shown a second time (sides swapped) to each rater.
        per_reference: Pairs per reference (``None``: every pair of arms).

    Raises:
        ConfigurationError: no results database, nothing to compare, or a reference image missing
            (found before the server starts).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        seed: int = 0,
        repeat_share: float = 0.1,
        per_reference: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        if not (self.folder / DATABASE_NAME).is_file():
            raise ConfigurationError(
                f"{str(self.folder)!r} holds no {DATABASE_NAME}; give the --out folder of an evaluation."
            )
        self.seed, self.repeat_share = seed, repeat_share
        plan_for_rater([], rater="", repeat_share=repeat_share)  # checks the share before any work
        cases = [c for c in judgeable_cases(ResultsStore(self.folder).cases()) if self._servable(c)]
        self.pairs: list[Pair] = draw_pairs(cases, seed=seed, per_reference=per_reference)
        self.references = self._copy_references(cases)
        self._images: dict[str, str] = {}  # opaque id -> path relative to the folder
        self._ids: dict[str, str] = {}
        self.store = JudgmentStore(self.folder)
        self._plans: dict[str, list[Showing]] = {}
        self._lock = threading.RLock()

    def _servable(self, case: CaseResult) -> bool:
        return inside_folder(self.folder, str(case.best_image)) is not None

    def _copy_references(self, cases: list[CaseResult]) -> dict[str, str]:
        """Copy each reference into the folder once; returns reference sha256 -> relative path."""
        out: dict[str, str] = {}
        target = self.folder / REFERENCES_FOLDER
        for case in cases:
            sha = case.reference_sha256
            if sha in out:
                continue
            source = Path(str(case.extra.get("reference_path", "")))
            name = f"{sha}{source.suffix.lower() or '.png'}"
            copy = target / name
            if not copy.is_file():
                if not source.is_file():
                    raise ConfigurationError(
                        f"The reference {case.reference_id!r} is no longer at {str(source)!r}; put the dataset "
                        f"back there, or copy the image to {str(copy)!r}."
                    )
                target.mkdir(parents=True, exist_ok=True)
                partial = copy.with_suffix(copy.suffix + ".part")
                shutil.copyfile(source, partial)
                os.replace(partial, copy)
            out[sha] = (REFERENCES_FOLDER / name).as_posix()
        return out

    @property
    def showings_per_rater(self) -> int:
        """How many showings each rater's plan has (the pairs and their repeats)."""
        return len(self.pairs) + round(self.repeat_share * len(self.pairs))

    # ------------------------------------------------------------------ images by opaque id

    def image_id(self, relative: str) -> str:
        """The opaque id the page fetches ``relative`` by (random per study, so it reveals nothing)."""
        with self._lock:
            if relative not in self._ids:
                opaque = secrets.token_urlsafe(12)
                self._ids[relative], self._images[opaque] = opaque, relative
            return self._ids[relative]

    def image_path(self, opaque: str) -> Path | None:
        """The file behind an opaque id, checked again to be inside the folder; ``None`` if unknown."""
        relative = self._images.get(opaque)
        return None if relative is None else inside_folder(self.folder, relative)

    # ------------------------------------------------------------------ raters

    def plan(self, rater: str) -> list[Showing]:
        """``rater``'s showings (the same after a restart, for the same seed)."""
        with self._lock:
            if rater not in self._plans:
                self._plans[rater] = plan_for_rater(
                    self.pairs, rater=rater, seed=self.seed, repeat_share=self.repeat_share
                )
            return self._plans[rater]

    def next_for(self, rater: str, *, token: str) -> dict[str, Any]:
        """What ``GET /api/next`` answers for ``rater``."""
        rater = _rater(rater)
        plan, mine = self.plan(rater), self.store.judgments(rater=rater)
        left = pending(plan, mine)
        progress = {"done": len(plan) - len(left), "total": len(plan)}
        if not left:
            return {"done": True, "progress": progress}
        showing = left[0]
        pair = showing.pair
        shown = {"a": pair.a.best_image, "b": pair.b.best_image}
        right = "b" if showing.left == "a" else "a"
        times = [j.seconds for j in mine if j.seconds is not None and j.source == "page"]
        return {
            "done": False,
            "pair_id": pair.pair_id,
            "reference": self._url(self.references[pair.a.reference_sha256], token),
            "left": self._url(str(shown[showing.left]), token),
            "right": self._url(str(shown[right]), token),
            "progress": progress,
            "seconds_left": round(statistics.median(times) * len(left), 1) if times else None,
        }

    def _url(self, relative: str, token: str) -> str:
        return f"/image/{self.image_id(relative)}?token={token}"

    def record(self, body: Mapping[str, Any]) -> Judgment:
        """Store what ``POST /api/judgment`` sent; raises :class:`_BadRequest` for bad input."""
        rater = _rater(body.get("rater"))
        choice, seconds, wanted = body.get("choice"), body.get("seconds"), body.get("pair_id")
        if not isinstance(wanted, str) or not wanted:
            raise _BadRequest("pair_id must be the pair_id that /api/next gave.")
        if choice not in ("left", "right", "tie"):
            raise _BadRequest('choice must be "left", "right" or "tie".')
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < math.inf
        ):
            raise _BadRequest("seconds must be a number of seconds, 0 or more.")
        with self._lock:  # one rater answering from two tabs must not store the same showing twice
            waiting = pending(self.plan(rater), self.store.judgments(rater=rater))
            showing = next((s for s in waiting if s.pair.pair_id == wanted), None)
            if showing is None:
                raise _BadRequest(f"pair_id {wanted!r} is not waiting for {rater!r}'s judgment.", HTTPStatus.CONFLICT)
            pair = showing.pair
            judgment = Judgment(
                reference_id=pair.reference_id,
                image_a=str(pair.a.best_image),
                image_b=str(pair.b.best_image),
                choice="tie" if choice == "tie" else showing.side_to_choice(choice),
                rater=rater,
                reference_image=self.references[pair.a.reference_sha256],
                pair_id=pair.pair_id,
                shown_left=showing.left,
                repeat=showing.repeat,
                seconds=None if seconds is None else float(seconds),
                source="page",
            )
            self.store.add(judgment)
        return judgment


def _rater(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > _MAX_RATER:
        raise _BadRequest(f"rater must be a name of 1 to {_MAX_RATER} characters.")
    return value.strip()


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; every route needs the session token."""

    server: _Server
    timeout = 30  # a stalled client cannot hold a thread for ever

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        token = query.get("token", [""])[0]
        if not secrets.compare_digest(token.encode(), self.server.token.encode()):
            self._json(
                {"error": "this page needs the link with its token, as printed by imagerepainter judge"},
                HTTPStatus.FORBIDDEN,
            )
            return
        study = self.server.study
        try:
            if method == "GET" and url.path == "/":
                self._send(page_html().encode(), "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_CSP})
            elif method == "GET" and url.path.startswith("/image/"):
                self._image(url.path.removeprefix("/image/"))
            elif method == "GET" and url.path == "/api/next":
                self._json(study.next_for(query.get("rater", [""])[0], token=self.server.token))
            elif method == "POST" and url.path == "/api/judgment":
                judgment = study.record(self._body())
                self._json({"stored": True, "choice": judgment.choice, "repeat": judgment.repeat})
            else:
                self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        except _BadRequest as exc:
            self._json({"error": str(exc)}, exc.status)

    def _image(self, opaque: str) -> None:
        path = self.server.study.image_path(opaque)
        if path is None:
            self._json({"error": "no such image"}, HTTPStatus.NOT_FOUND)
            return
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(path.read_bytes(), kind, {"Cache-Control": "private, max-age=3600"})

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise _BadRequest("Content-Length must be a number.") from None
        if not 0 < length <= _MAX_BODY:
            raise _BadRequest(f"send a JSON object of at most {_MAX_BODY} bytes.")
        try:
            body = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _BadRequest("the body must be JSON.") from None
        if not isinstance(body, dict):
            raise _BadRequest("the body must be a JSON object.")
        return body

    def _json(self, value: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(value).encode(), "application/json", {"Cache-Control": "no-store"}, status)

    def _send(self, data: bytes, kind: str, headers: Mapping[str, str], status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: request lines would carry the token."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # closing waits for requests in flight: no judgment is cut off
    block_on_close = True

    def __init__(self, address: tuple[str, int], study: JudgingStudy, token: str) -> None:
        super().__init__(address, _Handler)
        self.study, self.token = study, token


class JudgingServer:
    """Serves a :class:`JudgingStudy` on 127.0.0.1 in a background thread; a new token each start.

    Use it as a context manager, or call :meth:`start` and :meth:`close`.

    Args:
        study: What to serve.
        port: The port; 0 picks a free one.
        host: Only ``127.0.0.1``: judgments are collected on this machine (a crowdsourcing front
            end reaches the API through its own proxy).

    Raises:
        ConfigurationError: another host, or the port is taken.
    """

    def __init__(self, study: JudgingStudy, *, port: int = 0, host: str = "127.0.0.1") -> None:
        if host != "127.0.0.1":
            raise ConfigurationError(f"The judging page listens on 127.0.0.1 only, not {host!r}.")
        self.study, self.host, self.port = study, host, port
        self.token = secrets.token_urlsafe(24)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> JudgingServer:
        """Listen and serve in a background thread."""
        try:
            self._server = _Server((self.host, self.port), self.study, self.token)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); choose another --port "
                "(0 picks a free one)."
            ) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="judging-server", daemon=True)
        self._thread.start()
        return self

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def page_url(self) -> str:
        """The judging page's URL, with this session's token."""
        return f"{self.base_url}/?token={self.token}"

    def close(self) -> None:
        """Stop serving; waits for requests in flight, so every judgment sent is stored or refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> JudgingServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
