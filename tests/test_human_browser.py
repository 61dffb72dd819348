"""The judging page in real headless Chromium: a rater types a name and answers pairs with the keyboard."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagerepainter.human import JudgmentStore
from imagerepainter.human.server import JudgingServer, JudgingStudy
from tests import browser
from tests.browser_cdp import LivePage
from tests.human_eval import BLINDED_WORDS, make_evaluation

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        browser.chromium_binary() is None,
        reason="headless Chromium not found (install: apt-get install -y --no-install-recommends chromium)",
    ),
]

READY = "document.body.dataset.state === 'ready' && document.body.dataset.pair"
IMAGES = "Array.from(document.images).map(i => [i.src, i.naturalWidth, i.getBoundingClientRect().toJSON()])"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_evaluation(tmp_path)


def _answer(page: LivePage, key: str) -> str:
    """Press ``key`` on the pair shown; return the pair's id once the next pair is shown."""
    pair = page.wait_for(READY)
    answered = int(page.evaluate("Number(document.body.dataset.answered || 0)"))
    page.press(key)
    page.wait_for(
        f"Number(document.body.dataset.answered || 0) === {answered + 1} && "
        "['ready', 'done'].includes(document.body.dataset.state)"
    )
    return str(pair)


def test_a_rater_answers_pairs_with_the_keyboard_and_they_are_stored(folder: Path) -> None:
    study = JudgingStudy(folder, repeat_share=0.0)
    with JudgingServer(study, port=0) as server, LivePage() as page:
        page.open(server.page_url)
        page.wait_for("document.body.dataset.state === 'name'")  # asks for a name first
        assert page.evaluate("document.activeElement.id") == "rater"
        page.type_text("ann")
        page.press("Enter")
        page.wait_for(READY)
        shown = page.evaluate(IMAGES)
        assert len(shown) == 3 and all(width > 0 for _, width, _ in shown)  # the CSP lets its images load
        text = page.evaluate("document.body.innerText")
        assert "Which is closer to the reference?" in text and "0 / 18 judged" in text
        seen = (text + " ".join(src for src, _, _ in shown)).lower()
        assert not [word for word in BLINDED_WORDS if word in seen]
        ref, left, right = (rect for _, _, rect in shown)
        assert ref["bottom"] <= left["top"] and left["top"] == right["top"] and left["right"] <= right["left"]

        keys = ["ArrowLeft", "ArrowRight", "ArrowDown", " ", "t"]
        answered = [_answer(page, key) for key in keys]
        assert "5 / 18 judged" in page.evaluate("document.body.innerText")
        assert page.evaluate("localStorage.getItem('judging.rater')") == "ann"

    stored = JudgmentStore(folder).judgments()
    assert [j.pair_id for j in stored] == answered and {j.rater for j in stored} == {"ann"}
    plan = {s.pair.pair_id: s for s in study.plan("ann")}
    expected = [plan[answered[0]].left, "b" if plan[answered[1]].left == "a" else "a", "tie", "tie", "tie"]
    assert [j.choice for j in stored] == expected  # left/right translated through what was shown
    assert all(j.shown_left == plan[j.pair_id].left and j.seconds is not None and j.seconds > 0 for j in stored)


def test_the_page_resumes_from_the_store_and_remembers_the_rater(folder: Path) -> None:
    with JudgingServer(JudgingStudy(folder, repeat_share=0.0), port=0) as server, LivePage() as page:
        page.open(server.page_url)
        page.wait_for("document.body.dataset.state === 'name'")
        page.type_text("bob")
        page.press("Enter")
        first = _answer(page, "ArrowLeft")
    with JudgingServer(JudgingStudy(folder, repeat_share=0.0), port=0) as server, LivePage() as page:
        page.open(server.page_url)
        page.evaluate("localStorage.setItem('judging.rater', 'bob')")  # a new profile: as if remembered
        page.open(server.page_url)
        pair = page.wait_for(READY)
        assert pair != first and "1 / 18 judged" in page.evaluate("document.body.innerText")


def test_the_page_without_its_token_shows_nothing(folder: Path) -> None:
    with JudgingServer(JudgingStudy(folder), port=0) as server, LivePage() as page:
        page.open(server.base_url + "/")
        page.wait_for("document.readyState === 'complete'")
        assert "Which is closer" not in page.evaluate("document.body.innerText")


def test_on_a_narrow_screen_the_images_stack(folder: Path) -> None:
    with JudgingServer(JudgingStudy(folder), port=0) as server, LivePage(window=(480, 900)) as page:
        page.open(server.page_url)
        page.wait_for("document.body.dataset.state === 'name'")
        page.type_text("cy")
        page.press("Enter")
        page.wait_for(READY)
        ref, left, right = (rect for _, _, rect in page.evaluate(IMAGES))
        assert ref["bottom"] <= left["top"] and left["bottom"] <= right["top"]
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
