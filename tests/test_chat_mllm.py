"""ChatModelMLLM through the real ChatOpenAI client against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_openai import ChatOpenAI
from PIL import Image

from imagerepainter import schemas
from imagerepainter.backends import ChatModelMLLM, MLLMMessage, RetryPolicy
from imagerepainter.errors import MLLMError, StructuredOutputError
from imagerepainter.schemas import Critique, GlobalDescription
from imagerepainter.testing.openai_server import ChatReply, Fault, OpenAICompatibleServer, ScriptedResponder
from imagerepainter.testing.responders import SchemaResponder

KEY = "sk-test-abcdefghijklmnopqrstuv"
FAST = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.05)
CRITIQUE = {"style": "s", "composition": "c", "content": "x", "edits": ["make it red"], "is_match": False}


def _mllm(server: OpenAICompatibleServer, **kw) -> ChatModelMLLM:
    chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="gpt-4o-mini", max_retries=0, timeout=2)
    return ChatModelMLLM(chat, retry=FAST, **kw)


def _ask(mllm, schema, images=()):
    return mllm.structured(
        [MLLMMessage(role="system", text="be precise"), MLLMMessage(text="Look.", images=images)], schema
    )


def test_images_arrive_as_content_parts_and_json_schema_is_used():
    ref, cand = Image.new("RGB", (16, 8), (200, 10, 10)), Image.new("RGB", (8, 8), (0, 0, 255))
    with OpenAICompatibleServer(ScriptedResponder({"Critique": [CRITIQUE]})) as server:
        mllm = _mllm(server)
        reply = _ask(mllm, Critique, (ref, cand))
        (request,) = server.chat_requests
    assert reply.value.edits == ["make it red"] and reply.requests == 1
    assert mllm.method == "json_schema" and request.mode == "json_schema" and request.schema_name == "Critique"
    assert [im.size for im in request.images] == [(16, 8), (8, 8)]
    assert np.array_equal(np.asarray(request.images[0].convert("RGB")), np.asarray(ref))
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert server.requests[0].headers["authorization"] == "Bearer ***"


def test_tool_calling_only_server_falls_back_once_then_remembers():
    answers = ScriptedResponder({"GlobalDescription": [{"description": "a"}, {"description": "b"}]})
    with OpenAICompatibleServer(answers, structured_output="tools") as server:
        mllm = _mllm(server)
        first, second = _ask(mllm, GlobalDescription), _ask(mllm, GlobalDescription)
        modes = [r.mode for r in server.chat_requests]
    assert (first.value.description, second.value.description) == ("a", "b")
    assert modes == ["json_schema", "tools", "tools"]  # the failed method is not retried later
    assert first.requests == 2 and second.requests == 1 and mllm.method == "function_calling"


def test_plain_text_only_server_gets_json_from_prose():
    answers = ScriptedResponder({"GlobalDescription": [{"description": "in prose"}]}, infer_schema_from_text=True)
    with OpenAICompatibleServer(answers, structured_output="text") as server:
        mllm = _mllm(server)
        reply = _ask(mllm, GlobalDescription)
        modes = [r.mode for r in server.chat_requests]
    assert reply.value.description == "in prose" and mllm.method == "json_text"
    assert modes == ["json_schema", "tools", "text"]


def test_server_that_ignores_response_format_and_fences_json():
    answers = ScriptedResponder({"GlobalDescription": [{"description": "fenced"}]}, infer_schema_from_text=True)
    with OpenAICompatibleServer(answers, structured_output="text", ignore_unsupported=True) as server:
        reply = _ask(_mllm(server), GlobalDescription)
    assert reply.value.description == "fenced" and reply.requests == 1


def test_invalid_answer_is_sent_back_with_the_error():
    bad = ChatReply(text='{"style": "s", "edits": 7}')  # edits must be a list
    with OpenAICompatibleServer(ScriptedResponder({"Critique": [bad, CRITIQUE]})) as server:
        reply = _ask(_mllm(server), Critique)
        second = server.chat_requests[1]
    assert reply.value.content == "x" and reply.requests == 2
    assert "not a valid Critique" in second.text and "edits" in second.text


def test_never_valid_raises_structured_output_error_with_context():
    bad = ChatReply(text="no json here")
    with (
        OpenAICompatibleServer(ScriptedResponder({"Critique": [bad] * 3})) as server,
        pytest.raises(StructuredOutputError) as info,
    ):
        _ask(_mllm(server, max_reasks=2), Critique)
    err = info.value
    assert err.attempts == 3 and err.schema == "Critique" and err.raw_output == "no json here"


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(429, retry_after=0.01),
        Fault.status(500),
        Fault.status(503),
        Fault.malformed(),
        Fault.timeout(3.0),
        Fault.disconnect(),
    ],
    ids=["429", "500", "503", "malformed", "timeout", "disconnect"],
)
def test_transient_faults_are_retried(fault):
    with OpenAICompatibleServer(ScriptedResponder({"GlobalDescription": [{"description": "ok"}]})) as server:
        server.inject(fault)
        reply = _ask(_mllm(server), GlobalDescription)
    assert reply.value.description == "ok" and reply.requests == 2


def test_persistent_failure_raises_mllm_error_without_the_key():
    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        server.inject(*[Fault.status(500, message=f"broken for key {KEY}")] * 3)
        with pytest.raises(MLLMError) as info:
            _ask(_mllm(server), GlobalDescription)
    assert "3 attempts" in str(info.value) and KEY not in str(info.value)


def test_bad_key_is_reported_plainly():
    server = OpenAICompatibleServer(ScriptedResponder({}), api_key="sk-the-right-one-0000000")
    with server, pytest.raises(MLLMError, match="refused the credentials") as info:
        _ask(_mllm(server), GlobalDescription)
    assert KEY not in str(info.value) and "sk-the-right" not in str(info.value)


def _objects(node):
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


@pytest.mark.parametrize("name", [n for n in schemas.__all__ if isinstance(getattr(schemas, n), type)])
def test_every_schema_is_sent_in_openai_strict_form(name):
    """OpenAI's strict mode rejects a schema whose objects allow extra keys or leave a key optional."""
    schema = getattr(schemas, name)
    with OpenAICompatibleServer(SchemaResponder()) as server:
        _ask(_mllm(server), schema)
        (request,) = server.chat_requests
    sent = request.body["response_format"]["json_schema"]
    assert sent["strict"] is True and sent["name"] == name
    objects = list(_objects(sent["schema"]))
    assert objects
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])


def test_fields_a_model_leaves_out_or_nulls_are_filled_not_fatal():
    partial = {"revised_prompt": "a red square", "style": None, "variants": ["a red box"]}
    with OpenAICompatibleServer(ScriptedResponder({"CritiqueAndRevision": [partial]})) as server:
        reply = _ask(_mllm(server), schemas.CritiqueAndRevision)
    assert reply.requests == 1 and reply.value.revised_prompt == "a red square"
    assert reply.value.style == "" and reply.value.edits == [] and reply.value.is_match is False


def test_a_wrong_base_url_or_model_is_reported_as_such():
    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        chat = ChatOpenAI(base_url=server.base_url.removesuffix("/v1"), api_key=KEY, model="gpt-4o", max_retries=0)
        with pytest.raises(MLLMError, match="404") as info:
            _ask(ChatModelMLLM(chat, retry=FAST), GlobalDescription)
        assert len(server.requests) == 1  # not retried, and no other method tried
    assert "/v1" in str(info.value)
