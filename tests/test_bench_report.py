"""Leaderboards from case records: aggregation, pairing, failures, and the CSV / Markdown / HTML reports."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from html import escape as html_escape
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imagerepainter.bench.costs import CaseCost, DescriptionCost, MLLMUsage
from imagerepainter.bench.leaderboard import Leaderboard, build_leaderboard, render_markdown, write_reports
from imagerepainter.bench.prices import load_prices
from imagerepainter.bench.records import GROUP_ALL, CaseResult, Group
from imagerepainter.errors import ConfigurationError
from tests import browser

scipy_stats = pytest.importorskip("scipy.stats")

EVIL = '<script>document.body.dataset.pwned="1"</script><img src=x onerror="document.body.dataset.pwned=\'2\'">'
TRUE_MEANS = {"strong": 0.80, "medium": 0.70, "weak": 0.55}  # single mode; repaint adds 0.05
CATEGORIES = ("animal", "scene")
STYLES = ("photo", "painting")

needs_chromium = pytest.mark.skipif(
    browser.chromium_binary() is None,
    reason="headless Chromium not found (install: apt-get install -y --no-install-recommends chromium)",
)


def make_case(
    model: str,
    mode: str,
    ref: int,
    value: float | None,
    *,
    status: str = "ok",
    error: str | None = None,
    extra_metrics: dict[str, float] | None = None,
    primary: str = "paper",
    higher: bool = True,
    seed: int = 0,
    **fields: Any,
) -> CaseResult:
    metrics = {} if value is None else {primary: value}
    metrics.update(extra_metrics or {})
    return CaseResult(
        case_id=f"{model}|{mode}|{ref}|{seed}",
        dataset="demo",
        reference_id=f"ref-{ref:02d}",
        reference_sha256=hashlib.sha256(str(ref).encode()).hexdigest(),
        category=fields.pop("category", CATEGORIES[ref % 2]),
        style=fields.pop("style", STYLES[(ref // 2) % 2]),
        model=model,
        model_spec=f"sandbox?{model}",
        mode=mode,  # type: ignore[arg-type]
        seed=seed,
        status=status,  # type: ignore[arg-type]
        error=error,
        metrics=metrics,
        higher_is_better={name: higher for name in metrics},
        primary_metric=primary,
        **fields,
    )


def graded_cases(n_refs: int = 24, seed: int = 0) -> list[CaseResult]:
    """Three models of known strength on the same references; per-reference difficulty shared by all."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 0.05, n_refs)
    cases = []
    for model, mean in TRUE_MEANS.items():
        for mode, lift in (("single", 0.0), ("repaint", 0.05)):
            for ref in range(n_refs):
                value = float(mean + lift + difficulty[ref] + rng.normal(0, 0.01))
                cases.append(make_case(model, mode, ref, value, extra_metrics={"ssim": value / 2}))
    return cases


@pytest.fixture(scope="module")
def board() -> Leaderboard:
    return build_leaderboard(graded_cases())


# ----------------------------------------------------------------------------- aggregation


def test_rows_per_model_mode_and_group_with_summaries(board: Leaderboard) -> None:
    groups = {r.group for r in board.rows}
    assert groups == {
        GROUP_ALL,
        Group.category("animal"),
        Group.category("scene"),
        Group.style("photo"),
        Group.style("painting"),
    }
    assert board.modes == ["single", "repaint"] and board.models == sorted(TRUE_MEANS)
    assert len(board.rows) == 3 * 2 * 5
    cases = graded_cases()
    for row in board.rows:
        values = [
            c.metrics["paper"]
            for c in cases
            if c.model == row.model
            and c.mode == row.mode
            and row.group in (GROUP_ALL, Group.category(c.category), Group.style(c.style))
        ]
        assert row.n == len(values) == (24 if row.group == GROUP_ALL else 12)
        assert row.mean == pytest.approx(float(np.mean(values)))
        assert row.std == pytest.approx(float(np.std(values, ddof=1)))
        assert row.ci_low is not None and row.ci_high is not None and row.ci_low < row.mean < row.ci_high
        assert row.metrics["ssim"] == pytest.approx(row.mean / 2)
    assert board.metrics == ["paper", "ssim"] and board.directions == {"paper": True, "ssim": True}


