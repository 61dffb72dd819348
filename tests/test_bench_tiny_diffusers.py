"""``imagerepainter eval`` on EvalRef-100: a real (tiny, random-weight) diffusers pipeline beside three graded
sandbox models, both modes, a row per category with intervals."""

from __future__ import annotations

import sqlite3

import pytest

from imagerepainter.bench.records import CaseResult
from imagerepainter.cli.main import main

pytestmark = pytest.mark.slow


def test_tiny_diffusers_pipeline_in_an_evaluation(tiny_sd_dir, evalref_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", str(evalref_dir), "--mllm", "sandbox", "--per-category", "1", "--metrics", "sandbox,psnr"]
    args += ["--t2i", f"tiny=diffusers:{tiny_sd_dir}", "--t2i", "a=sandbox"]
    args += ["--t2i", "b=sandbox?fidelity=0.7", "--t2i", "c=sandbox?fidelity=0.4"]
    args += ["--max-rounds", "2", "--variants", "2", "--height", "64", "--width", "64", "--num-inference-steps", "2"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert "32 cases computed (0 failed)" in capsys.readouterr().err
    with sqlite3.connect(out / "results.sqlite") as db:
        cases = [CaseResult.model_validate_json(r[0]) for r in db.execute("SELECT record FROM cases")]
    tiny = [c for c in cases if c.model == "tiny"]
    assert len(tiny) == 8 and {c.model_spec for c in tiny} == {f"diffusers:{tiny_sd_dir}"}
    assert all(set(c.metrics) == {"sandbox", "psnr"} and c.higher_is_better["psnr"] for c in tiny)
    assert all((out / c.best_image).is_file() for c in tiny)
    # the same references, seeds and prompts, different renderers: different images
    sandbox = {(c.reference_id, c.mode): c for c in cases if c.model == "a"}
    assert all(c.metrics != sandbox[(c.reference_id, c.mode)].metrics for c in tiny)
    assert "tiny" in (out / "leaderboard.md").read_text()
    rows = [line.split(",") for line in (out / "leaderboard.csv").read_text().splitlines()]
    header = rows[0]
    by_key = {(r[0], r[1], r[2]): dict(zip(header, r, strict=True)) for r in rows[1:]}
    for model in ("tiny", "a", "b", "c"):
        for mode in ("single", "repaint"):
            row = by_key[(model, mode, "category:portrait")]
            assert row["n"] == "1"
            overall = by_key[(model, mode, "all")]
            assert overall["n"] == "4" and float(overall["ci_low"]) <= float(overall["mean"]) <= float(
                overall["ci_high"]
            )
