"""Reliability: a flaky API costs nothing, a stalled one ends in a typed error within a bounded time.

The flaky server (:class:`~imagerepainter.testing.openai_faults.ContentFaults`) decides each
fault from the request's body and how often that body was asked, so a faulty run meets the
same faults every time and can be compared with a fault-free one.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any

import pytest
from pydantic import SecretStr

pytest.importorskip("langchain_openai")

from langchain_openai import ChatOpenAI

from imagerepainter import Repainter
from imagerepainter.backends.langchain_mllm import ChatModelMLLM, openai_chat_mllm
from imagerepainter.backends.registry import resolve_mllm
from imagerepainter.backends.retry import DEFAULT_REQUEST_TIMEOUT, RetryPolicy
from imagerepainter.errors import MLLMError
from imagerepainter.loop.schemas import ObjectList
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.sandbox.mllm import answer as sandbox_answer
from imagerepainter.testing.openai_faults import ContentFaults
from imagerepainter.testing.openai_server import Fault, OpenAICompatibleServer
from imagerepainter.testing.responders import SchemaResponder

FAST = RetryPolicy(max_attempts=10, initial_wait=0.001, max_wait=0.01)
"""The default attempt count with waits too short to slow the suite."""


def _sandbox_responder() -> SchemaResponder:
    return SchemaResponder(lambda schema, text, images: sandbox_answer(schema, text, list(images)))


def _run(server: OpenAICompatibleServer, seed: int) -> Any:
    chat = ChatOpenAI(model="sandbox", base_url=server.base_url, api_key=SecretStr("EMPTY"), max_retries=0, timeout=5)
    rp = Repainter(mllm=ChatModelMLLM(chat, retry=FAST), t2i="sandbox", scorer="sandbox", max_rounds=2, seed=seed)
    return rp.run(render_scene(random_scene(seed), 64, 64))


def _fingerprint(result: Any) -> dict[str, Any]:
    """Everything a run decided and made: prompts, critiques, seeds, scores, image pixels, tokens."""
    rounds = [
        {
            "prompt": r.prompt,
            "critique": r.critique.model_dump() if r.critique else None,
            "candidates": [
                (c.prompt, c.seed, c.score, hashlib.sha256(c.image.tobytes()).hexdigest()) for c in r.candidates
            ],
        }
        for r in result.rounds
    ]
    usage = {k: v for k, v in result.usage.items() if k != "mllm_requests"}
    return {
        "initial_prompt": result.initial_prompt,
        "understanding": result.understanding,
        "stop_reason": result.stop_reason,
        "best": (result.best.prompt, result.best.score) if result.best else None,
        "rounds": rounds,
        "usage": usage,
        "finished": result.finished,
    }


def test_a_default_built_chat_openai_passed_in_absorbs_thirty_percent_faults_like_a_spec() -> None:
    """``Repainter(mllm=ChatOpenAI(...))`` built with ChatOpenAI's defaults (the client retries twice by
    itself): the library's policy still covers every failure, so 20 seeded runs finish as without faults."""
    faults = ContentFaults(_sandbox_responder(), rate=0.3, seed=17)
    clean_server = OpenAICompatibleServer(_sandbox_responder(), models=("gpt-4o",))
    flaky_server = OpenAICompatibleServer(faults, models=("gpt-4o",))

    def run(server: OpenAICompatibleServer, seed: int) -> Any:
        chat = ChatOpenAI(base_url=server.base_url, model="gpt-4o", api_key=SecretStr("EMPTY"))  # all defaults
        rp = Repainter(mllm=chat, t2i="sandbox", scorer="sandbox", max_rounds=2, seed=seed)
        rp.mllm.retry = FAST  # the library's own policy, its waits shortened for the suite
        return rp.run(render_scene(random_scene(seed), 64, 64))

    with clean_server, flaky_server:
        for seed in range(20):
            clean = run(clean_server, seed)
            before = len(flaky_server.requests)
            flaky = run(flaky_server, seed)  # raises (and fails the test) if any fault got through
            assert _fingerprint(flaky) == _fingerprint(clean), seed
            assert flaky.usage["mllm_requests"] == len(flaky_server.requests) - before, seed
        clean_requests = len(clean_server.requests)
    assert faults.injected_total > 0.2 * clean_requests, faults.injected  # the faults were really there
    assert set(faults.injected) == {"429", "500", "502", "503", "disconnect", "malformed"}
    assert len(flaky_server.requests) == clean_requests + faults.injected_total


