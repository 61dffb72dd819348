"""The benchmark's metrics: names, directions, shared passes, the MLLM judge, unavailable perceptual metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imagerepainter.backends import registry
from imagerepainter.bench.metrics import (
    JUDGE_INSTRUCTION,
    compute_metrics,
    describe_metrics,
    judge_mllm,
    metric_details,
    resolve_metrics,
)
from imagerepainter.bench.records import Metric
from imagerepainter.errors import CapabilityError, ConfigurationError, UnknownBackendError
from imagerepainter.testing import FakeMLLM

RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 30)


def flat(color: tuple[int, int, int], size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), color)


def noisy(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


class CountingScorer:
    """A plug-in scorer (mean absolute difference, lower is better) that counts its calls; optionally slow/flaky."""

    name = "mad"
    higher_is_better = False
    bounds = (0.0, 1.0)

    def __init__(self, *, delay: float = 0.0, fail_first: int = 0) -> None:
        self.prepared = 0
        self.batches: list[int] = []
        self.delay, self.fail_first = delay, fail_first

    def prepare(self, reference: Image.Image) -> np.ndarray:
        self.prepared += 1
        return np.asarray(reference, dtype=np.float64) / 255

    def score(self, prepared: np.ndarray, candidates: Sequence[Image.Image]) -> list[float]:
        time.sleep(self.delay)
        if self.fail_first:
            self.fail_first -= 1
            raise RuntimeError("scorer failed")
        self.batches.append(len(candidates))
        return [float(np.abs(np.asarray(c, dtype=np.float64) / 255 - prepared).mean()) for c in candidates]


@pytest.fixture
def plugin() -> Iterator[dict[str, CountingScorer]]:
    """Registers the scorer provider 'mad' for the test; the built scorers are kept by spec."""
    built: dict[str, CountingScorer] = {}

    def factory(model: str | None = None, *, delay: float = 0.0, fail_first: int = 0) -> CountingScorer:
        scorer = CountingScorer(delay=delay, fail_first=fail_first)
        built[model or ""] = scorer
        return scorer

    registry.register_backend("scorer", "mad", factory)
    try:
        yield built
    finally:
        registry._REGISTRY["scorer"].pop("mad", None)


# ----------------------------------------------------------------------------- names and directions


def test_builtin_pixel_metrics_and_their_directions() -> None:
    metrics = resolve_metrics(["ssim", "psnr"])
    assert all(isinstance(m, Metric) for m in metrics)
    assert [(m.name, m.higher_is_better) for m in metrics] == [("ssim", True), ("psnr", True)]
    ref = noisy(0)
    values = compute_metrics(metrics, ref, [ref, noisy(1), ref.rotate(90)])
    assert abs(values["ssim"][0] - 1.0) < 1e-12 and values["psnr"][0] == 100.0
    assert values["ssim"][1] < values["ssim"][0] and values["psnr"][1] < 100.0


def test_any_scorer_spec_is_a_metric_with_its_own_direction(plugin: dict[str, CountingScorer]) -> None:
    sandbox, mad = resolve_metrics(["sandbox", "mad:a"])
    assert (sandbox.name, sandbox.higher_is_better) == ("sandbox", True)
    assert (mad.name, mad.higher_is_better) == ("mad:a", False)  # a distance stays a distance
    values = compute_metrics([sandbox, mad], flat(RED), [flat(RED), flat(BLUE)])
    assert values["sandbox"][0] > values["sandbox"][1]
    assert values["mad:a"][0] == 0.0 < values["mad:a"][1]


def test_names_options_and_labels() -> None:
    metrics = resolve_metrics("ssim?kernel_size=7, mine=ssim, psnr?max_db=50")
    assert [m.name for m in metrics] == ["ssim", "mine", "psnr"]
    assert metrics[0].spec == "ssim?kernel_size=7" and metrics[0].describe()["scorer"]["kernel_size"] == 7
    assert compute_metrics(metrics[2:], flat(RED), [flat(RED)]) == {"psnr": [50.0]}
    # Asked twice: listed once.
    assert [m.name for m in resolve_metrics(["psnr", "psnr"])] == ["psnr"]


@pytest.mark.parametrize(
    ("names", "error", "match"),
    [
        (["ssmi"], UnknownBackendError, "Did you mean 'ssim'"),
        (["judg"], UnknownBackendError, "Did you mean 'judge'"),
        (["ssim?kernal_size=3"], ConfigurationError, "Did you mean 'kernel_size'"),
        (["psnr?max_db=loud"], ConfigurationError, "max_db"),
        (["dinov2?pooling=cls", "dinov2"], ConfigurationError, "Two different metrics are named 'dinov2'"),
        ([], ConfigurationError, "at least one"),
        (" , ", ConfigurationError, "at least one"),
        (["judge"], ConfigurationError, "needs an MLLM"),
        (["paper.nope"], ConfigurationError, "no part 'nope'"),
        (["judge?repeats=0"], ConfigurationError, "repeats"),
        (["judge?repets=2"], ConfigurationError, "Did you mean 'repeats'"),
        (["judge?repeats=two"], ConfigurationError, "whole number"),
    ],
)
def test_bad_names_fail_clearly_before_anything_runs(names: Any, error: type[Exception], match: str) -> None:
    mllm = FakeMLLM() if names and names[0].startswith("judge?") else None
    with pytest.raises(error, match=match):
        resolve_metrics(names, mllm=mllm)


# ----------------------------------------------------------------------------- shared passes


def test_a_pass_is_computed_once_for_its_parts_and_reference_prepared_once(plugin: dict[str, CountingScorer]) -> None:
    (metric,) = resolve_metrics(["mad"])
    scorer = plugin[""]
    ref = noisy(3)
    first = metric.compute(ref, [noisy(4), noisy(5)])
    assert metric.compute(ref.copy(), [noisy(4), noisy(5)]) == first  # same pixels: served from the cache
    assert (scorer.prepared, scorer.batches) == (1, [2])
    metric.compute(ref, [noisy(6)])  # new images, same reference: the reference is not prepared again
    assert (scorer.prepared, scorer.batches) == (1, [2, 1])
    assert metric.compute(ref, []) == []


def test_a_failure_is_not_cached(plugin: dict[str, CountingScorer]) -> None:
    (metric,) = resolve_metrics(["mad?fail_first=1"])
    with pytest.raises(RuntimeError, match="scorer failed"):
        metric.compute(flat(RED), [flat(BLUE)])
    assert metric.compute(flat(RED), [flat(BLUE)])[0] > 0


def test_concurrent_calls_on_the_same_images_compute_once(plugin: dict[str, CountingScorer]) -> None:
    (metric,) = resolve_metrics(["mad?delay=0.2"])
    results: list[list[float]] = []
    threads = [threading.Thread(target=lambda: results.append(metric.compute(flat(RED), [flat(BLUE)]))) for _ in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and results[0] == results[1] == results[2]
    assert plugin[""].batches == [1]


@pytest.mark.slow
def test_paper_gives_its_parts_from_one_embedding_pass(
    tiny_clip_dir: Path, tiny_dinov2_dir: Path, evalref_dir: Path
) -> None:
    pytest.importorskip("transformers")
    from imagerepainter.scorers import CLIPScorer, DINOv2Scorer, clear_model_cache

    clear_model_cache()
    spec = f"paper?clip_model={tiny_clip_dir}&dinov2_model={tiny_dinov2_dir}"
    metrics = resolve_metrics([spec, "ssim"])
    assert [(m.name, m.higher_is_better) for m in metrics] == [
        ("paper", True),
        ("paper.clip", True),
        ("paper.dinov2", True),
        ("ssim", True),
    ]
    paper = metrics[0]
    assert paper.load() is paper
    clip, dino = CLIPScorer(tiny_clip_dir), DINOv2Scorer(tiny_dinov2_dir)
    batches: dict[str, list[int]] = {"clip": [], "dinov2": []}
    hooks = [
        clip.model.vision_model.register_forward_pre_hook(
            lambda m, a, kw: batches["clip"].append(int(kw["pixel_values"].shape[0])), with_kwargs=True
        ),
        dino.model.register_forward_pre_hook(
            lambda m, a, kw: batches["dinov2"].append(int(kw["pixel_values"].shape[0])), with_kwargs=True
        ),
    ]
    ref = Image.open(evalref_dir / "portrait_1.png").convert("RGB")
    images = [ref.copy(), Image.open(evalref_dir / "object_3.png").convert("RGB")]
    try:
        values = compute_metrics(metrics, ref, images)
    finally:
        for hook in hooks:
            hook.remove()
    assert batches == {"clip": [1, 2], "dinov2": [1, 2]}  # the reference once, the two images once, per model
    expected_clip = clip.score(clip.prepare(ref), images)
    expected_dino = dino.score(dino.prepare(ref), images)
    assert values["paper.clip"] == pytest.approx(expected_clip, abs=1e-6)
    assert values["paper.dinov2"] == pytest.approx(expected_dino, abs=1e-6)
    assert values["paper"] == pytest.approx(
        [0.5 * c + 0.5 * d for c, d in zip(expected_clip, expected_dino, strict=True)], abs=1e-6
    )
    assert values["paper"][0] == pytest.approx(1.0, abs=1e-5) and values["paper"][1] < values["paper"][0]
    # A part named alone, with its own spec-based name.
    (alone,) = resolve_metrics([f"paper.dinov2?clip_model={tiny_clip_dir}&dinov2_model={tiny_dinov2_dir}"])
    assert alone.name == "paper.dinov2" and alone.compute(ref, images) == pytest.approx(expected_dino, abs=1e-6)
    record = describe_metrics(metrics)[1]
    assert record["part"] == "clip" and record["scorer"]["components"][0]["model"] == str(tiny_clip_dir)


# ----------------------------------------------------------------------------- the judge


def rating(aesthetic: int, semantic: int, why: str = "close") -> dict[str, Any]:
    return {"aesthetic": aesthetic, "semantic": semantic, "rationale": why}


def test_judge_sends_the_reference_first_and_averages_repeats_with_agreement() -> None:
    seen: list[tuple[str, list[tuple[int, ...]]]] = []
    answers = iter([rating(4, 5), rating(4, 3), rating(2, 2), rating(2, 2)])

    def answer(text: str, images: Sequence[Image.Image]) -> dict[str, Any]:
        seen.append((text, [im.getpixel((0, 0)) for im in images]))  # type: ignore[misc]
        return next(answers)

    mllm = FakeMLLM(script={"SimilarityRating": answer})
    metrics = resolve_metrics(["judge?repeats=2"], mllm=mllm)
    assert [(m.name, m.higher_is_better) for m in metrics] == [
        ("judge", True),
        ("judge.aesthetic", True),
        ("judge.semantic", True),
        ("judge.agreement", True),
        ("judge.spread", False),
    ]
    ref, images = flat(RED), [flat(BLUE), flat(GREEN)]
    values = compute_metrics(metrics, ref, images)
    assert values == {
        "judge": [4.0, 2.0],  # mean over repeats of mean(aesthetic, semantic), on the 1-5 scale
        "judge.aesthetic": [4.0, 2.0],
        "judge.semantic": [4.0, 2.0],
        "judge.agreement": [0.5, 1.0],  # aesthetic agreed, semantic did not / both agreed
        "judge.spread": [1.0, 0.0],  # |5 - 3| / 2 pairs
    }
    assert [pixels for _, pixels in seen] == [[RED, BLUE], [RED, BLUE], [RED, GREEN], [RED, GREEN]]
    assert all(text == JUDGE_INSTRUCTION for text, _ in seen)
    assert mllm.count("SimilarityRating") == 4  # every part came from one pass
    details = metric_details(metrics, ref, images)
    assert mllm.count("SimilarityRating") == 4  # details too
    assert [r["semantic"] for r in details[0]["judge"]["ratings"]] == [5, 3]
    assert details[0]["judge"]["requests"] == 2 and details[0]["judge"]["ratings"][0]["rationale"] == "close"
    assert details[0]["judge"]["temperature"] is None  # a fake has no temperature to set


def test_one_repeat_has_no_agreement_parts_and_large_images_are_shrunk() -> None:
    sizes: list[list[tuple[int, int]]] = []

    def answer(text: str, images: Sequence[Image.Image]) -> dict[str, Any]:
        sizes.append([im.size for im in images])
        return rating(3, 4)

    metrics = resolve_metrics(["judge?max_side=64"], mllm=FakeMLLM(script={"SimilarityRating": answer}))
    assert [m.name for m in metrics] == ["judge", "judge.aesthetic", "judge.semantic"]
    assert compute_metrics(metrics, flat(RED, 200), [flat(BLUE, 100)])["judge"] == [3.5]
    assert sizes == [[(64, 64), (64, 64)]]


def test_judge_needs_a_model_that_takes_two_images() -> None:
    with pytest.raises(CapabilityError, match="two images"):
        resolve_metrics(["judge"], mllm=FakeMLLM(max_images_per_call=1))
    with pytest.raises(CapabilityError, match="no images"):
        resolve_metrics(["judge"], mllm=FakeMLLM(accepts_images=False))


def test_judge_over_http_runs_at_temperature_zero_without_touching_the_given_model() -> None:
    from langchain_openai import ChatOpenAI

    from imagerepainter.backends import ChatModelMLLM
    from imagerepainter.testing.openai_server import OpenAICompatibleServer, ScriptedResponder

    responder = ScriptedResponder({"SimilarityRating": [rating(5, 4), rating(5, 4), rating(1, 2)]})
    with OpenAICompatibleServer(responder) as server:
        chat = ChatOpenAI(base_url=server.base_url, api_key="sk-test", model="gpt-4o-mini", max_retries=0, timeout=5)
        mllm = ChatModelMLLM(chat)
        metrics = resolve_metrics(["judge?repeats=2"], mllm=mllm)
        values = compute_metrics(metrics, flat(RED), [flat(BLUE)])
        # A gpt-5 reasoning model takes no temperature but its default: it is left alone.
        gpt5 = ChatModelMLLM(ChatOpenAI(base_url=server.base_url, api_key="sk-test", model="gpt-5", max_retries=0))
        (judge5, *_) = resolve_metrics(["judge"], mllm=gpt5)
        judge5.compute(flat(RED), [flat(GREEN)])
        requests = server.chat_requests
    assert values["judge"] == [4.5] and values["judge.agreement"] == [1.0]
    assert [r.body.get("temperature") for r in requests[:2]] == [0.0, 0.0]
    assert "temperature" not in requests[2].body
    assert [r.schema_name for r in requests] == ["SimilarityRating"] * 3
    first = requests[0]
    assert [im.convert("RGB").getpixel((0, 0)) for im in first.images] == [RED, BLUE]
    assert chat.temperature is None  # the caller's model is not changed
    assert metrics[0].describe()["judge"]["temperature"] == 0.0
    assert judge_mllm(gpt5) == (gpt5, None)


# ----------------------------------------------------------------------------- the sandbox as a judge


def test_the_sandbox_mllm_judges_through_the_metric_in_process_and_over_http() -> None:
    from langchain_openai import ChatOpenAI

    from imagerepainter.backends import ChatModelMLLM
    from imagerepainter.sandbox import random_scene, render_scene
    from imagerepainter.sandbox.server import sandbox_server

    scene = random_scene(4)
    reference = render_scene(scene, seed=1)
    images = [render_scene(scene, seed=2), render_scene(random_scene(99), seed=2)]  # the same scene; another one

    local = compute_metrics(resolve_metrics(["judge?repeats=2"], mllm="sandbox"), reference, images)
    assert local["judge"][0] == 5.0 and local["judge"][1] <= 2.0
    assert local["judge.agreement"] == [1.0, 1.0] and local["judge.spread"] == [0.0, 0.0]  # deterministic

    with sandbox_server() as server:
        chat = ChatOpenAI(base_url=server.base_url, api_key="sk-test", model="sandbox", max_retries=0, timeout=10)
        remote = compute_metrics(resolve_metrics(["judge"], mllm=ChatModelMLLM(chat)), reference, images)
        requests = server.chat_requests
    assert remote["judge"] == local["judge"]  # the same ratings through ChatOpenAI and the wire protocol
    assert [r.schema_name for r in requests] == ["SimilarityRating"] * 2
    assert all(r.body.get("temperature") == 0.0 for r in requests)


def test_the_judge_is_a_metric_and_the_loop_refuses_it_as_its_scorer() -> None:
    from imagerepainter.backends.registry import check_backends

    for attempt in (
        lambda: registry.resolve_scorer("judge"),
        lambda: check_backends(mllm="sandbox", t2i="sandbox", scorer="judge"),
    ):
        with pytest.raises(
            ConfigurationError, match=r"'judge' is a benchmark metric, not a loop scorer.*eval --metrics judge"
        ):
            attempt()
    assert resolve_metrics(["judge"], mllm="sandbox")[0].name == "judge"
