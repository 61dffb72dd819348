"""Graded sandbox text-to-image models: lower fidelity follows the prompt less, and scores lower."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from imagerepainter import Repainter
from imagerepainter.backends.base import GenerationRequest
from imagerepainter.backends.registry import resolve_t2i
from imagerepainter.errors import ConfigurationError
from imagerepainter.sandbox import SandboxScorer, SandboxT2I, misread, parse_prompt, random_scene, render_scene

FIDELITIES = (1.0, 0.8, 0.6, 0.4)


def _reference(seed: int):  # the hidden scene, rendered as the benchmark's references are
    return render_scene(random_scene(seed), seed=10_000 + seed)


def _one_shot(fidelity: float, prompts: list[str], *, renders: int = 1) -> np.ndarray:
    """Per scene, the mean score of ``renders`` one-shot renders of its prompt (seeds 0, 1, ...)."""
    scorer, t2i = SandboxScorer(), SandboxT2I(fidelity=fidelity)
    out = []
    for scene, prompt in enumerate(prompts):
        images = t2i.generate([GenerationRequest(prompt=prompt, seed=k) for k in range(renders)])
        out.append(np.mean(scorer.score(scorer.prepare(_reference(scene)), [g.image for g in images])))
    return np.array(out)


def _assert_graded(scores: dict[float, np.ndarray], *, min_t: float) -> None:
    """Means fall with fidelity, each paired gap at least ``min_t`` standard errors."""
    for hi, lo in itertools.pairwise(FIDELITIES):
        gap = scores[hi] - scores[lo]
        se = gap.std(ddof=1) / np.sqrt(len(gap))
        assert gap.mean() > min_t * se, (hi, lo, gap.mean(), se)


def test_fidelity_one_is_the_exact_renderer_and_lower_is_deterministic_per_prompt_and_seed() -> None:
    prompt = random_scene(3).to_prompt()
    exact = SandboxT2I().render(GenerationRequest(prompt=prompt, seed=5))
    assert SandboxT2I(fidelity=1.0).render(GenerationRequest(prompt=prompt, seed=5)).tobytes() == exact.tobytes()
    weak = SandboxT2I(fidelity=0.6)
    first = weak.render(GenerationRequest(prompt=prompt, seed=5))
    assert weak.render(GenerationRequest(prompt=prompt, seed=5)).tobytes() == first.tobytes()
    assert SandboxT2I(fidelity=0.6).render(GenerationRequest(prompt=prompt, seed=6)).tobytes() != first.tobytes()
    assert first.tobytes() != exact.tobytes()


def test_lower_fidelity_misreads_the_same_way_by_a_larger_amount() -> None:
    scene = random_scene(11)
    prompt = scene.to_prompt()
    errors = []
    for fidelity in FIDELITIES:
        drawn = misread(scene, fidelity, prompt=prompt, seed=2)
        true_shapes = scene.shapes[: len(drawn.shapes)]
        errors.append(sum(abs(a.x - b.x) + abs(a.y - b.y) for a, b in zip(true_shapes, drawn.shapes, strict=False)))
    assert errors[0] == 0 and errors == sorted(errors) and errors[-1] > 0.05


def test_one_shot_scores_of_the_true_prompt_fall_with_fidelity() -> None:
    prompts = [random_scene(s).to_prompt() for s in range(20)]
    scores = {f: _one_shot(f, prompts) for f in FIDELITIES}
    assert scores[1.0].mean() > 0.97  # the exact renderer of the true prompt is nearly the reference
    _assert_graded(scores, min_t=5.0)


def test_one_shot_scores_of_the_sandbox_description_fall_with_fidelity() -> None:
    """The benchmark's single mode: the sandbox MLLM's coarse first prompt, rendered once per seed.

    A coarse prompt already misses the reference, so a weaker model has less to lose: the
    gaps are a tenth of those of the true prompt and one render per scene is noisy; three
    renders per scene over 20 scenes separate adjacent grades.
    """
    describer = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1, variants=1)
    prompts = [describer.run(_reference(s)).initial_prompt for s in range(20)]
    assert all(parse_prompt(p) != random_scene(s) for s, p in enumerate(prompts))  # coarse indeed
    scores = {f: _one_shot(f, prompts, renders=3) for f in FIDELITIES}
    assert scores[1.0].mean() < 0.6
    _assert_graded(scores, min_t=3.0)


def test_the_full_loop_keeps_the_order_of_fidelities_on_average() -> None:
    seeds = range(6)
    best: dict[float, np.ndarray] = {}
    for fidelity in FIDELITIES:
        rp = Repainter(mllm="sandbox", t2i=f"sandbox?fidelity={fidelity}", scorer="sandbox", max_rounds=3, seed=0)
        results = [rp.run(_reference(s)) for s in seeds]
        assert results[0].backends["t2i"]["fidelity"] == fidelity  # recorded with the run
        best[fidelity] = np.array([r.scores[-1] for r in results])
    means = [best[f].mean() for f in FIDELITIES]
    assert means == sorted(means, reverse=True), means
    assert (best[1.0] > best[0.4]).all()


def test_fidelity_is_a_typed_spec_option() -> None:
    t2i = resolve_t2i("sandbox?fidelity=0.6")
    assert isinstance(t2i, SandboxT2I) and t2i.describe()["fidelity"] == 0.6
    exact = resolve_t2i("sandbox")
    assert isinstance(exact, SandboxT2I) and exact.describe()["fidelity"] == 1.0
    with pytest.raises(ConfigurationError, match=r"fidelity must be in \[0, 1\] \(1 follows the prompt exactly\)"):
        resolve_t2i("sandbox?fidelity=1.5")
    with pytest.raises(ConfigurationError, match="must be a number"):
        resolve_t2i("sandbox?fidelity=high")
    with pytest.raises(ConfigurationError, match="Did you mean 'fidelity'"):
        resolve_t2i("sandbox?fidelty=0.6")