def test_models_rank_in_their_true_order_with_significant_paired_tests(board: Leaderboard) -> None:
    for mode in ("single", "repaint"):
        assert board.ranking(mode) == ["strong", "medium", "weak"]
        assert [board.row(m, mode).rank for m in ("strong", "medium", "weak")] == [1, 2, 3]  # type: ignore[union-attr]
        pairs = [c for c in board.comparisons if c.mode == mode]
        assert [(c.model_a, c.model_b) for c in pairs] == [
            ("strong", "medium"),
            ("strong", "weak"),
            ("medium", "weak"),
        ]
        for c in pairs:
            assert c.n == 24 and c.wins == 24 and c.win_rate == 1.0 and c.effect_size == 1.0
            assert c.p_value is not None and c.p_value < 1e-4
            assert c.p_adjusted is not None and c.p_adjusted >= c.p_value
            assert c.mean_diff is not None and c.mean_diff > 0


def test_gain_of_repaint_over_single_is_paired_per_model(board: Leaderboard) -> None:
    gains = {(g.model, g.group): g for g in board.gains}
    assert set(gains) == {(m, g) for m in TRUE_MEANS for g in {r.group for r in board.rows}}
    for model in TRUE_MEANS:
        g = gains[(model, GROUP_ALL)]
        assert g.n == 24 and g.gain == pytest.approx(0.05, abs=0.01)
        assert g.single == pytest.approx(board.row(model, "single").mean)  # type: ignore[union-attr]
        assert g.ci_low is not None and g.ci_low > 0 and g.p_value is not None and g.p_value < 1e-4


def test_pairs_use_only_shared_references_and_average_seeds() -> None:
    cases = [make_case("a", "single", r, 0.6 + r / 10) for r in range(4)]
    cases += [make_case("b", "single", r, 0.4 + r / 10) for r in range(1, 4)]  # b misses ref 0
    cases += [make_case("b", "single", 1, 1.0, seed=1)]  # a second seed of ref 1 for b: mean 0.75
    cases += [make_case("a", "repaint", r, 0.7 + r / 10) for r in range(2)]  # repaint only on refs 0, 1
    board = build_leaderboard(cases)
    (pair,) = board.comparisons
    assert (pair.model_a, pair.model_b, pair.n) == ("a", "b", 3)
    # ref 1: a 0.7 vs b mean(0.5, 1.0) = 0.75 -> b wins there; refs 2, 3: a wins.
    assert (pair.wins, pair.losses) == (2, 1)
    b = board.row("b", "single")
    assert b is not None and b.n == 3 and b.mean == pytest.approx((0.75 + 0.6 + 0.7) / 3)
    (gain,) = [g for g in board.gains if g.group == GROUP_ALL]
    assert (gain.model, gain.n, gain.gain) == ("a", 2, pytest.approx(0.1))
    assert gain.single == pytest.approx(0.65)  # the single-mode mean on the two paired references only


def test_failed_cases_are_counted_and_listed_never_averaged() -> None:
    cases = [make_case("a", "single", r, 0.5) for r in range(3)]
    cases.append(make_case("a", "single", 3, 0.99, status="failed", error="GenerationError: out of memory"))
    cases.append(make_case("a", "single", 4, None))  # finished, but without the primary metric
    cases.append(make_case("a", "single", 5, float("nan")))  # not a number: not averaged either
    board = build_leaderboard(cases)
    row = board.row("a", "single")
    assert row is not None and (row.n, row.mean, row.failed) == (3, 0.5, 1)
    assert board.row("a", "single", Group.category("scene")).failed == 1  # type: ignore[union-attr]
    assert [(f.reference_id, f.error) for f in board.failed] == [("ref-03", "GenerationError: out of memory")]
    assert (board.cases, board.ok) == (6, 5)


