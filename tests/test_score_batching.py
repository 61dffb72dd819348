"""Scoring across cases: ``score_groups`` (several references in one call) and the ScoreBatcher.

Merged scores must equal what each case's own ``score`` call gives: exactly for the sandbox and
pixel scorers, within float tolerance for the tiny random-weight CLIP and DINOv2 models.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagerepainter.backends.base import score_groups
from imagerepainter.bench.batching import ScoreBatcher
from imagerepainter.bench.metrics import compute_metrics, resolve_metrics, scoring_cases
from imagerepainter.errors import ConfigurationError
from imagerepainter.sandbox import SandboxScorer, random_scene, render_scene
from imagerepainter.scorers import CLIPScorer, DINOv2Scorer, PSNRScorer, WeightedScorer
from tests.batches import wait_until_waiting

torch = pytest.importorskip("torch")


def _scene(i: int, size: int = 48) -> Image.Image:
    return render_scene(random_scene(i), size, size)


def _groups(scorer: Any, sizes: list[int]) -> list[tuple[Any, list[Image.Image]]]:
    """One group per size: a prepared reference and that many candidates (all different scenes)."""
    groups, n = [], 100
    for i, size in enumerate(sizes):
        candidates = [_scene(n + j) for j in range(size)]
        n += size
        groups.append((scorer.prepare(_scene(i)), candidates))
    return groups


def _forward_batches(module: Any) -> tuple[list[int], Any]:
    batches: list[int] = []

    def hook(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        batches.append(int(kwargs.get("pixel_values", args[0] if args else None).shape[0]))

    return batches, module.register_forward_pre_hook(hook, with_kwargs=True)


def _in_cases(batcher: Any, work: list[Any]) -> list[Any]:
    """Run each callable of ``work`` as a concurrent case of ``batcher``; their results (or errors), in order."""
    out: list[Any] = [None] * len(work)

    def case(i: int) -> None:
        with batcher.case():
            try:
                out[i] = work[i]()
            except Exception as exc:
                out[i] = exc

    batcher.window = 60.0  # a loaded machine must not close the batch before every case handed in
    with batcher.case():  # hold the batch open until every case is waiting
        threads = [threading.Thread(target=case, args=(i,)) for i in range(len(work))]
        for t in threads:
            t.start()
        wait_until_waiting(batcher, len(work))
    for t in threads:
        t.join()
    return out


# ----------------------------------------------------------------------------- score_groups


@pytest.mark.parametrize("kind", ["clip", "dinov2"])
def test_embedding_score_groups_equal_per_group_score_in_one_pass(kind: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(f"tiny_{kind}_dir")
    scorer = (CLIPScorer if kind == "clip" else DINOv2Scorer)(folder, batch_size=4)
    groups = _groups(scorer, [1, 2, 0, 3])
    alone = [scorer.score(prepared, candidates) for prepared, candidates in groups]
    batches, handle = _forward_batches(scorer.model.vision_model if kind == "clip" else scorer.model)
    try:
        merged = score_groups(scorer, groups)
    finally:
        handle.remove()
    assert batches == [4, 2]  # six candidates of four references: passes of batch_size, not one per group
    assert [len(s) for s in merged] == [1, 2, 0, 3]
    for got, want in zip(merged, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-5)


def test_weighted_score_groups_batch_each_child_and_keep_the_parts(tiny_clip_dir: Path, tiny_dinov2_dir: Path) -> None:
    scorer = WeightedScorer([(CLIPScorer(tiny_clip_dir), 0.5), (DINOv2Scorer(tiny_dinov2_dir), 0.5)])
    groups = _groups(scorer, [2, 1])
    merged = scorer.score_components_groups(groups)
    for got, (prepared, candidates) in zip(merged, groups, strict=True):
        want = scorer.score_components(prepared, candidates)
        assert got.keys() == want.keys() == {"clip", "dinov2"}
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-5)
    assert score_groups(scorer, groups)[1] == pytest.approx(scorer.score(*groups[1]), abs=1e-5)


def test_score_groups_falls_back_to_one_score_per_group_and_checks_prepared(tiny_clip_dir: Path) -> None:
    psnr = PSNRScorer(max_db=40.0)
    groups = _groups(psnr, [2, 1])
    assert score_groups(psnr, groups) == [psnr.score(p, c) for p, c in groups]
    with pytest.raises(ConfigurationError, match="prepare"):
        CLIPScorer(tiny_clip_dir).score_groups([("not prepared", [_scene(1)])])


# ----------------------------------------------------------------------------- ScoreBatcher


def test_merged_scores_equal_each_case_alone_in_one_call() -> None:
    scorer = SandboxScorer()
    groups = _groups(scorer, [1, 2, 1])
    batcher = ScoreBatcher(scorer, window=0.5)
    got = _in_cases(batcher, [lambda g=g: batcher.score(*g) for g in groups])
    batcher.close()
    assert batcher.calls == 1  # three cases, one scorer call
    assert got == [scorer.score(p, c) for p, c in groups]


def test_merged_embedding_scores_and_parts_equal_each_case_alone(tiny_clip_dir: Path, tiny_dinov2_dir: Path) -> None:
    scorer = WeightedScorer([(CLIPScorer(tiny_clip_dir), 0.5), (DINOv2Scorer(tiny_dinov2_dir), 0.5)])
    groups = _groups(scorer, [1, 1, 1, 1])
    batcher = ScoreBatcher(scorer, window=0.5)
    got = _in_cases(batcher, [lambda g=g: batcher.score_parts(*g) for g in groups])
    batcher.close()
    assert batcher.calls == 1
    for parts, (prepared, candidates) in zip(got, groups, strict=True):
        want = scorer.score_components(prepared, candidates)
        assert parts[""] == pytest.approx(scorer.combine(want), abs=1e-5)
        assert parts["clip"] == pytest.approx(want["clip"], abs=1e-5)


class _Failing(SandboxScorer):
    def score(self, prepared: Any, candidates: Any) -> list[float]:
        raise RuntimeError("scorer out of memory")


def test_a_failed_merged_score_fails_every_case_with_its_own_error() -> None:
    scorer = _Failing()
    groups = _groups(scorer, [1, 1])
    batcher = ScoreBatcher(scorer, window=0.5)
    errors = _in_cases(batcher, [lambda g=g: batcher.score(*g) for g in groups])
    batcher.close()
    assert batcher.calls == 1
    assert all(isinstance(e, RuntimeError) and "out of memory" in str(e) for e in errors)
    assert errors[0] is not errors[1]
    with pytest.raises(ConfigurationError, match="closed"):
        batcher.score(groups[0][0], groups[0][1])


def test_metrics_of_concurrent_cases_merge_and_equal_unmerged(tiny_clip_dir: Path, tiny_dinov2_dir: Path) -> None:
    spec = f"paper?clip_model={tiny_clip_dir}&dinov2_model={tiny_dinov2_dir}"
    merged_metrics = resolve_metrics([spec])
    alone_metrics = resolve_metrics([spec])
    cases = [(_scene(i), [_scene(10 + i)]) for i in range(4)]
    alone = [compute_metrics(alone_metrics, ref, images) for ref, images in cases]
    batcher = merged_metrics[0]._pass._batcher  # the pass's batcher: count its calls
    assert batcher is not None
    got: list[Any] = [None] * len(cases)

    def case(i: int) -> None:
        with scoring_cases(merged_metrics):
            got[i] = compute_metrics(merged_metrics, *cases[i])

    threads = [threading.Thread(target=case, args=(i,)) for i in range(len(cases))]
    batcher.window = 60.0  # a loaded machine must not close the batch before every case handed in
    with scoring_cases(merged_metrics):  # hold the batch open until every case is waiting
        for t in threads:
            t.start()
        wait_until_waiting(batcher, len(cases))
    for t in threads:
        t.join()
    assert batcher.calls == 1  # four cases, one merged scoring call for the metric and its parts
    for g, a in zip(got, alone, strict=True):
        assert g.keys() == a.keys() == {"paper", "paper.clip", "paper.dinov2"}
        for name in a:
            assert g[name] == pytest.approx(a[name], abs=1e-5)


def test_the_loop_scores_through_a_score_batcher_as_through_its_scorer(
    tiny_clip_dir: Path, tiny_dinov2_dir: Path
) -> None:
    from imagerepainter import Repainter
    from imagerepainter.bench.batching import CompositeScoreBatcher

    scorer = WeightedScorer([(CLIPScorer(tiny_clip_dir), 0.5), (DINOv2Scorer(tiny_dinov2_dir), 0.5)])
    batcher = ScoreBatcher.wrap(scorer)
    assert isinstance(batcher, CompositeScoreBatcher)
    settings = {"max_rounds": 2, "variants": 2, "height": 48, "width": 48}
    runs = {}
    for key, used in (("direct", scorer), ("batched", batcher)):
        with Repainter(mllm="sandbox", t2i="sandbox", scorer=used, **settings) as rp:
            runs[key] = rp.run(_scene(3), seed=7, progress=False)
    batcher.close()
    assert batcher.calls >= 2  # every round scored through the batcher
    direct, batched = runs["direct"], runs["batched"]
    assert len(batched.scores) == len(direct.scores)
    for got, want in zip(batched.scores, direct.scores, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
    assert batched.best.prompt == direct.best.prompt


def test_an_evaluation_with_embedding_metrics_and_scorer_merges_and_records_every_case(
    tiny_clip_dir: Path, tiny_dinov2_dir: Path, tmp_path: Path
) -> None:
    from imagerepainter.bench.runner import evaluate

    data = tmp_path / "refs"
    data.mkdir()
    for i in range(4):
        _scene(i, 64).save(data / f"scene_{i}.png")
    paper = f"paper?clip_model={tiny_clip_dir}&dinov2_model={tiny_dinov2_dir}"
    settings = {"max_rounds": 2, "variants": 2, "height": 48, "width": 48}
    report = evaluate(data, mllm="sandbox", models={"m": "sandbox"}, out=tmp_path / "out", metrics=[paper],
                      scorer=paper, modes=["single"], settings=settings, max_concurrency=4)  # fmt: skip
    assert report.failed == 0 and len(report.cases) == 4
    alone = resolve_metrics([paper])  # each case's best image scored on its own
    references = {i: _scene(i, 64) for i in range(4)}
    for case in report.cases:
        assert case.extra["loop_scorer"] == "0.5*clip+0.5*dinov2"
        best = Image.open(report.out / str(case.best_image)).convert("RGB")
        reference = next(r for name, r in references.items() if f"scene_{name}" in case.reference_id)
        want = compute_metrics(alone, reference, [best])
        assert case.metrics.keys() == want.keys()
        for name, values in want.items():
            assert case.metrics[name] == pytest.approx(values[0], abs=1e-5)