@pytest.mark.slow
def test_fifty_runs_at_thirty_percent_transient_faults_finish_identical_to_fault_free_runs() -> None:
    faults = ContentFaults(_sandbox_responder(), rate=0.3, seed=2025)
    clean_server = OpenAICompatibleServer(_sandbox_responder(), models=("sandbox",))
    flaky_server = OpenAICompatibleServer(faults, models=("sandbox",))
    finished = identical = 0
    with clean_server, flaky_server:
        for seed in range(50):
            clean = _run(clean_server, seed)
            before = len(flaky_server.requests)
            flaky = _run(flaky_server, seed)  # raises (and fails the test) if any fault got through
            finished += flaky.finished
            identical += _fingerprint(flaky) == _fingerprint(clean)
            # every HTTP request, the failed ones included, is counted once
            assert flaky.usage["mllm_requests"] == len(flaky_server.requests) - before
        clean_requests = len(clean_server.requests)
    assert faults.injected_total > 0.2 * clean_requests, faults.injected  # the faults were really there
    assert set(faults.injected) == {"429", "500", "502", "503", "disconnect", "malformed"}
    assert len(flaky_server.requests) == clean_requests + faults.injected_total
    assert (finished, identical) == (50, 50)


def test_content_faults_replay_the_same_faults_for_the_same_requests() -> None:
    def run(seed: int) -> tuple[list[str], dict[str, int]]:
        faults = ContentFaults(_sandbox_responder(), rate=0.3, seed=seed)
        with OpenAICompatibleServer(faults, models=("sandbox",)) as server:
            result = _run(server, 3)
            kinds = [str(r.body)[:80] for r in server.requests]
        return kinds, {"requests": result.usage["mllm_requests"], **faults.injected}

    assert run(11) == run(11)
    assert run(11) != run(12)  # the seed, not a counter, picks the faults


def test_a_request_failing_every_attempt_stops_after_the_bounded_attempts() -> None:
    faults = ContentFaults(_sandbox_responder(), rate=0.999999, seed=0, faults=[Fault.status(503)])
    with OpenAICompatibleServer(faults, models=("sandbox",)) as server:
        chat = ChatOpenAI(
            model="sandbox", base_url=server.base_url, api_key=SecretStr("EMPTY"), max_retries=0, timeout=5
        )
        mllm = ChatModelMLLM(chat, retry=RetryPolicy(max_attempts=5, initial_wait=0.001, max_wait=0.01))
        from imagerepainter.backends.base import MLLMMessage

        with pytest.raises(MLLMError, match="after 5 attempts"):
            mllm.structured([MLLMMessage(role="user", text="list the objects")], ObjectList)
        assert len(server.requests) == 5


def test_a_hung_server_ends_in_a_typed_timeout_error_within_a_bounded_time() -> None:
    from imagerepainter.backends.base import MLLMMessage

    hang = OpenAICompatibleServer(lambda request: Fault.timeout(60), models=("sandbox",))
    with hang:
        mllm = openai_chat_mllm("sandbox", base_url=hang.base_url, timeout=0.3)
        mllm.retry = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.05)
        started = time.monotonic()
        with pytest.raises(MLLMError) as info:
            mllm.structured([MLLMMessage(role="user", text="list the objects")], ObjectList)
        elapsed = time.monotonic() - started
        requests = len(hang.requests)
    message = str(info.value)
    assert "timed out" in message and "3 attempts" in message and "0.3 s" in message, message
    assert "?timeout=" in message  # says how to allow more time
    assert requests == 3  # the spec's client does not retry on its own: one layer, three attempts
    assert elapsed < 3 * 0.3 + 2.0