def test_one_counting_rule_for_every_column() -> None:
    """A case without a finite primary value is in no column; a column with a hole among n is empty, not shrunk."""
    cases = [make_case("a", "single", r, 0.5 + r / 10, extra_metrics={"ssim": 0.2}) for r in range(3)]
    cases.append(make_case("a", "single", 3, None, extra_metrics={"ssim": 0.9}))  # finished, no primary value
    cases.append(make_case("a", "single", 4, float("nan"), extra_metrics={"ssim": 0.9}))
    board = build_leaderboard(cases)
    row = board.row("a", "single")
    assert row is not None and (row.n, row.missing, row.failed) == (3, 2, 0)
    assert row.metrics == {"paper": pytest.approx(0.6), "ssim": pytest.approx(0.2)}  # 0.9 is not averaged in
    assert [(m.reference_id, m.metric, m.reason, m.counted) for m in board.missing] == [
        ("ref-03", "paper", "not computed", False),
        ("ref-04", "paper", "NaN", False),
    ]
    holes = [*cases[:3], make_case("a", "single", 5, 0.7, extra_metrics={"ssim": float("inf")})]
    board = build_leaderboard(holes)
    row = board.row("a", "single")
    assert row is not None and row.n == 4 and row.metrics["ssim"] is None and row.metrics["paper"] is not None
    assert [(m.metric, m.reason, m.counted) for m in board.missing] == [("ssim", "inf", True)]


def test_records_in_any_order_give_byte_identical_reports(tmp_path: Path) -> None:
    cases = graded_cases(n_refs=8)
    cases += [make_case("weak", "single", 8, None, status="failed", error="GenerationError: boom")]
    cases += [make_case("strong", "single", r, 0.9 + r / 100, seed=1) for r in range(8)]  # a second seed
    shuffled = list(cases)
    np.random.default_rng(5).shuffle(shuffled)
    boards = [build_leaderboard(order) for order in (cases, cases[::-1], shuffled)]
    assert boards[0].model_dump_json() == boards[1].model_dump_json() == boards[2].model_dump_json()
    first = write_reports(cases, tmp_path / "one")
    second = write_reports(cases[::-1], tmp_path / "two")
    for kind in ("csv", "md", "json"):
        assert first[kind].read_bytes() == second[kind].read_bytes(), kind


def test_failing_the_hard_references_does_not_buy_a_better_rank() -> None:
    """B beats A on each of the 7 references both finished; A failed the 3 hardest, so A's own mean is higher."""
    easy, hard = [0.80, 0.78, 0.76, 0.75, 0.74, 0.72, 0.70], [0.30, 0.25, 0.20]
    cases = [make_case("a", "single", r, v - 0.02) for r, v in enumerate(easy)]
    cases += [make_case("a", "single", 7 + r, None, status="failed", error="GenerationError") for r in range(3)]
    cases += [make_case("b", "single", r, v) for r, v in enumerate(easy + hard)]
    board = build_leaderboard(cases)
    a, b = board.row("a", "single"), board.row("b", "single")
    assert a is not None and b is not None
    assert a.mean is not None and b.mean is not None and a.mean > b.mean  # own means reward A's failures...
    assert board.ranking("single") == ["b", "a"] and (b.rank, a.rank) == (1, 2)  # ...ranks do not
    assert (a.shared_n, b.shared_n, a.failed) == (7, 7, 3)
    assert b.shared_mean == pytest.approx(np.mean(easy)) and a.shared_mean == pytest.approx(np.mean(easy) - 0.02)
    (pair,) = board.comparisons
    assert (pair.model_a, pair.model_b, pair.wins, pair.effect_size) == ("b", "a", 7, 1.0)
    markdown = render_markdown(board)
    assert "| 1 | b | all | 0 | 0 | 10 |" in markdown and "| 2 | a | all | 3 | 0 | 7 |" in markdown


def test_models_sharing_no_reference_are_listed_unranked() -> None:
    cases = [make_case("a", "single", r, 0.5) for r in range(3)] + [make_case("b", "single", 5, 0.9)]
    board = build_leaderboard(cases)
    assert [(r.model, r.rank, r.shared_n) for r in board.rows if r.group == GROUP_ALL] == [
        ("a", None, 0),
        ("b", None, 0),
    ]


