"""The judging server over real HTTP on 127.0.0.1: token, blinding, path safety, stored judgments, resuming."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from imagerepainter.bench.store import ResultsStore
from imagerepainter.errors import ConfigurationError
from imagerepainter.human import JudgmentStore
from imagerepainter.human.server import REFERENCES_FOLDER, JudgingServer, JudgingStudy, inside_folder
from tests import human_eval
from tests.human_eval import BLINDED_WORDS

evaluation, folder = human_eval.evaluation, human_eval.folder  # the shared fixtures


def _get(url: str) -> tuple[int, bytes, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def _post(url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Client:
    def __init__(self, server: JudgingServer) -> None:
        self.base, self.token = server.base_url, server.token

    def next(self, rater: str) -> dict[str, Any]:
        status, body, _ = _get(f"{self.base}/api/next?token={self.token}&rater={rater}")
        assert status == 200, body
        return json.loads(body)

    def judge(self, rater: str, pair: str, choice: str, seconds: float = 1.0) -> tuple[int, Any]:
        body = {"pair_id": pair, "rater": rater, "choice": choice, "seconds": seconds}
        return _post(f"{self.base}/api/judgment?token={self.token}", body)


def test_every_request_without_the_token_is_refused(folder: Path) -> None:
    with JudgingServer(JudgingStudy(folder), port=0) as server:
        client = Client(server)
        shown = client.next("ann")
        for path in ("/", "/api/next?rater=ann", shown["left"].split("?")[0], "/nothing"):
            for suffix in ("", "?token=", "?token=wrong", f"?token={server.token[:-1]}"):
                status, _, _ = _get(server.base_url + path + (suffix if "?" not in path else suffix.replace("?", "&")))
                assert status == 403, (path, suffix)
        status, answer = _post(
            f"{server.base_url}/api/judgment?token=nope",
            {"pair_id": shown["pair_id"], "rater": "ann", "choice": "left"},
        )
        assert status == 403 and "token" in answer["error"]
        assert JudgmentStore(folder).judgments() == []  # nothing stored without the token
        assert _get(f"{server.base_url}{shown['left']}")[0] == 200  # with it, the image is served
    assert JudgingServer(JudgingStudy(folder)).token != server.token  # a new token each start


def test_the_page_and_its_image_urls_are_blinded(folder: Path) -> None:
    with JudgingServer(JudgingStudy(folder), port=0) as server:
        status, page, headers = _get(server.page_url)
        assert status == 200 and "Which is closer to the reference?" in page.decode()
        assert "script-src 'sha256-" in headers["Content-Security-Policy"]
        shown = Client(server).next("ann")
        api_text = json.dumps(shown)
        text = page.decode().lower() + api_text.lower()
        assert not [word for word in BLINDED_WORDS if word in text]
        assert not [c.case_id[:10] for c in ResultsStore(folder).cases() if c.case_id[:10] in api_text]
        for side in ("reference", "left", "right"):
            status, data, headers = _get(server.base_url + shown[side])
            assert status == 200 and headers["Content-Type"] == "image/png" and data.startswith(b"\x89PNG")


def test_a_judgment_is_stored_with_what_was_shown(folder: Path) -> None:
    study = JudgingStudy(folder, repeat_share=0.0)
    with JudgingServer(study, port=0) as server:
        client = Client(server)
        first = client.next("ann")
        assert first["progress"] == {"done": 0, "total": len(study.pairs)} and first["seconds_left"] is None
        showing = study.plan("ann")[0]
        left_path = study.image_path(first["left"].split("/")[-1].split("?")[0])
        status, answer = client.judge("ann", first["pair_id"], "left", seconds=4.0)
        assert status == 200 and answer["stored"]
        (stored,) = JudgmentStore(folder).judgments()
        assert stored.pair_id == first["pair_id"] and stored.shown_left == showing.left and not stored.repeat
        assert stored.choice == showing.left  # "left" became the image shown on the left
        assert left_path == (folder / getattr(stored, f"image_{stored.choice}")).resolve()
        assert stored.reference_image is not None and stored.reference_image.startswith(REFERENCES_FOLDER.as_posix())
        assert stored.rater == "ann" and stored.seconds == 4.0 and stored.source == "page"
        second = client.next("ann")
        assert second["pair_id"] != first["pair_id"] and second["progress"]["done"] == 1
        assert second["seconds_left"] == pytest.approx(4.0 * (len(study.pairs) - 1))
        assert client.judge("ann", second["pair_id"], "tie")[0] == 200
        assert JudgmentStore(folder).judgments()[-1].choice == "tie"
        assert client.judge("ann", first["pair_id"], "left")[0] == 409  # already judged: not stored twice
        assert client.next("bob")["progress"]["done"] == 0  # each rater has their own progress


@pytest.mark.parametrize(
    "body",
    [
        {"rater": "ann", "choice": "up"},
        {"rater": "ann", "choice": "a"},  # the page speaks left/right: a/b would bypass the sides
        {"rater": "", "choice": "left"},
        {"rater": "x" * 65, "choice": "left"},
        {"rater": "ann", "choice": "left", "seconds": -1},
        {"rater": "ann", "choice": "left", "seconds": "soon"},
        {"rater": "ann", "choice": "left", "seconds": True},
        {"rater": "ann", "choice": "left", "pair_id": "nope"},
        {"rater": "ann", "choice": "left", "pair_id": None},
        {"rater": "ann", "choice": "left", "pair_id": 7},
        b"not json",
        b"[1, 2]",
    ],
)
def test_bad_judgments_get_400_and_store_nothing(folder: Path, body: Any) -> None:
    study = JudgingStudy(folder)
    with JudgingServer(study, port=0) as server:
        if isinstance(body, dict):
            body = {"pair_id": Client(server).next("ann")["pair_id"]} | body
        status, answer = _post(f"{server.base_url}/api/judgment?token={server.token}", body)
        assert status in (400, 409) and answer["error"]
    assert JudgmentStore(folder).judgments() == []


def test_the_rater_name_is_required(folder: Path) -> None:
    with JudgingServer(JudgingStudy(folder), port=0) as server:
        status, body, _ = _get(f"{server.base_url}/api/next?token={server.token}")
        assert status == 400 and b"rater" in body


@pytest.mark.parametrize(
    "path",
    [
        "/image/../results.sqlite",
        "/image/..%2fresults.sqlite",
        "/image/%2e%2e/%2e%2e/etc/passwd",
        "/image//etc/passwd",
        "/image/%2Fetc%2Fpasswd",
        "/../results.sqlite",
        "/image/results.sqlite",
        "/image/images",
    ],
)
def test_paths_outside_the_image_ids_are_refused(folder: Path, path: str) -> None:
    with JudgingServer(JudgingStudy(folder), port=0) as server:
        status, body, _ = _get(f"{server.base_url}{path}?token={server.token}")
        assert status == 404 and b"SQLite" not in body and b"root:" not in body


def test_images_that_leave_the_folder_are_never_served(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG secret")
    assert inside_folder(folder, "../secret.png") is None
    assert inside_folder(folder, str(outside)) is None  # an absolute path
    assert inside_folder(folder, "images") is None  # a folder, not a file
    cases = ResultsStore(folder).cases()
    victim = folder / str(cases[0].best_image)
    victim.unlink()
    os.symlink(outside, victim)  # a symlink inside the folder that points out of it
    assert inside_folder(folder, str(cases[0].best_image)) is None
    study = JudgingStudy(folder)
    assert all(cases[0].case_id not in (p.a.case_id, p.b.case_id) for p in study.pairs)  # left out of the study
    with JudgingServer(study, port=0) as server:
        client = Client(server)
        served = []
        while not (shown := client.next("ann"))["done"]:
            served += [_get(server.base_url + shown[side])[1] for side in ("left", "right")]
            client.judge("ann", shown["pair_id"], "tie")
        assert served and all(b"secret" not in data for data in served)


def test_references_are_copied_into_the_folder_once(folder: Path) -> None:
    study = JudgingStudy(folder)
    copies = sorted((folder / REFERENCES_FOLDER).iterdir())
    assert len(copies) == 3 and set(study.references.values()) == {
        f"{REFERENCES_FOLDER.as_posix()}/{p.name}" for p in copies
    }
    moved = Path(str(ResultsStore(folder).cases()[0].extra["reference_path"]))
    hidden = moved.with_name(moved.name + ".away")
    moved.rename(hidden)
    try:
        JudgingStudy(folder)  # the copies are enough once made
        shutil.rmtree(folder / REFERENCES_FOLDER)
        with pytest.raises(ConfigurationError, match="is no longer at"):
            JudgingStudy(folder)
    finally:
        hidden.rename(moved)


def test_a_restarted_server_continues_where_the_rater_stopped(folder: Path) -> None:
    with JudgingServer(JudgingStudy(folder, seed=2), port=0) as server:
        client = Client(server)
        done = []
        for choice in ("left", "right", "tie"):
            shown = client.next("ann")
            done.append(shown["pair_id"])
            assert client.judge("ann", shown["pair_id"], choice)[0] == 200
        expected_next = client.next("ann")["pair_id"]
    with JudgingServer(JudgingStudy(folder, seed=2), port=0) as server:
        again = Client(server).next("ann")
        assert again["pair_id"] == expected_next and again["progress"]["done"] == 3


def test_a_rater_is_done_after_every_showing_and_repeats_are_marked(folder: Path) -> None:
    study = JudgingStudy(folder, repeat_share=0.5)
    with JudgingServer(study, port=0) as server:
        client = Client(server)
        while not (shown := client.next("ann"))["done"]:
            assert client.judge("ann", shown["pair_id"], "left")[0] == 200
        assert shown["progress"] == {"done": study.showings_per_rater, "total": study.showings_per_rater}
    stored = JudgmentStore(folder).judgments(rater="ann")
    repeats = [j for j in stored if j.repeat]
    assert len(repeats) == round(0.5 * len(study.pairs)) and len(stored) == study.showings_per_rater
    for again in repeats:  # the same pair, sides swapped: "left" both times means two different images
        first = next(j for j in stored if j.pair_id == again.pair_id and not j.repeat)
        assert first.shown_left != again.shown_left and first.choice != again.choice


def test_a_folder_without_an_evaluation_or_a_taken_port_is_a_clear_error(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"holds no results\.sqlite"):
        JudgingStudy(tmp_path / "empty")
    study = JudgingStudy(folder)
    with JudgingServer(study, port=0) as server, pytest.raises(ConfigurationError, match="choose another --port"):
        JudgingServer(study, port=server.port).start()
    with pytest.raises(ConfigurationError, match=r"127\.0\.0\.1 only"):
        JudgingServer(study, host="0.0.0.0")
    with sqlite3.connect(folder / "results.sqlite") as db:
        db.execute("DELETE FROM cases WHERE model = 'loose'")
        db.execute("DELETE FROM cases WHERE mode = 'repaint'")
    with pytest.raises(ConfigurationError, match="two finished cases"):
        JudgingStudy(folder)
