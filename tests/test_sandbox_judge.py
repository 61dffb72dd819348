"""The sandbox MLLM as a judge: SimilarityRating from what it perceives in two images."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from langchain_openai import ChatOpenAI
from PIL import Image
from pydantic import SecretStr

from imagerepainter.backends.base import GenerationRequest, MLLMMessage
from imagerepainter.backends.langchain_mllm import ChatModelMLLM
from imagerepainter.errors import MLLMError
from imagerepainter.loop.schemas import SimilarityRating
from imagerepainter.sandbox import PALETTE, SandboxMLLM, SandboxT2I, Scene, random_scene, render_scene
from imagerepainter.sandbox.server import sandbox_server


def _judge(reference: Image.Image, candidate: Image.Image) -> SimilarityRating:
    messages = [MLLMMessage(text="Rate the second image against the first.", images=(reference, candidate))]
    return SandboxMLLM().structured(messages, SimilarityRating).value


def test_the_same_scene_rates_five_and_says_so() -> None:
    scene = random_scene(4)
    rating = _judge(render_scene(scene, seed=1), render_scene(scene, seed=2))  # other seed: a pixel of jitter
    assert (rating.aesthetic, rating.semantic) == (5, 5)
    assert "match" in rating.rationale


def test_ratings_fall_step_by_step_as_the_scenes_differ_more() -> None:
    scene = random_scene(4)
    first, *rest = scene.shapes
    recoloured = replace(first, color=PALETTE["black"])
    steps = [
        scene,
        Scene(scene.background, (recoloured, *rest)),  # one shape the wrong colour
        Scene(scene.background, (recoloured, *rest[1:])),  # ... and one missing
        Scene(PALETTE["navy"], (recoloured,)),  # ... a different background, most shapes gone
        random_scene(99),  # another scene altogether
    ]
    reference = render_scene(scene, seed=1)
    ratings = [_judge(reference, render_scene(s, seed=2)) for s in steps]
    semantic = [r.semantic for r in ratings]
    aesthetic = [r.aesthetic for r in ratings]
    assert semantic == sorted(semantic, reverse=True) and aesthetic == sorted(aesthetic, reverse=True)
    assert semantic[0] == 5 > semantic[1] > semantic[2] > semantic[4] == 1
    assert aesthetic[0] == 5 > aesthetic[3] and aesthetic[4] <= 2
    assert "missing" in ratings[2].rationale and "background" in ratings[3].rationale


def test_mean_ratings_fall_with_the_fidelity_of_the_model_that_drew_the_candidate() -> None:
    fidelities = (1.0, 0.8, 0.6, 0.4)
    means = []
    for fidelity in fidelities:
        t2i = SandboxT2I(fidelity=fidelity)
        ratings = [
            _judge(
                render_scene(random_scene(s), seed=10_000 + s),
                t2i.render(GenerationRequest(prompt=random_scene(s).to_prompt(), seed=s)),
            )
            for s in range(10)
        ]
        means.append((np.mean([r.semantic for r in ratings]), np.mean([r.aesthetic for r in ratings])))
    semantic, aesthetic = zip(*means, strict=True)
    assert all(a > b for a, b in itertools.pairwise(semantic)), semantic
    assert all(a > b for a, b in itertools.pairwise(aesthetic)), aesthetic


def test_the_judge_is_deterministic_and_needs_both_images(evalref_dir: Path) -> None:
    with Image.open(evalref_dir / "portrait_1.png") as file:
        photo = file.convert("RGB")
    render = render_scene(random_scene(2), seed=1)
    assert _judge(photo, render) == _judge(photo, render)
    assert _judge(photo, render).aesthetic == 1  # a flat render is not a photograph
    assert (_judge(photo, photo).aesthetic, _judge(photo, photo).semantic) == (5, 5)
    with pytest.raises(MLLMError, match="needs 2 image"):
        SandboxMLLM().structured([MLLMMessage(text="Rate.", images=(render,))], SimilarityRating)


def test_over_http_the_judge_gives_the_in_process_answer() -> None:
    reference, candidate = render_scene(random_scene(5), seed=1), render_scene(random_scene(6), seed=1)
    messages = [MLLMMessage(text="Rate the second image against the first.", images=(reference, candidate))]
    with sandbox_server() as server:
        chat = ChatOpenAI(
            model="sandbox", base_url=server.base_url, api_key=SecretStr("EMPTY"), max_retries=0, temperature=0
        )
        remote = ChatModelMLLM(chat).structured(messages, SimilarityRating).value
    assert remote == _judge(reference, candidate)
