"""Done-means of the core: Repainter driven end to end through the real paths, on photographs.

ChatOpenAI -> OpenAI-compatible server on 127.0.0.1; DiffusersT2I -> a tiny Stable Diffusion
pipeline loaded with from_pretrained; CLIP and DINOv2 scorers on tiny local folders.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from langchain_openai import ChatOpenAI

from imagerepainter import Repainter
from imagerepainter.backends import DiffusersT2I
from imagerepainter.backends.retry import RetryPolicy
from imagerepainter.images import load_image
from imagerepainter.scorers import CLIPScorer, DINOv2Scorer, WeightedScorer
from imagerepainter.testing.openai_server import Fault, OpenAICompatibleServer
from imagerepainter.testing.responders import SchemaResponder
from tests.expected import PAPER_CALLS_TWO_OBJECTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def t2i(tiny_sd_dir):
    return DiffusersT2I.from_pretrained(str(tiny_sd_dir), device="cpu", torch_dtype="float32")


@pytest.fixture(scope="module")
def scorer(tiny_clip_dir, tiny_dinov2_dir):
    return WeightedScorer({CLIPScorer(str(tiny_clip_dir)): 0.5, DINOv2Scorer(str(tiny_dinov2_dir)): 0.5})


def _chat(server, **kw):
    return ChatOpenAI(base_url=server.base_url, api_key="sk-e2e-0123456789abcdef", model="gpt-4o", max_retries=0, **kw)


def _repainter(server, t2i, scorer, **settings):
    from imagerepainter.backends import ChatModelMLLM

    mllm = ChatModelMLLM(_chat(server), retry=RetryPolicy(max_attempts=4, initial_wait=0.01))
    return Repainter(mllm=mllm, t2i=t2i, scorer=scorer, height=64, width=64, num_inference_steps=2, **settings)


def _signature(result):
    return [(c.round, c.index, c.prompt, c.seed, round(c.score, 6)) for c in result.candidates]


def test_regenerates_a_photograph_with_the_paper_preset(evalref_dir, t2i, scorer):
    photo = evalref_dir / "scene_3.png"
    responder = SchemaResponder()
    with OpenAICompatibleServer(responder) as server:
        rp = Repainter(
            mllm=_chat(server), t2i=t2i, scorer=scorer, preset="paper", height=64, width=64, num_inference_steps=2
        )
        result = rp.run(photo)
        requests = server.chat_requests

    # the server received the reference as an image content part (resized to the configured side)
    first = requests[0]
    reference = load_image(photo)
    assert len(first.images) == 1 and first.images[0].size == reference.size
    assert np.array_equal(np.asarray(first.images[0].convert("RGB")), np.asarray(reference))
    # every round and candidate, with prompt, seed and score
    assert len(result.rounds) == 3 and all(len(r.candidates) == 3 for r in result.rounds)
    assert all(c.prompt and c.score is not None and isinstance(c.seed, int) for c in result.candidates)
    assert len({c.seed for c in result.candidates}) == 9
    # best is the maximum over all rounds, and the policy's reason is recorded
    assert result.best.score == max(c.score for c in result.candidates)
    assert result.stop_reason == "max_rounds"
    # the composite's parts are recorded with every candidate, and they make up its score
    for c in result.candidates:
        assert set(c.scores) == set(scorer.component_names) and len(c.scores) == 2
        assert c.score == pytest.approx(0.5 * sum(c.scores.values()), abs=1e-9)
    # exactly the calls the paper's settings imply (2 objects: details x2 and relationships)
    assert responder.counts == PAPER_CALLS_TWO_OBJECTS
    assert len(requests) == sum(responder.counts.values())  # no wasted round trip
    critique_requests = [r for r in requests if r.schema_name == "Critique"]
    assert all(len(r.images) == 2 for r in critique_requests)
    assert result.usage["images"] == 9 and result.usage["input_tokens"] > 0
    assert result.backends["t2i"]["device"] == "cpu"


@pytest.mark.parametrize("support", ["tools", "text"])
def test_same_result_on_servers_with_less_structured_output(evalref_dir, t2i, scorer, support):
    photo = evalref_dir / "object_5.png"
    with OpenAICompatibleServer(SchemaResponder()) as server:
        baseline = _repainter(server, t2i, scorer, max_rounds=2).run(photo)
    with OpenAICompatibleServer(SchemaResponder(), structured_output=support) as server:
        result = _repainter(server, t2i, scorer, max_rounds=2).run(photo)
        modes = Counter(r.mode for r in server.chat_requests)
    assert _signature(result) == _signature(baseline)
    # only the first, concurrent wave of description calls tries json_schema; then the working
    # method is remembered and no request is wasted on it again
    assert modes["json_schema"] <= 3
    assert modes["tools" if support == "tools" else "text"] >= 8


def test_rate_limits_and_server_errors_now_and_then_change_nothing(evalref_dir, t2i, scorer):
    photo = evalref_dir / "portrait_7.png"
    with OpenAICompatibleServer(SchemaResponder()) as server:
        baseline = _repainter(server, t2i, scorer, max_rounds=3).run(photo)
    with OpenAICompatibleServer(SchemaResponder()) as server:
        server.fail_every(3, Fault.status(429, retry_after=0.01))
        server.fail_every(5, Fault.status(500))
        result = _repainter(server, t2i, scorer, max_rounds=3).run(photo)
    assert _signature(result) == _signature(baseline)
    assert result.usage["mllm_requests"] >= baseline.usage["mllm_requests"] + 3  # the faults were retried
    assert result.usage["mllm_calls"] == baseline.usage["mllm_calls"]
