"""``imagerepainter eval`` on EvalRef-100 with a real (tiny, random-weight) diffusers pipeline beside sandbox models."""

from __future__ import annotations

import sqlite3

import pytest

from imagerepainter.bench.records import CaseResult
from imagerepainter.cli import main

pytestmark = pytest.mark.slow


def test_tiny_diffusers_pipeline_in_an_evaluation(tiny_sd_dir, evalref_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", str(evalref_dir), "--mllm", "sandbox", "--limit", "2", "--metrics", "sandbox,psnr"]
    args += ["--t2i", f"tiny=diffusers:{tiny_sd_dir}", "--t2i", "a=sandbox", "--t2i", "b=sandbox?jitter=0.05"]
    args += ["--max-rounds", "2", "--variants", "2", "--height", "64", "--width", "64", "--num-inference-steps", "2"]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert "12 cases computed (0 failed)" in capsys.readouterr().err
    with sqlite3.connect(out / "results.sqlite") as db:
        cases = [CaseResult.model_validate_json(r[0]) for r in db.execute("SELECT record FROM cases")]
    tiny = [c for c in cases if c.model == "tiny"]
    assert len(tiny) == 4 and {c.model_spec for c in tiny} == {f"diffusers:{tiny_sd_dir}"}
    assert all(set(c.metrics) == {"sandbox", "psnr"} and c.higher_is_better["psnr"] for c in tiny)
    assert all((out / c.best_image).is_file() for c in tiny)
    # the same references, seeds and prompts, different renderers: different images
    sandbox = {(c.reference_id, c.mode): c for c in cases if c.model == "a"}
    assert all(c.metrics != sandbox[(c.reference_id, c.mode)].metrics for c in tiny)
    assert "tiny" in (out / "leaderboard.md").read_text()