def test_tests_are_adjusted_within_stated_families(board: Leaderboard) -> None:
    assert board.families == {"pairs:single": 3, "pairs:repaint": 3, "gains": 15}
    gains = board.gains
    assert {g.family for g in gains} == {"gains"}
    expected = scipy_stats.false_discovery_control([g.p_value for g in gains], method="bh")
    assert [g.p_adjusted for g in gains] == pytest.approx(list(expected), rel=1e-12)
    for mode in board.modes:
        pairs = [c for c in board.comparisons if c.mode == mode]
        assert {c.family for c in pairs} == {f"pairs:{mode}"}
        expected = scipy_stats.false_discovery_control([c.p_value for c in pairs], method="bh")
        assert [c.p_adjusted for c in pairs] == pytest.approx(list(expected), rel=1e-12)
    markdown = render_markdown(board)
    assert "within the family `gains`" in markdown and "| pairs:single |" in markdown


def test_small_rows_are_marked_in_every_report(tmp_path: Path) -> None:
    cases = [make_case(m, "single", r, base + r / 50) for m, base in (("a", 0.7), ("b", 0.5)) for r in range(12)]
    paths = write_reports(cases, tmp_path / "out")
    board = build_leaderboard(cases)
    small = [r for r in board.rows if r.small_n]
    assert small and all(r.group != GROUP_ALL or r.n < 10 for r in small)
    assert {r.n for r in board.rows if r.group == GROUP_ALL} == {12} and not board.row("a", "single").small_n  # type: ignore[union-attr]
    for row in board.rows:
        assert row.small_n == (row.n < 10) and (row.caution is None) == (not row.small_n)
        assert row.ci_method == ("bootstrap-t" if row.n >= 4 else "student-t")
    caution = small[0].caution or ""
    assert "coverage" in caution
    assert caution in paths["md"].read_text(encoding="utf-8")
    assert html_escape(caution) in paths["html"].read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text(encoding="utf-8"))))
    assert [(r["small_n"], r["caution"]) for r in rows] == [(str(int(r.small_n)), r.caution or "") for r in board.rows]
    assert [r["small_n"] for r in json.loads(paths["json"].read_text())["rows"]] == [r.small_n for r in board.rows]


def test_interval_figures_do_not_depend_on_chunking_or_on_computing_them_together(monkeypatch) -> None:
    """For a fixed seed the board's intervals are the documented ones, however the resamples are blocked."""
    from imagerepainter.bench import stats

    cases = graded_cases(n_refs=9)
    board = build_leaderboard(cases, n_resamples=999)
    monkeypatch.setattr(stats, "CHUNK_ELEMENTS", 5)  # one resample at a time
    assert build_leaderboard(cases[::-1], n_resamples=999) == board
    for row in board.rows:
        values = [c.metrics["paper"] for c in cases if (c.model, c.mode) == (row.model, row.mode)
                  and row.group in (GROUP_ALL, Group.category(c.category), Group.style(c.style))]  # fmt: skip
        assert (row.ci_low, row.ci_high, row.ci_method) == stats.mean_interval(values, n_resamples=999)


def test_lower_is_better_metrics_rank_ascending() -> None:
    cases = [
        make_case(m, "single", r, d + r / 100, primary="lpips", higher=False)
        for r in range(8)
        for m, d in (("far", 0.6), ("near", 0.2))
    ]
    board = build_leaderboard(cases)
    assert board.higher_is_better is False and board.ranking("single") == ["near", "far"]
    (pair,) = board.comparisons
    assert pair.model_a == "near" and pair.wins == 8 and pair.mean_diff == pytest.approx(-0.4)


def test_duplicates_conflicts_and_an_empty_board() -> None:
    case = make_case("a", "single", 0, 0.5)
    assert build_leaderboard([case, case]).cases == 1
    mixed = [case, make_case("b", "single", 0, 0.5, primary="ssim")]
    with pytest.raises(ConfigurationError, match="primary_metric="):
        build_leaderboard(mixed)
    assert build_leaderboard(mixed, primary_metric="ssim").row("b", "single").mean == 0.5  # type: ignore[union-attr]
    flipped = [case, make_case("b", "single", 0, 0.5, higher=False)]
    with pytest.raises(ConfigurationError, match="disagree"):
        build_leaderboard(flipped)
    empty = build_leaderboard([])
    assert (empty.rows, empty.comparisons, empty.gains, empty.cases) == ([], [], [], 0)


# ----------------------------------------------------------------------------- reports


