"""The benchmark ranks sandbox models of known strength in their true order, on scenes whose truth is known.

Graded sandbox models (``sandbox?fidelity=f``) follow the prompt less faithfully as ``f``
falls. Over generated scenes, in both modes, the leaderboard must rank them in that order
with significant paired tests, and ``repaint`` must beat ``single`` for every model.
"""

from __future__ import annotations

from itertools import pairwise

from imagerepainter.bench.leaderboard import build_leaderboard
from imagerepainter.bench.records import GROUP_ALL
from imagerepainter.bench.runner import evaluate
from imagerepainter.sandbox import random_scene, render_scene

TRUE_ORDER = ["f10", "f07", "f04"]
MODELS = {"f10": "sandbox", "f07": "sandbox?fidelity=0.7", "f04": "sandbox?fidelity=0.4"}


def test_graded_models_rank_in_their_true_order_in_both_modes(tmp_path):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i in range(12):
        render_scene(random_scene(1000 + i), 128, 128).save(scenes / f"scene_{i:02d}.png")
    report = evaluate(scenes, mllm="sandbox", models=MODELS, out=tmp_path / "out", metrics=["sandbox", "ssim"],
                      settings={"max_rounds": 3, "height": 128, "width": 128})  # fmt: skip
    assert report.failed == 0 and report.descriptions_computed == 12
    board = build_leaderboard(report.cases, primary_metric="sandbox")
    for mode in ("single", "repaint"):
        rows = sorted((r for r in board.rows if r.group == GROUP_ALL and r.mode == mode), key=lambda r: r.rank)
        assert [r.model for r in rows] == TRUE_ORDER, mode
        pairs = {(c.model_a, c.model_b): c for c in board.comparisons if c.group == GROUP_ALL and c.mode == mode}
        for better, worse in pairwise(TRUE_ORDER):
            c = pairs.get((better, worse))
            assert c is not None and c.mean_diff > 0 and c.p_adjusted < 0.05, (mode, better, worse, c)
    for gain in (g for g in board.gains if g.group == GROUP_ALL):
        assert gain.gain > 0 and gain.p_value < 0.05, gain
