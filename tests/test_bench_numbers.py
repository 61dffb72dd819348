"""Numbers a researcher can publish: non-finite metric values through ``results.sqlite`` and the command
line, and every leaderboard figure recomputed from the database with NumPy and SciPy alone, following
only the recipe in ``docs/metrics.md``. Sandbox backends only."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imagerepainter.backends import registry
from imagerepainter.bench.runner import evaluate
from imagerepainter.bench.store import ResultsStore
from imagerepainter.cli.main import main
from imagerepainter.sandbox import random_scene, render_scene

scipy_stats = pytest.importorskip("scipy.stats")

SETTINGS = {"max_rounds": 2, "variants": 2, "height": 64, "width": 64}
MODELS = {"good": "sandbox", "fair": "sandbox?fidelity=0.7"}


def _brightness(image: Image.Image) -> float:
    return float(np.asarray(image.convert("L"), dtype=np.float64).mean())


class OddScorer:
    """A plug-in scorer that breaks on some references: NaN on the brightest, +inf on the darkest.

    Otherwise one minus the mean absolute pixel difference (higher is better)."""

    name = "odd"
    higher_is_better = True
    bounds = (0.0, 1.0)

    def __init__(self, nan_above: float, inf_below: float) -> None:
        self.nan_above, self.inf_below = nan_above, inf_below

    def prepare(self, reference: Image.Image) -> tuple[float, np.ndarray]:
        return _brightness(reference), np.asarray(reference.convert("RGB"), dtype=np.float64) / 255

    def score(self, prepared: tuple[float, np.ndarray], candidates: Sequence[Image.Image]) -> list[float]:
        brightness, pixels = prepared
        if brightness >= self.nan_above:
            return [math.nan] * len(candidates)
        if brightness <= self.inf_below:
            return [math.inf] * len(candidates)
        out = []
        for image in candidates:
            array = np.asarray(image.convert("RGB").resize(pixels.shape[1::-1]), dtype=np.float64) / 255
            out.append(1.0 - float(np.abs(array - pixels).mean()))
        return out


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    """Eight scenes: five in category ``a`` (bootstrap-t rows), three in ``b`` (Student-t rows)."""
    folder = tmp_path / "scenes"
    for i in range(8):
        category = folder / ("a" if i < 5 else "b")
        category.mkdir(parents=True, exist_ok=True)
        render_scene(random_scene(300 + i), 64, 64).save(category / f"scene_{i}.png")
    return folder


@pytest.fixture
def odd(scenes: Path) -> Iterator[None]:
    """Registers the scorer provider ``odd``: NaN on the brightest scene, +inf on the darkest."""
    levels = sorted(_brightness(Image.open(p)) for p in scenes.rglob("*.png"))
    registry.register_backend("scorer", "odd", lambda: OddScorer(levels[-1] - 1e-9, levels[0] + 1e-9), model="none")
    try:
        yield
    finally:
        registry._REGISTRY["scorer"].pop("odd", None)


def _evaluate(scenes: Path, out: Path, metrics: list[str]) -> Any:
    return evaluate(
        scenes, mllm="sandbox", models=MODELS, out=out, metrics=metrics, scorer="sandbox", settings=SETTINGS
    )


# ----------------------------------------------------------------------------- non-finite values


def test_a_nan_primary_metric_is_stored_listed_and_the_leaderboard_is_written(odd, scenes, tmp_path, capsys):
    out = tmp_path / "out"
    report = _evaluate(scenes, out, ["odd", "sandbox"])  # reading the store back used to fail here
    assert report.failed == 0 and len(report.cases) == 8 * 2 * 2
    odd_values = [c.metrics["odd"] for c in report.cases]
    assert sum(math.isnan(v) for v in odd_values) == 4 and odd_values.count(math.inf) == 4  # 1 scene x 2 x 2 each
    with sqlite3.connect(out / "results.sqlite") as db:
        records = [json.loads(r) for (r,) in db.execute("SELECT record FROM cases")]
    assert sorted({r["metrics"]["odd"] for r in records if isinstance(r["metrics"]["odd"], str)}) == [
        "Infinity",
        "NaN",
    ]  # standard JSON, read back as the same floats:
    again = ResultsStore(out).cases()
    assert [c.case_id for c in again] == [c.case_id for c in report.cases]
    assert sum(math.isnan(c.metrics["odd"]) for c in again) == 4

    assert main(["leaderboard", str(out)]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    for row in (r for r in board["rows"] if r["group"] == "all"):
        assert (row["n"], row["missing"], row["failed"]) == (6, 2, 0)  # two scenes not counted, both listed
        assert row["mean"] is not None and math.isfinite(row["mean"])
    listed = {(m["model"], m["mode"], m["reference_id"], m["reason"], m["counted"]) for m in board["missing"]}
    assert len(listed) == 8 and {m[3] for m in listed} == {"NaN", "inf"} and not any(m[4] for m in listed)
    markdown = (out / "leaderboard.md").read_text()
    assert "## Missing values (8)" in markdown and "| NaN | no |" in markdown
    assert 'id="missing-values"' in (out / "leaderboard.html").read_text()
    assert "Traceback" not in capsys.readouterr().err


def test_a_nan_secondary_metric_empties_its_column_not_the_row(odd, scenes, tmp_path):
    report = _evaluate(scenes, tmp_path / "out", ["sandbox", "odd"])
    assert main(["leaderboard", str(report.out)]) == 0
    board = json.loads((report.out / "leaderboard.json").read_text())
    for row in board["rows"]:
        assert row["missing"] == 0 and row["n"] > 0
        # a column is never averaged over fewer references than n: with a NaN among them it is empty
        has_broken = row["group"] == "all" or any(
            m["model"] == row["model"] and m["mode"] == row["mode"] and m["reference_id"].startswith(row["group"][9:])
            for m in board["missing"]
        )
        assert (row["metrics"]["odd"] is None) == has_broken, row
    assert all(m["counted"] for m in board["missing"]) and len(board["missing"]) == 8


def test_a_nan_from_the_loops_own_scorer_fails_those_cases_and_the_leaderboard_lists_them(odd, scenes, tmp_path):
    """With no --scorer the first metric also picks the loop's best image: a NaN there cannot be ranked, so the
    case fails with the loop's reason instead of being half counted; the rest of the evaluation goes on."""
    out = tmp_path / "out"
    report = evaluate(scenes, mllm="sandbox", models=MODELS, out=out, metrics=["odd", "sandbox"], settings=SETTINGS)
    assert report.failed == 8 and len(report.cases) == 32  # 2 scenes x 2 models x 2 modes
    assert main(["leaderboard", str(out)]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert len(board["failed"]) == 8 and all("non-finite score" in f["error"] for f in board["failed"])
    assert {(r["n"], r["failed"]) for r in board["rows"] if r["group"] == "all"} == {(6, 2)}


def test_a_store_written_with_null_for_nan_reads_back(tmp_path):
    """Earlier versions wrote NaN as JSON null, which then failed every read: such stores open again."""
    store = ResultsStore(tmp_path)
    with sqlite3.connect(store.path) as db:
        record = {"case_id": "c1", "dataset": "d", "reference_id": "a", "reference_sha256": "0" * 64,
                  "model": "m", "model_spec": "sandbox", "mode": "single", "seed": 0, "status": "ok",
                  "metrics": {"paper": None, "ssim": 0.5},
                  "higher_is_better": {"paper": True, "ssim": True}}  # fmt: skip
        db.execute(
            "INSERT INTO cases VALUES (?, 'ok', 'd', 'a', ?, 'm', 'single', 0, ?, 0)",
            ("c1", "0" * 64, json.dumps(record)),
        )
    (case,) = store.cases()
    assert math.isnan(case.metrics["paper"]) and case.metrics["ssim"] == 0.5
    assert main(["leaderboard", str(tmp_path)]) == 0
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert board["rows"][0]["missing"] == 1 and board["missing"][0]["reason"] == "NaN"


# ----------------------------------------------------------------------------- the documented recipe


def _sorted_mean(values: Sequence[float]) -> float:
    return float(np.mean(np.sort(np.asarray(values, dtype=np.float64))))


def _interval(values: Sequence[float], b: int = 9999, seed: int = 0) -> tuple[float | None, float | None, str | None]:
    """docs/metrics.md, "Intervals of the mean", step by step."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n < 2:
        return None, None, None
    if np.all(x == x[0]):
        return float(x[0]), float(x[0]), "constant"
    m, se = float(np.mean(x)), float(np.std(x, ddof=1)) / math.sqrt(n)
    if n >= 4:
        idx = np.random.default_rng(seed).integers(0, n, size=(b, n))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (x[idx].mean(axis=1) - m) / (x[idx].std(axis=1, ddof=1) / math.sqrt(n))
        t = np.sort(np.where(np.isnan(t), 0.0, t))
        k = math.floor((b + 1) * 0.05 / 2)
        low, high = m - float(t[b - k]) * se, m - float(t[k - 1]) * se
        if math.isfinite(low) and math.isfinite(high):
            return low, high, "bootstrap-t"
    half = float(scipy_stats.t.ppf(0.975, n - 1)) * se
    return m - half, m + half, "student-t"


def _paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """docs/metrics.md, "Paired comparisons" (higher is better)."""
    x, y = np.asarray(a), np.asarray(b)
    d = x - y
    d = np.where(np.abs(d) <= 1e-12 * np.maximum(1.0, np.maximum(np.abs(x), np.abs(y))), 0.0, np.round(d, 12))
    nz = d[d != 0]
    low, high, method = _interval(d)
    p, effect = 1.0, 0.0
    if nz.size:
        p = float(scipy_stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided").pvalue)
        ranks = scipy_stats.rankdata(np.abs(nz))
        effect = (ranks[nz > 0].sum() - ranks[nz < 0].sum()) / ranks.sum()
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    return {"n": len(a), "mean_a": _sorted_mean(a), "mean_b": _sorted_mean(b), "mean_diff": _sorted_mean(d),
            "ci_low": low, "ci_high": high, "ci_method": method, "wins": wins, "losses": losses,
            "ties": len(a) - wins - losses, "win_rate": (wins + (len(a) - wins - losses) / 2) / len(a),
            "p_value": p, "effect_size": float(effect)}  # fmt: skip


def _recompute(database: Path) -> dict[str, Any]:
    """Every figure of the leaderboard from results.sqlite, with sqlite3, json, NumPy and SciPy only."""
    with sqlite3.connect(database) as db:
        records = [json.loads(r) for (r,) in db.execute("SELECT record FROM cases")]
        primary = json.loads(db.execute("SELECT value FROM meta WHERE key = 'primary_metric'").fetchone()[0])
    refs: dict[tuple[str, str, str], dict[tuple[str, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        value = float(r["metrics"].get(primary, "nan"))
        if r["status"] == "ok" and math.isfinite(value):
            for group in ("all", f"category:{r['category']}"):
                refs[(r["model"], r["mode"], group)][(r["reference_id"], r["reference_sha256"])].append(value)
    values = {key: {ref: _sorted_mean(v) for ref, v in by_ref.items()} for key, by_ref in refs.items()}
    rows = {}
    for key, by_ref in values.items():
        v = list(by_ref.values())
        low, high, method = _interval(v)
        rows[key] = {"n": len(v), "mean": _sorted_mean(v), "std": float(np.std(np.sort(v), ddof=1)),
                     "ci_low": low, "ci_high": high, "ci_method": method}  # fmt: skip
    for mode, group in {(k[1], k[2]) for k in values}:
        block = [k for k in values if k[1:] == (mode, group)]
        shared = sorted(set.intersection(*(set(values[k]) for k in block)))
        for k in block:
            rows[k]["shared_mean"] = _sorted_mean([values[k][ref] for ref in shared])
        for rank, k in enumerate(sorted(block, key=lambda k: (-rows[k]["shared_mean"], k[0])), start=1):
            rows[k]["rank"] = rank

    def pair(left: dict, right: dict) -> dict[str, Any]:
        keys = sorted(set(left) & set(right))
        return _paired([left[k] for k in keys], [right[k] for k in keys])

    gains = {
        (m, g): pair(values[(m, "repaint", g)], values[(m, "single", g)]) for (m, mode, g) in values if mode == "single"
    }
    comparisons = {}
    for mode in ("single", "repaint"):
        ranked = sorted((k for k in values if k[1:] == (mode, "all")), key=lambda k: rows[k]["rank"])
        for i, a in enumerate(ranked):
            for b in ranked[i + 1 :]:
                comparisons[(mode, a[0], b[0])] = pair(values[a], values[b])
    families = {"gains": list(gains.values())}
    for (mode, _, _), c in comparisons.items():
        families.setdefault(f"pairs:{mode}", []).append(c)
    for tests in families.values():
        adjusted = scipy_stats.false_discovery_control([t["p_value"] for t in tests], method="bh")
        for test, q in zip(tests, adjusted, strict=True):
            test["p_adjusted"] = float(q)
    return {"rows": rows, "gains": gains, "comparisons": comparisons}


def test_every_figure_recomputes_from_results_sqlite_by_the_documented_recipe(scenes, tmp_path):
    report = _evaluate(scenes, tmp_path / "out", ["sandbox", "ssim"])
    assert report.failed == 0
    assert main(["leaderboard", str(report.out)]) == 0
    board = json.loads((report.out / "leaderboard.json").read_text())
    expected = _recompute(report.database)
    assert len(board["rows"]) == len(expected["rows"]) == 2 * 2 * 3
    assert {r["ci_method"] for r in board["rows"]} == {"bootstrap-t", "student-t"}  # n = 8, 5 and 3
    for row in board["rows"]:
        want = expected["rows"][(row["model"], row["mode"], row["group"])]
        assert {k: row[k] for k in want} == want, row  # exactly: the same digits
    for gain in board["gains"]:
        want = expected["gains"][(gain["model"], gain["group"])]
        want |= {"single": want.pop("mean_b"), "repaint": want.pop("mean_a"), "gain": want.pop("mean_diff")}
        assert {k: gain[k] for k in want} == want, gain
        assert gain["family"] == "gains"
    for c in board["comparisons"]:
        want = expected["comparisons"][(c["mode"], c["model_a"], c["model_b"])]
        assert {k: c[k] for k in want} == want and c["family"] == f"pairs:{c['mode']}", c
    assert board["families"] == {"pairs:single": 1, "pairs:repaint": 1, "gains": 6}