def _png(path: Path, color: tuple[int, int, int], size: int = 96) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(color))
    array = np.clip(np.array(color) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(array).save(path)
    return path


def report_cases(tmp_path: Path, *, evil: bool = False) -> list[CaseResult]:
    """Two models, two modes, four references with images on disk; one failure and one missing image."""
    out = tmp_path / "out"
    name = f"model {EVIL}" if evil else "model-b"
    cases = []
    for ref in range(4):
        reference = _png(tmp_path / "refs" / f"{ref}.png", (40 * ref, 90, 160))
        for index, (model, base) in enumerate((("model-a", 0.8), (name, 0.6))):
            for mode in ("single", "repaint"):
                best = f"cases/{index}-{mode}-{ref}.png"
                if not (ref == 3 and model == "model-a" and mode == "repaint"):  # that image is missing on disk
                    _png(out / best, (40 * ref + 20, 80, 150))
                failed = ref == 2 and model == name and mode == "single"
                cases.append(
                    make_case(
                        model,
                        mode,
                        ref,
                        None if failed else base + ref / 100 + (0.05 if mode == "repaint" else 0),
                        status="failed" if failed else "ok",
                        error=f"MLLMError: refused {EVIL}"
                        if failed and evil
                        else ("MLLMError: refused" if failed else None),
                        best_image=None if failed else best,
                        category=f"cat {EVIL}" if evil and ref == 0 else CATEGORIES[ref % 2],
                        best_prompt=f"a prompt {EVIL}" if evil else "a prompt",
                        extra={
                            "reference_path": str(reference),
                            "metric_details": {
                                "judge": {"ratings": [{"aesthetic": 4, "semantic": 3, "rationale": f"close {EVIL}"}]}
                            },
                        },
                    )
                )
    return cases


def test_write_reports_writes_csv_markdown_html_and_json(tmp_path: Path) -> None:
    cases = report_cases(tmp_path)
    paths = write_reports(cases, tmp_path / "out")
    assert {k: p.name for k, p in paths.items()} == {
        "csv": "leaderboard.csv",
        "md": "leaderboard.md",
        "html": "leaderboard.html",
        "json": "leaderboard.json",
    }
    board = build_leaderboard(cases)
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text(encoding="utf-8"))))
    assert list(rows[0])[:8] == ["model", "mode", "group", "n", "mean", "std", "ci_low", "ci_high"]
    assert "mean_paper" in rows[0]
    assert len(rows) == len(board.rows)
    for row, expected in zip(rows, board.rows, strict=True):
        assert (row["model"], row["mode"], row["group"], int(row["n"])) == (
            expected.model,
            expected.mode,
            str(expected.group),
            expected.n,
        )
        assert float(row["mean"]) == expected.mean and int(row["failed"]) == expected.failed
        assert (row["ci_low"] == "") == (expected.ci_low is None)
    assert Leaderboard.model_validate_json(paths["json"].read_text(encoding="utf-8")) == board
    markdown = paths["md"].read_text(encoding="utf-8")
    assert "| rank | model | group |" in markdown and "## Gain of `repaint` over `single`" in markdown
    assert "## Failed cases (1)" in markdown and "MLLMError: refused" in markdown
    page = paths["html"].read_text(encoding="utf-8")
    srcs = re.findall(r'<img src="([^"]*)"', page)
    # 4 references + 15 finished cases, minus the best image missing on disk.
    assert len(srcs) == 4 + 15 - 1 and all(s.startswith("data:image/") for s in srcs)
    for src in srcs:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as thumb:
            assert max(thumb.size) <= 160
    assert page.count("image unavailable") == 1 and "failed: MLLMError: refused" in page
    assert page.count('title="judge: aesthetic 4, semantic 3 — close') == 15  # the judge's word, as a tooltip
    assert page.count('class="pt-mean"') == 4 and 'data-rows="4"' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch


def test_every_text_in_the_reports_is_escaped(tmp_path: Path) -> None:
    paths = write_reports(report_cases(tmp_path, evil=True), tmp_path / "out")
    page = paths["html"].read_text(encoding="utf-8")
    assert "<script" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;") >= 4  # model name (table, chart, grid), category, error
    markdown = paths["md"].read_text(encoding="utf-8")
    assert "<script" not in markdown and "&lt;script&gt;" in markdown
    tables = [block.splitlines() for block in markdown.split("\n\n") if block.startswith("| ")]
    assert len(tables) >= 4
    for table in tables:  # no cell broke out of its table: every line has its header's number of columns
        assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table}) == 1
    rows = list(csv.reader(io.StringIO(paths["csv"].read_text(encoding="utf-8"))))
    assert len({len(r) for r in rows}) == 1