def test_openai_specs_get_a_default_timeout_that_the_spec_overrides() -> None:
    pytest.importorskip("langchain_openai")
    default = resolve_mllm("openai:gpt-4o-mini?base_url=http://127.0.0.1:9/v1")
    assert isinstance(default, ChatModelMLLM)
    assert default.model.request_timeout == DEFAULT_REQUEST_TIMEOUT
    assert default.model.max_retries == 0
    custom = resolve_mllm("openai:gpt-4o-mini?base_url=http://127.0.0.1:9/v1&timeout=30")
    assert isinstance(custom, ChatModelMLLM)
    assert custom.model.request_timeout == 30.0


def test_retry_policy_honours_retry_after_up_to_max_wait_and_stops_at_max_elapsed() -> None:
    class Limited(Exception):
        status_code = 429

        def __init__(self, seconds: str) -> None:
            super().__init__("slow down")
            self.response = type("R", (), {"headers": {"retry-after": seconds}})()

    policy = RetryPolicy(max_attempts=10, initial_wait=0.0, max_wait=0.05, max_elapsed=0.3)
    calls: list[float] = []

    def always_limited() -> None:
        calls.append(time.monotonic())
        raise Limited("0.2")

    started = time.monotonic()
    with pytest.raises(Limited):
        policy.call(always_limited)
    waits = [b - a for a, b in itertools.pairwise(calls)]
    assert all(0.04 <= w < 0.2 for w in waits), waits  # the server's 0.2 s, capped at max_wait
    assert 2 < len(calls) < 10  # stopped by max_elapsed, not by the attempt count
    assert time.monotonic() - started < 0.3 + 0.1

    honoured = RetryPolicy(max_attempts=2, initial_wait=5.0, max_wait=1.0)
    calls.clear()
    attempts = iter([Limited("0.05"), None])

    def once_limited() -> str:
        calls.append(time.monotonic())
        if (exc := next(attempts)) is not None:
            raise exc
        return "ok"

    assert honoured.call(once_limited) == "ok"
    assert 0.04 <= calls[1] - calls[0] < 0.5  # retry-after replaced the 5 s backoff


def test_retry_policy_rejects_settings_that_cannot_retry() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy(max_wait=-1)


def test_a_client_that_would_retry_by_itself_is_retried_by_the_policy_alone_and_counted_exactly() -> None:
    from imagerepainter.backends.base import MLLMMessage

    faults = ContentFaults(SchemaResponder(), rate=0.4, seed=4, faults=[Fault.status(503, retry_after=0.01)])
    with OpenAICompatibleServer(faults) as server:
        chat = ChatOpenAI(model="m", base_url=server.base_url, api_key=SecretStr("EMPTY"), max_retries=5, timeout=5)
        mllm = ChatModelMLLM(chat, retry=FAST)
        assert mllm.model_retries == 0 and chat.root_client.max_retries == 5  # its copy is called, not changed
        total = 0
        for n in range(6):
            reply = mllm.structured([MLLMMessage(role="user", text=f"list the objects {n}")], ObjectList)
            total += reply.requests
        sent = len(server.requests)
    assert faults.injected_total > 0  # retries were needed
    assert total == sent == 6 + faults.injected_total


def test_the_images_backend_absorbs_the_same_transient_faults() -> None:
    from imagerepainter.backends.base import GenerationRequest
    from imagerepainter.backends.openai_images import OpenAIImagesT2I

    requests = [GenerationRequest(prompt=f"a red cat {n}", seed=n, width=8, height=8) for n in range(20)]
    faults = ContentFaults(SchemaResponder(), rate=0.3, seed=9)
    outputs = []
    for image_responder in (None, faults.images):
        with OpenAICompatibleServer(image_responder=image_responder) as server:
            t2i = OpenAIImagesT2I("gpt-image-1", base_url=server.base_url, api_key="sk-test", timeout=5, retry=FAST)
            outputs.append([out.image.tobytes() for out in t2i.generate(requests)])
            sent = len(server.requests)
    assert faults.injected_total > 0
    assert sent == len(requests) + faults.injected_total  # each fault cost one request, nothing more
    assert outputs[0] == outputs[1]
