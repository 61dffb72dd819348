"""The HTML report: content, escaping, prompt diffs, chart, image modes, and a real headless Chromium."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageStat

from imagerepainter import Repainter, RepaintResult
from imagerepainter.report import diff_words, render_report, write_report
from imagerepainter.testing.fakes import FakeMLLM, FakeT2I, ScriptedScorer
from tests import browser

# Three rounds that each improve, so the loop runs all of them (best so far 0.3, 0.5, 0.6).
SCORES = [0.1, 0.3, 0.2, 0.4, 0.2, 0.5, 0.6, 0.1, 0.55]
EVIL = '<script>document.body.dataset.pwned="1"</script><img src=x onerror="document.body.dataset.pwned=\'2\'">'

needs_chromium = pytest.mark.skipif(
    browser.chromium_binary() is None,
    reason="headless Chromium not found (install: apt-get install -y --no-install-recommends chromium)",
)


def photo(size: int = 512) -> Image.Image:
    """A photo-like reference (smooth gradients plus noise: thousands of colours)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, (xx + yy) / 2], axis=-1) * 200 + rng.normal(0, 20, (size, size, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def run(
    scores: list[float],
    *,
    max_rounds: int = 3,
    block: Callable[[Any], bool] | None = None,
    mllm: FakeMLLM | None = None,
) -> RepaintResult:
    repainter = Repainter(
        mllm=mllm or FakeMLLM(),
        t2i=FakeT2I(size=64, block=block),
        scorer=ScriptedScorer(scores),
        max_rounds=max_rounds,
        adaptive_variants=False,  # three candidates a round, as the scripted scores assume
    )
    return repainter.run(photo())


def srcs(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def n_images(result: RepaintResult) -> int:
    """Images a report shows: the reference, the best (if any) and every candidate."""
    return 1 + (result.best is not None) + len(result.candidates)


@pytest.fixture(scope="module")
def result() -> RepaintResult:
    res = run(SCORES)
    assert len(res.rounds) == 3 and res.stop_reason == "max_rounds"
    return res


@pytest.fixture(scope="module")
def evil_result() -> RepaintResult:
    """Model-written text full of markup: the initial description, the critique and every revised prompt."""

    def critique(text: str, images: object) -> dict[str, Any]:
        return {
            "style": f"style {EVIL}",
            "composition": "composition",
            "content": "content",
            "edits": [f"edit {EVIL}"],
            "is_match": False,
            "revised_prompt": f"a cat {EVIL}",
            "variants": [f"v1 {EVIL}", "v2"],
        }

    mllm = FakeMLLM(script={"GlobalDescription": [{"description": f"a cat {EVIL}"}], "CritiqueAndRevision": critique})
    return run(SCORES, mllm=mllm)


# ----------------------------------------------------------------------------- plain HTML


def test_report_shows_the_run(result: RepaintResult) -> None:
    page = render_report(result, title="My run")
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<title>My run</title>" in page
    for fact in ("max_rounds", "fake-t2i", "scripted", "0.6000", "9 (0 blocked)", "3 × 3 max"):
        assert fact in page, fact
    # every round has a section with its prompt, its candidates' seeds, and (if any) its critique
    for rnd in result.rounds:
        assert f'id="round-{rnd.index}"' in page
        for cand in rnd.candidates:
            assert f"seed {cand.seed}" in page
    for rnd in result.rounds[:-1]:  # the last round's best is never critiqued: the loop stopped
        assert rnd.critique is not None and rnd.best is not None
        assert f"<h3>Critique of round {rnd.index}, candidate {rnd.best.index}</h3>" in page
    assert page.count("<h3>Critique of") == 2
    assert page.count('class="badge">best overall') == 2  # in its round and beside the reference
    assert page.count('class="badge round">round best</span>') == 2  # rounds 1 and 2; round 3's best is the global best
    assert "<summary>Image Understanding Tree</summary>" in page and "fake relationships 1" in page


def test_report_needs_no_network_and_forbids_scripts(result: RepaintResult) -> None:
    page = render_report(result)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page and "@import" not in page
    assert "default-src 'none'" in page


def test_model_text_is_escaped(evil_result: RepaintResult) -> None:
    page = render_report(evil_result, title="<b>title</b>")
    assert "<script" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
    assert "&lt;script&gt;document.body.dataset.pwned" in page
    assert "<title>&lt;b&gt;title&lt;/b&gt;</title>" in page
    assert len(srcs(page)) == n_images(evil_result)  # no <img> smuggled in


def test_diff_words_marks_insertions_and_deletions() -> None:
    assert diff_words("a red cat on a mat", "a ginger cat on a mat") == (
        "a <del>red</del><ins>ginger</ins> cat on a mat"
    )
    assert diff_words("a cat", "a cat, at night") == "a cat<ins>, at night</ins>"
    assert diff_words("a cat, at night", "a cat") == "a cat<del>, at night</del>"
    assert diff_words("same  words", "same  words") == "same  words"
    assert diff_words("", "<i>new</i>") == "<ins>&lt;i&gt;new&lt;/i&gt;</ins>"


def test_round_prompts_are_diffed_against_the_previous_round(result: RepaintResult) -> None:
    page = render_report(result)
    section = page.split('id="round-2"')[1].split("<h3>Candidates")[0]
    assert "changes since round 1" in section
    assert diff_words(result.rounds[0].prompt, result.rounds[1].prompt) in section
    assert "<ins>" in section
    first = page.split('id="round-1"')[1].split("<h3>Candidates")[0]
    assert "<ins>" not in first and "<del>" not in first


def test_chart_has_a_point_per_score(result: RepaintResult) -> None:
    page = render_report(result)
    chart = re.search(r'<svg id="score-chart"[^>]*>.*?</svg>', page, re.S)
    assert chart is not None
    svg = chart.group(0)
    assert 'data-points="9"' in svg and 'data-rounds="3"' in svg and 'data-best-so-far-points="3"' in svg
    assert (
        svg.count('class="pt-cand"') == 9 and svg.count('class="pt-best"') == 3 and svg.count('class="pt-round"') == 3
    )
    assert ">round</text>" in svg and "score (higher is better)" in svg
    # best so far rises with the scores: the line's y pixel goes up (smaller) round after round
    segments = re.findall(r'class="line-best" x1="[^"]+" y1="([^"]+)" x2="[^"]+" y2="([^"]+)"', svg)
    assert len(segments) == 2 and segments[0][1] == segments[1][0]  # joined end to end
    ys = [float(segments[0][0]), *(float(end) for _, end in segments)]
    assert ys[0] > ys[1] > ys[2]


def test_embedded_images_are_downscaled_data_urls(result: RepaintResult) -> None:
    page = render_report(result, max_side=128)
    urls = srcs(page)
    assert len(urls) == n_images(result)
    assert all(u.startswith(("data:image/jpeg;base64,", "data:image/png;base64,")) for u in urls)
    reference = urls[0]
    assert reference.startswith("data:image/jpeg")  # photo-like: JPEG; the flat fakes are PNG
    decoded = Image.open(io.BytesIO(base64.b64decode(reference.split(",", 1)[1])))
    assert decoded.size == (128, 128)
    assert all(u.startswith("data:image/png") for u in urls[1:])
    assert len(render_report(result, max_side=64)) < len(page)


def test_linked_images_use_image_href(result: RepaintResult, tmp_path: Path) -> None:
    page = render_report(result, embed_images=False, image_href=lambda ref: f"img/{ref['sha256'][:8]}.png?a=1&b=2")
    assert "data:image" not in page
    assert all(re.fullmatch(r"img/[0-9a-f]{8}\.png\?a=1&amp;b=2", u) for u in srcs(page))
    # the default links match the layout RepaintResult.save writes
    result.save(tmp_path)
    report = write_report(result, tmp_path / "report.html", embed_images=False)
    linked = srcs(report.read_text())
    assert len(linked) == n_images(result)
    assert all((tmp_path / u).is_file() for u in linked)
    assert report.stat().st_size < len(render_report(result)) / 4


def test_blocked_candidates_are_labelled() -> None:
    res = run([0.2, 0.4, 0.3, 0.5, 0.6, 0.2, 0.7, 0.1], block=lambda req: req.seed == 1)
    blocked = [c for c in res.candidates if c.blocked]
    assert len(blocked) == 1
    page = render_report(res)
    assert page.count("blocked by safety checker</span>") == 1
    assert page.count('class="pt-cand"') == len(res.candidates) - 1
    assert "9 (1 blocked)" in page


def test_a_run_without_any_score_still_renders() -> None:
    res = run([], max_rounds=2, block=lambda req: True)
    assert res.best is None and all(s is None for s in res.scores)
    page = render_report(res)
    assert 'data-points="0"' in page and "no scored images to plot" in page
    assert "no image was scored" in page
    assert page.count("blocked by safety checker</span>") == len(res.candidates)
    assert len(srcs(page)) == n_images(res)


def test_an_unfinished_run_shows_its_best_so_far_and_a_notice() -> None:
    from imagerepainter.errors import MLLMError

    failures = iter([False, True])

    def critique(text: str, images: object) -> dict[str, Any]:
        if next(failures, True):
            raise MLLMError("the server is down", backend="fake")
        return {"edits": ["x"], "revised_prompt": "p2", "variants": ["v1", "v2"]}

    with pytest.raises(MLLMError) as info:
        run(SCORES, mllm=FakeMLLM(script={"CritiqueAndRevision": critique}))
    partial = info.value.partial_result
    assert not partial.finished and len(partial.rounds) == 2 and partial.best.score == 0.5
    page = render_report(partial)
    assert "not finished" in page and "best so far" in page and "no image was scored" not in page
    page = render_report(partial, notice="Interrupted <now>; resume it")
    assert '<p class="notice" role="status">Interrupted &lt;now&gt;; resume it</p>' in page


def test_a_critique_of_an_earlier_round_says_so() -> None:
    res = run([0.5, 0.6, 0.4, 0.1, 0.2, 0.3, 0.7, 0.2, 0.2])  # round 2 does worse than round 1
    page = render_report(res)
    assert "Critique of round 1, candidate " in page and "(the best so far): round 2 did no better" in page


def test_images_missing_from_the_store_are_shown_as_unavailable(tmp_path: Path) -> None:
    res = run(SCORES)
    res.save(tmp_path)
    reloaded = RepaintResult.load(tmp_path)
    for png in (tmp_path / "images").glob("*.png"):
        png.unlink()
    page = render_report(reloaded)
    assert srcs(page) == [] and page.count("image unavailable") == n_images(res)


def test_write_report_is_atomic_and_readable(result: RepaintResult, tmp_path: Path) -> None:
    target = write_report(result, tmp_path / "sub" / "report.html", title="t")
    assert target == tmp_path / "sub" / "report.html"
    assert target.read_text(encoding="utf-8") == render_report(result, title="t")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temporary file left
    assert target.stat().st_mode & 0o044  # readable by others, like any file the user writes (umask)


def test_max_side_must_be_positive(result: RepaintResult) -> None:
    with pytest.raises(ValueError, match="max_side"):
        render_report(result, max_side=0)


# ----------------------------------------------------------------------------- real browser


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("window", [(1280, 2000), (500, 1000)], ids=["desktop", "narrow"])
def test_report_loads_in_chromium(result: RepaintResult, tmp_path: Path, window: tuple[int, int]) -> None:
    page = write_report(result, tmp_path / "report.html")
    body = browser.probe(page, window=window)
    assert body.get("data-probe") == "done", body
    assert body["data-images-loaded"] == f"{n_images(result)}/{n_images(result)}"
    assert body["data-chart-points"] == "9"
    assert int(body["data-chart-width"]) > 300
    assert body["data-overflow-x"] == "false"  # nothing wider than the window, even when narrow
    assert body["data-toc-links"] == str(len(result.rounds))  # each round linked from the contents
    before, after = (int(w) for w in body["data-zoom"].split("->"))
    assert after > before  # a clicked thumbnail shows larger


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("width", [480, 1280], ids=["phone", "desktop"])
def test_report_is_readable_on_a_phone_and_a_desktop(result: RepaintResult, tmp_path: Path, width: int) -> None:
    """The chart's text keeps a readable size at any width, labels never collide, words are never cut."""
    page = write_report(result, tmp_path / "report.html")
    found = browser.probe(page, window=(width, 2000), script=browser.LAYOUT_JS)
    assert found.get("data-probe") == "done"
    assert float(found["data-chart-text-min-height"]) >= 12  # about 10 px type or more, as drawn
    assert found["data-chart-text-overlaps"] == "0", found["data-overlap-example"]
    assert found["data-chart-text-outside"] == "0", found["data-outside-example"]
    assert found["data-broken-words"] == "0", found["data-broken-example"]
    assert found["data-overflow-x"] == "false"


@pytest.mark.browser
@needs_chromium
def test_linked_report_loads_in_chromium(result: RepaintResult, tmp_path: Path) -> None:
    """Relative image links resolve from file:// and the page's CSP allows them."""
    result.save(tmp_path)
    page = write_report(result, tmp_path / "report.html", embed_images=False)
    body = browser.probe(page)
    assert body["data-images-loaded"] == f"{n_images(result)}/{n_images(result)}"


@pytest.mark.browser
@needs_chromium
def test_model_text_does_not_run_in_chromium(evil_result: RepaintResult, tmp_path: Path) -> None:
    body = browser.probe(write_report(evil_result, tmp_path / "report.html"))
    assert body.get("data-probe") == "done"
    assert "data-pwned" not in body
    assert body["data-images-loaded"] == f"{n_images(evil_result)}/{n_images(evil_result)}"


@pytest.mark.browser
@needs_chromium
def test_report_screenshot_is_not_blank(result: RepaintResult, tmp_path: Path) -> None:
    page = write_report(result, tmp_path / "report.html")
    shot = browser.screenshot(page, tmp_path / "report.png", window=(1280, 2000))
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    assert max(ImageStat.Stat(image).stddev) > 20  # a blank page has ~0
    assert len(image.getcolors(1 << 20) or []) > 1000  # text, the photo-like reference, candidates


def test_a_notebook_shows_model_written_prompts_as_text() -> None:
    prompt = "a red circle <lora:detail:0.8> & <b>bold</b><script>alert(1)</script>"
    res = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 9), max_rounds=1).run(
        photo(), prompt=prompt
    )
    page = res._repr_html_()
    assert "<script>" not in page and "<b>bold" not in page and "<lora" not in page
    assert html.escape(prompt) in page  # the whole prompt, as text


def test_the_contents_link_each_round_with_its_time_and_cost() -> None:
    res = run(SCORES)
    page = render_report(res)
    toc = page.split('<nav class="toc">', 1)[1].split("</nav>", 1)[0]
    rows = re.findall(r"<tr><td><a href=\"#round-(\d+)\">.*?</tr>", toc)
    assert rows == [str(r.index) for r in res.rounds]
    for r in res.rounds:
        calls = [c for c in res.calls if c["round"] == r.index]
        row = re.search(rf'<a href="#round-{r.index}">.*?</tr>', toc).group(0)
        cells = re.findall(r"<td>(.*?)</td>", row)
        # after the round's link: best so far, images, rendering and scoring, model calls, model time, tokens
        assert cells[1] == str(len(r.candidates)) and cells[3] == str(len(calls))
        assert r.seconds is not None and cells[2] == f"{r.seconds:.1f} s"