def test_csv_and_markdown_cells_stay_inert(tmp_path: Path) -> None:
    cases = [make_case("=HYPERLINK(1)", "single", r, 0.5) for r in range(2)]
    cases += [make_case("[click](javascript:alert(1)) *bold*", "single", r, 0.4) for r in range(2)]
    paths = write_reports(cases, tmp_path)
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text(encoding="utf-8"))))
    assert rows[0]["model"] == "'=HYPERLINK(1)"  # not a formula in a spreadsheet
    markdown = paths["md"].read_text(encoding="utf-8")
    assert "](javascript" not in markdown and "[click]\\(javascript" in markdown and "\\*bold\\*" in markdown


_PROBE = browser.chart_probe("leaderboard-chart", chartMeans="circle.pt-mean", chartWhiskers="line.ci")


@pytest.mark.browser
@needs_chromium
def test_html_report_in_headless_chromium(tmp_path: Path) -> None:
    from imagerepainter.bench.environment import EnvironmentChange, EnvironmentSection

    environment = EnvironmentSection(  # what a backend or an API returned is text too
        manifest={"backends": {"t2i:x": {"model": EVIL}}, "mllm": {EVIL: [{"model": EVIL}]}},
        changes=[EnvironmentChange(field=EVIL, old=EVIL, new=EVIL, run=2)],
    )
    paths = write_reports(report_cases(tmp_path, evil=True), tmp_path / "out", environment=environment)
    page = paths["html"].read_text(encoding="utf-8")
    assert "<script>document" not in page and page.count(html_escape(EVIL)) >= 5
    found = browser.probe(paths["html"], script=_PROBE)
    assert found.get("data-probe") == "done"
    assert found["data-images-loaded"] == "18/18"  # every embedded thumbnail decoded
    assert found["data-chart-means"] == "4" and found["data-chart-whiskers"] == "4"
    assert int(found["data-chart-width"]) > 300
    assert "data-pwned" not in found  # model-written text never ran


_ENVIRONMENT_PROBE = """addEventListener("load", function () {
  var section = document.getElementById("environment"), d = document.body.dataset;
  var box = section.getBoundingClientRect(), wider = 0;
  section.querySelectorAll("dd, dt, li").forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.right > box.right + 1 || r.left < box.left - 1) wider += 1;
  });
  d.envFacts = String(section.querySelectorAll("dd").length);
  d.envChanges = String(section.querySelectorAll("#environment-changes li").length);
  d.envWider = String(wider);
});"""


def _long_environment() -> Any:
    """An environment as a real GPU evaluation records it: long model ids, a fingerprint, two changes."""
    from imagerepainter.bench.environment import EnvironmentChange, EnvironmentSection, collect_environment

    manifest = collect_environment(
        {
            "torch_runtime": {"cuda": "12.4", "cudnn": "90100", "devices": ["NVIDIA H100 80GB HBM3"] * 2},
            "backends": {
                f"t2i:{name}": {"class": "DiffusersT2I", "model": name, "device": "cuda:0", "dtype": "bfloat16"}
                for name in REAL_NAMES
            },
            "mllm": {"openai:gpt-4o": [{"model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_a7d06e42a7"}]},
        }
    )
    changes = [
        EnvironmentChange(field="packages.diffusers", old="0.31.0", new="0.32.2", run=2),
        EnvironmentChange(
            field=f"backends.t2i:{REAL_NAMES[0]}.dtype", old="float16", new="bfloat16-with-a-long-suffix", run=3
        ),
    ]
    return EnvironmentSection(manifest=manifest, recorded_at="2026-01-02T03:04:05Z", runs=3, changes=changes)


def _long_environment_facts() -> int:
    from imagerepainter.bench.environment import manifest_groups

    return sum(len(facts) for facts in manifest_groups(_long_environment().manifest).values())


