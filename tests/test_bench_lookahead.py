"""Describing ahead: the next references' descriptions are made while the first cases render,
each one once (``imagerepainter.bench.lookahead``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagerepainter.bench.lookahead import DescribeAhead
from imagerepainter.bench.runner import evaluate
from imagerepainter.bench.store import ResultsStore
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.testing.standin import StandInT2I


class _Watching(StandInT2I):
    """A slow stand-in that notes how many descriptions are stored when its first call ends."""

    def __init__(self, out: Path) -> None:
        super().__init__(a=0.6, b=0.0, max_batch_size=1)
        self.out = out
        self.stored_after_first_call: int | None = None

    def generate(self, requests: Any) -> Any:
        images = super().generate(requests)
        if self.stored_after_first_call is None:
            self.stored_after_first_call = ResultsStore(self.out).description_count()
        return images


def test_the_next_references_are_described_while_the_first_case_renders(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i in range(5):
        render_scene(random_scene(i), 64, 64).save(scenes / f"scene_{i}.png")
    out = tmp_path / "out"
    model = _Watching(out)
    report = evaluate(scenes, mllm="sandbox", models={"m": model}, out=out, metrics=["sandbox"], modes=["single"],
                      max_concurrency=1, settings={"height": 64, "width": 64})  # fmt: skip
    assert report.failed == 0 and report.computed == 5
    # one case at a time: without describing ahead only the first reference would be described by now
    assert model.stored_after_first_call == 3  # the first, and the two after it
    assert report.descriptions_computed == 5 == ResultsStore(out).description_count()  # each one once


def test_describing_ahead_goes_by_reference_in_the_cases_order_and_skips_unreadable_ones() -> None:
    from types import SimpleNamespace as NS

    def job(sha: str, describer: str = "a", problem: str | None = None) -> Any:
        return NS(reference=NS(sha256=sha, path=None, problem=problem), describer=describer)

    jobs = [job("r1"), job("r1", "b"), job("r2"), job("r3", problem="unreadable"), job("r4"), job("r4", "b")]
    ahead = DescribeAhead(jobs, describers=None, ahead=2)
    due = [(ref.sha256, d) for ref, d in ahead.advance(jobs[0])]
    assert due == [("r2", "a")]  # r3 cannot be read: its cases fail on their own
    assert [(ref.sha256, d) for ref, d in ahead.advance(jobs[2])] == [("r4", "a"), ("r4", "b")]
    assert ahead.advance(jobs[4]) == [] and ahead.advance(jobs[0]) == []  # nothing is due twice
    assert DescribeAhead(jobs, describers=None, ahead=0).advance(jobs[0]) == []
