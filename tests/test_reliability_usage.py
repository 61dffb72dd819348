"""A failure inside describe costs only the failed call, and ``usage`` counts every HTTP request.

The loopback OpenAI-compatible server answers through the real ``ChatOpenAI`` client; the fault
depends on what is asked (the ``Relationships`` call of the description), never on a counter.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytest.importorskip("langchain_openai")

from langchain_openai import ChatOpenAI

from imagerepainter import Repainter
from imagerepainter.backends import ChatModelMLLM, RetryPolicy
from imagerepainter.errors import MLLMError
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.sandbox.mllm import answer as sandbox_answer
from imagerepainter.testing.openai_server import ChatRequest, Fault, OpenAICompatibleServer
from imagerepainter.testing.responders import SchemaResponder

ATTEMPTS = 3
FAST = RetryPolicy(max_attempts=ATTEMPTS, initial_wait=0.001, max_wait=0.01)


class _BrokenCall:
    """Answers like the sandbox, except one kind of call, which fails with ``fault`` while ``broken``."""

    def __init__(self, schema: str, fault: Fault) -> None:
        self.answers = SchemaResponder(lambda name, text, images: sandbox_answer(name, text, list(images)))
        self.schema, self.fault, self.broken = schema, fault, True

    def __call__(self, request: ChatRequest) -> Any:
        if self.broken and (request.schema_name or "") == self.schema:
            return self.fault
        return self.answers(request)


def _repainter(server: OpenAICompatibleServer) -> Repainter:
    chat = ChatOpenAI(base_url=server.base_url, api_key="EMPTY", model="sandbox", max_retries=0, timeout=5)
    return Repainter(mllm=ChatModelMLLM(chat, retry=FAST), t2i="sandbox", scorer="sandbox", max_rounds=2)


def _asked(server: OpenAICompatibleServer, since: int = 0) -> Counter[str]:
    return Counter(r.schema_name or "?" for r in server.chat_requests[since:])


@pytest.mark.parametrize(
    ("fault", "requests_of_failure"),
    [
        (Fault.status(500), ATTEMPTS),  # transient: every attempt the policy allows, each one counted
        (Fault.status(404, message="no such model"), 1),  # permanent: asked once
    ],
)
def test_a_describe_failure_costs_only_the_failed_call_and_usage_counts_every_request(
    fault: Fault, requests_of_failure: int
) -> None:
    reference = render_scene(random_scene(7, min_shapes=3, max_shapes=3))
    responder = _BrokenCall("Relationships", fault)
    with OpenAICompatibleServer(responder, models=("sandbox",)) as server:
        rp = _repainter(server)
        with pytest.raises(MLLMError) as caught:
            rp.run(reference, thread_id="t")
        error = caught.value
        assert (error.node, error.round, error.call) == ("describe", 0, "Relationships")
        assert error.requests == requests_of_failure
        first = _asked(server)
        assert first["Relationships"] == requests_of_failure
        assert first["ObjectList"] == 1 and first["GlobalDescription"] == 1 and first["GlobalFeatures"] == 1
        details = sum(n for name, n in first.items() if name.endswith("Details"))
        assert details == 3  # every sibling answered before the describe step stopped

        responder.broken = False  # the server recovers; the run resumes
        seen = len(server.chat_requests)
        events = list(rp.stream_resume("t"))
        result = events[-1].result
        assert result is not None
        again = _asked(server, seen)
        total = len(server.chat_requests)

    assert result.finished
    # only the failed call is asked again: the answered siblings come from the run's history
    describe_schemas = {"GlobalDescription", "GlobalFeatures", "ObjectList", "Relationships"}
    assert {n for n in again if n in describe_schemas or n.endswith("Details")} == {"Relationships"}
    assert again["Relationships"] == 1
    reused = [e.data["call"] for e in events if e.kind == "call" and e.data.get("reused")]
    assert len(reused) == 6 and "Relationships" not in reused  # shown in progress, not asked
    # every HTTP request the server saw is counted, the failed attempt's included
    assert result.usage["mllm_requests"] == total
    # each answer is counted once, in the calls log too
    described = [c for c in result.calls if c["node"] == "describe"]
    assert len(described) == 3 + 3 + 1 + 1  # level 1, three details, relationships, the rewrite
    assert result.usage["mllm_calls"] == len(result.calls)


def test_a_run_without_failures_counts_exactly_the_requests_made() -> None:
    reference = render_scene(random_scene(8, min_shapes=2, max_shapes=2))
    with OpenAICompatibleServer(_BrokenCall("none", Fault.status(500)), models=("sandbox",)) as server:
        result = _repainter(server).run(reference)
        total = len(server.chat_requests)
    assert result.usage["mllm_requests"] == total == len(result.calls)