REAL_NAMES = ("stabilityai/stable-diffusion-xl-base-1.0", "FLUX.1-schnell-bf16-cuda", "sdxl-turbo", "gpt-image-2")
CHECKS = (
    ("e01", "object", "medium pink square at center is present", "a square stands there"),
    ("e02", "color", "medium pink square at center — color: pink", "the square is grey, not pink"),
    ("e03", "position", "small yellow square at upper left — position: upper left", "it sits at the lower right"),
    ("e04", "relation", "the small yellow square is above and left of the brown triangle", "they swapped places"),
)

SPACED_EVIL = "<script> var d = document.body; d.dataset.pwned = 3 </script>"
"""Markup in a reason, in words short enough to wrap as a reason does."""


def with_elements_and_costs(cases: list[CaseResult]) -> list[CaseResult]:
    """Every case with its cost ledger (one shared description per reference), every finished case
    with its element checklist; models fail different elements, and one reason carries markup."""
    out = []
    for case in cases:
        repaint = case.mode == "repaint"
        description = DescriptionCost(id=f"d-{case.reference_id}", mllm="sandbox", calls=4, input_tokens=5200,
                                      output_tokens=900, seconds=3.5)  # fmt: skip
        usage = MLLMUsage(calls=4 if repaint else 1, input_tokens=12000 if repaint else 800, output_tokens=700)
        cost = CaseCost(mllm={"sandbox": usage}, images=6 if repaint else 1, t2i_seconds=9.5 if repaint else 1.5,
                        description=description)  # fmt: skip
        update: dict[str, Any] = {"cost": cost, "seconds": 30.0 if repaint else 6.0}
        if case.status == "ok":
            failing = ord(case.model[-1]) % len(CHECKS)  # which element this model loses
            checks = [
                {"id": i, "kind": kind, "text": text, "verdict": "no" if n == failing else "yes",
                 "reason": f"{reason} {SPACED_EVIL}" if n == failing and kind == "color" else reason}
                for n, (i, kind, text, reason) in enumerate(CHECKS)
            ]  # fmt: skip
            kinds = {c["kind"]: 0.0 if c["verdict"] == "no" else 1.0 for c in checks}
            details = {
                **case.extra.get("metric_details", {}),
                "elements": {"kinds": kinds, "checks": checks, "calls": 1},
            }
            update["extra"] = {**case.extra, "metric_details": details}
        out.append(case.model_copy(update=update))
    return out


SECTIONS_JS = """  // The elements and cost sections: every checklist opened before the layout is measured.
  var details = Array.prototype.slice.call(document.querySelectorAll("details.checklist"));
  details.forEach(function (x) { x.open = true; });
  d.checklists = String(details.length);
  var items = Array.prototype.slice.call(document.querySelectorAll("details.checklist li"));
  function least(measure) { return String(Math.min.apply(null, items.map(measure))); }
  d.checklistMinFont = least(function (li) { return parseFloat(getComputedStyle(li).fontSize); });
  d.checklistMinWidth = least(function (li) { return li.getBoundingClientRect().width; });
  d.checklistShowsScript = String(items.some(function (li) { return li.textContent.indexOf("<script>") >= 0; }));
  var tables = document.querySelectorAll("#elements table, table#costs, table#cost-gains");
  tables = Array.prototype.slice.call(tables);
  var unboxed = [], scrolling = 0, narrowest = Infinity, example = "";
  d.sectionTables = String(tables.length);
  tables.forEach(function (t) {
    var box = t.parentElement, name = t.id || t.className || t.tHead.textContent;
    if (!box.classList.contains("scroll") || getComputedStyle(box).overflowX !== "auto" ||
        box.getBoundingClientRect().right > innerWidth) unboxed.push(name);
    if (box.scrollWidth > box.clientWidth + 1) scrolling++;
    Array.prototype.forEach.call(t.querySelectorAll("td"), function (td) {  // a cell whose text wraps: how wide?
      if (td.querySelector("br")) return;  // lines by design
      var range = document.createRange();
      range.selectNodeContents(td);
      var style = getComputedStyle(td), em = parseFloat(style.fontSize);
      if (range.getBoundingClientRect().height < 2 * em * 1.5 - 2) return;
      var wide = (td.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)) / em;
      if (wide < narrowest) { narrowest = wide; example = name + ": " + td.textContent.slice(0, 60); }
    });
  });
  d.unboxedTables = unboxed.join(" | ");
  d.scrollingTables = String(scrolling);
  d.narrowestWrappedEm = String(narrowest === Infinity ? 99 : Math.round(narrowest * 10) / 10);
  d.narrowestExample = example;"""
SECTIONS_PROBE = browser.chart_probe("leaderboard-chart", more=SECTIONS_JS) + "\n" + browser.LAYOUT_JS
"""Opens the checklists and measures the new sections, then :data:`tests.browser.LAYOUT_JS` measures the page."""


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize("priced", [False, True], ids=["unpriced", "priced"])
@pytest.mark.parametrize("width", [480, 1280], ids=["phone", "desktop"])
def test_leaderboard_is_readable_on_a_phone_and_a_desktop(tmp_path: Path, width: int, priced: bool) -> None:
    """Model names stay whole, the chart's labels keep a readable size and never collide, nothing widens the page;
    the elements and cost sections' tables keep readable columns and scroll in their own box, every checklist
    opens with readable, escaped text, and an unpriced board shows no dollar."""
    cases = report_cases(tmp_path)
    for index, name in enumerate(REAL_NAMES):
        for mode in ("single", "repaint"):
            cases += [
                make_case(name, mode, ref, 0.5 + index / 20 + ref / 100, extra_metrics={"ssim": 0.4, "psnr": 21.5})
                for ref in range(8)  # enough references for the element tests to find differences
            ]
    cases = with_elements_and_costs(cases)
    models = {c.model for c in cases}
    prices = {"mllm": {"sandbox": {"input_per_million": 1.0, "output_per_million": 2.0}},
              "t2i": {m: {"per_image": 0.01} for m in models}}  # fmt: skip
    page = write_reports(
        cases, tmp_path / "out", prices=load_prices(prices) if priced else None, environment=_long_environment()
    )["html"]
    text = page.read_text(encoding="utf-8")
    assert 'id="elements"' in text and 'id="costs"' in text
    if priced:
        assert "USD total" in text
    else:
        assert "$" not in text and "USD" not in text and "dollar" not in text.lower()
    found = browser.probe(page, window=(width, 2000), script=SECTIONS_PROBE + _ENVIRONMENT_PROBE)
    assert found.get("data-probe") == "done"
    assert found["data-broken-words"] == "0", found["data-broken-example"]  # no name cut one letter per line
    assert found["data-overflow-x"] == "false"  # wide tables scroll inside their box, the page does not
    assert found["data-env-facts"] == str(_long_environment_facts())  # every fact of the manifest is shown
    assert found["data-env-changes"] == "2" and found["data-env-wider"] == "0"  # nothing sticks out of its box
    assert float(found["data-chart-text-min-height"]) >= 12  # about 10 px type or more, as drawn
    assert found["data-chart-text-overlaps"] == "0", found["data-overlap-example"]
    assert found["data-chart-text-outside"] == "0", found["data-outside-example"]
    assert int(found["data-chart-width"]) > 0.8 * width
    # the new sections: kinds, tests and lost elements per mode, and the two cost tables
    assert int(found["data-section-tables"]) >= 2 * 3 + 2 and found["data-unboxed-tables"] == ""
    # a cell whose text wraps keeps a readable measure: no column squeezed to a few letters a line
    assert float(found["data-narrowest-wrapped-em"]) >= 12, found["data-narrowest-example"]
    if width < 600:
        assert int(found["data-scrolling-tables"]) >= 3  # too wide for a phone: they scroll in their own box
    assert found["data-checklists"] == str(sum(c.status == "ok" for c in cases))
    assert float(found["data-checklist-min-font"]) >= 11 and float(found["data-checklist-min-width"]) >= 120
    assert found["data-checklist-shows-script"] == "true" and "data-pwned" not in found  # shown as text, never run


def test_markdown_reports_tiny_p_values_readably(board: Leaderboard) -> None:
    from imagerepainter.bench.leaderboard import render_markdown

    markdown = render_markdown(board)
    assert "| <1e-4 |" in markdown and "&lt;1e-4" not in markdown
