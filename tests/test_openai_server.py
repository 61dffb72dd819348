"""The OpenAI-compatible test server, driven by the real ``ChatOpenAI`` and ``openai`` clients over loopback."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import openai
import pytest
from langchain_core.exceptions import ModelRefusalError
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from PIL import Image
from pydantic import BaseModel, Field

from imagerepainter.testing.openai_server import (
    IMAGE_TOKENS,
    ChatReply,
    ChatRequest,
    Fault,
    OpenAICompatibleServer,
    ScriptedResponder,
    ScriptExhaustedError,
    estimate_tokens,
)


class Verdict(BaseModel):
    score: float = Field(description="0..1")
    critique: str
    tags: list[str] = []


VERDICT = {"score": 0.75, "critique": "too dark", "tags": ["light"]}


def chat(srv: OpenAICompatibleServer, **kwargs: Any) -> ChatOpenAI:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5)
    return ChatOpenAI(base_url=srv.base_url, api_key="sk-test-secret", model="gpt-4o", **kwargs)


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def noise(seed: int, size: tuple[int, int] = (8, 6)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture
def srv():
    with OpenAICompatibleServer(ScriptedResponder({"Verdict": [VERDICT] * 3}, text="plain words here")) as server:
        yield server


# ----------------------------------------------------------------------------- chat basics


def test_plain_text_reply_usage_and_redacted_key(srv):
    reply = chat(srv).invoke([SystemMessage("Be terse."), HumanMessage("describe the red cat")])

    assert reply.content == "plain words here"
    # prompt: 2 system words + 4 user words; completion: 3 words
    assert reply.usage_metadata["input_tokens"] == 6
    assert reply.usage_metadata["output_tokens"] == 3
    assert reply.usage_metadata["total_tokens"] == 9
    [recorded] = srv.requests
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer ***"
    assert "sk-test-secret" not in repr(recorded)
    assert recorded.chat.system == "Be terse."
    assert recorded.chat.text == "describe the red cat"
    assert recorded.chat.mode == "text"
    assert recorded.chat.model == "gpt-4o"


def test_multimodal_message_arrives_decoded_in_order(srv):
    first, second = noise(1), noise(2, (5, 7))
    message = HumanMessage(
        content=[
            {"type": "text", "text": "Compare the reference"},
            {"type": "image_url", "image_url": {"url": data_url(first)}},
            {"type": "text", "text": "with the candidate"},
            {"type": "image_url", "image_url": {"url": data_url(second)}},
        ]
    )
    reply = chat(srv).invoke([message])

    [request] = srv.chat_requests
    assert request.text == "Compare the reference\nwith the candidate"
    assert len(request.images) == 2
    assert np.array_equal(np.asarray(request.images[0]), np.asarray(first))
    assert np.array_equal(np.asarray(request.images[1]), np.asarray(second))
    assert reply.usage_metadata["input_tokens"] == estimate_tokens(request.text) + 2 * IMAGE_TOKENS


def test_image_that_is_not_a_data_url_is_a_400(srv):
    message = HumanMessage(content=[{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}])
    with pytest.raises(openai.BadRequestError, match="data: URL"):
        chat(srv).invoke([message])


def test_usage_is_summed_over_calls(srv):
    llm = chat(srv)
    replies = [llm.invoke("one two three"), llm.invoke("four five")]
    assert [r.usage_metadata["input_tokens"] for r in replies] == [3, 2]
    assert sum(r.usage_metadata["total_tokens"] for r in replies) == (3 + 3) + (2 + 3)


# ----------------------------------------------------------------------------- structured output


def test_json_schema_structured_output(srv):
    verdict = chat(srv).with_structured_output(Verdict).invoke("judge it")

    assert verdict == Verdict(**VERDICT)
    [request] = srv.chat_requests
    assert request.mode == "json_schema"
    assert request.schema_name == "Verdict"
    assert set(request.schema["properties"]) == {"score", "critique", "tags"}


def test_function_calling_on_a_tools_only_server():
    responder = ScriptedResponder({"Verdict": [VERDICT]})
    with OpenAICompatibleServer(responder, structured_output="tools") as srv:
        raw = chat(srv).with_structured_output(Verdict, method="function_calling", include_raw=True).invoke("judge")

    assert raw["parsed"] == Verdict(**VERDICT)
    [call] = raw["raw"].tool_calls
    assert call["name"] == "Verdict"
    assert call["args"] == VERDICT
    [request] = srv.chat_requests
    assert request.mode == "tools"
    assert request.schema_name == "Verdict"
    assert "score" in request.schema["properties"]
    assert raw["raw"].response_metadata["finish_reason"] == "tool_calls"
    assert responder.remaining("Verdict") == 0


def test_json_schema_on_a_tools_only_server_is_a_bad_request():
    responder = ScriptedResponder({"Verdict": [VERDICT]})
    with (
        OpenAICompatibleServer(responder, structured_output="tools") as srv,
        pytest.raises(openai.BadRequestError) as info,
    ):
        chat(srv).with_structured_output(Verdict).invoke("judge")

    assert info.value.status_code == 400
    assert "json_schema" in info.value.message
    assert info.value.type == "invalid_request_error"
    assert len(srv.requests) == 1  # a 400 is never retried


def test_text_only_server_rejects_tools_and_schemas():
    with OpenAICompatibleServer(ScriptedResponder({"Verdict": [VERDICT]}), structured_output="text") as srv:
        with pytest.raises(openai.BadRequestError, match="tools"):
            chat(srv).with_structured_output(Verdict, method="function_calling").invoke("judge")
        with pytest.raises(openai.BadRequestError, match="json_schema"):
            chat(srv).with_structured_output(Verdict).invoke("judge")
        assert chat(srv).invoke("hello").content == "OK"


def test_text_only_server_that_ignores_unsupported_answers_json_in_prose():
    responder = ScriptedResponder({"Verdict": [VERDICT]})
    with OpenAICompatibleServer(responder, structured_output="text", ignore_unsupported=True) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
        completion = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "judge"}],
            response_format={"type": "json_schema", "json_schema": {"name": "Verdict", "schema": {}}},
        )

    content = completion.choices[0].message.content
    assert content.startswith("Here you go:\n```json\n")
    fenced = content.split("```json\n", 1)[1].rsplit("```", 1)[0]
    assert json.loads(fenced) == VERDICT
    assert srv.chat_requests[0].mode == "json_schema"  # what the client asked for


def test_json_mode_and_chat_reply_variants():
    def responder(request: ChatRequest) -> Any:
        if request.mode == "json_object":
            return Verdict(**VERDICT)  # pydantic models are dumped to JSON
        return ChatReply(text="{not json", finish_reason="length")

    with OpenAICompatibleServer(responder) as srv:
        assert chat(srv).with_structured_output(Verdict, method="json_mode").invoke("x") == Verdict(**VERDICT)
        reply = chat(srv).invoke("x")
    assert reply.content == "{not json"
    assert reply.response_metadata["finish_reason"] == "length"


def test_refusal_reply_surfaces_as_a_refusal():
    with (
        OpenAICompatibleServer(lambda request: ChatReply(refusal="I can't help with that.")) as srv,
        pytest.raises(ModelRefusalError, match="I can't help with that"),
    ):
        chat(srv).with_structured_output(Verdict).invoke("x")


def test_script_running_out_is_a_500_with_the_reason(srv):
    llm = chat(srv).with_structured_output(Verdict)
    for _ in range(3):
        llm.invoke("judge")
    with pytest.raises(openai.InternalServerError, match="ran out after 3 answers"):
        llm.invoke("judge")
    assert isinstance(srv.errors[-1], ScriptExhaustedError)


def test_scripted_responder_callables_and_inference():
    responder = ScriptedResponder(
        {"Verdict": lambda request: {"score": len(request.images), "critique": request.text}, "Caption": ["c"]},
        text=None,
        infer_schema_from_text=True,
    )
    with OpenAICompatibleServer(responder, structured_output="text", ignore_unsupported=True) as srv:
        # json_mode ignored by a text server: the prose answer's fenced JSON still parses.
        verdict = chat(srv).with_structured_output(Verdict, method="json_mode").invoke("judge as Verdict")
        assert verdict == Verdict(score=0, critique="judge as Verdict")
        assert srv.chat_requests[0].schema_name is None
        # No wire schema: the only script name in the text picks the script.
        assert chat(srv).invoke([SystemMessage("Answer as Caption JSON."), HumanMessage("x")]).content == "c"
        with pytest.raises(openai.InternalServerError, match="text=None"):
            chat(srv).invoke("nothing to match")


# ----------------------------------------------------------------------------- streaming


def test_streaming_text_with_usage(srv):
    chunks = list(chat(srv).stream("stream this", stream_usage=True))

    assert "".join(c.content for c in chunks) == "plain words here"
    assert len([c for c in chunks if c.content]) == 3
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.usage_metadata["input_tokens"] == 2
    assert total.usage_metadata["output_tokens"] == 3
    assert srv.chat_requests[0].stream


def test_streaming_tool_calls():
    with OpenAICompatibleServer(ScriptedResponder({"Verdict": [VERDICT]})) as srv:
        llm = chat(srv).bind_tools([Verdict], tool_choice="Verdict")
        total = None
        for chunk in llm.stream("judge"):
            total = chunk if total is None else total + chunk
    assert total.tool_calls[0]["name"] == "Verdict"
    assert total.tool_calls[0]["args"] == VERDICT


# ----------------------------------------------------------------------------- faults


def test_429_with_retry_after_is_retried(srv):
    srv.inject(Fault.status(429, retry_after=1.2))
    started = time.monotonic()
    reply = chat(srv, max_retries=1).invoke("hello")

    assert reply.content == "plain words here"
    assert time.monotonic() - started >= 1.2  # waited retry-after; the client's own backoff is at most 0.5 s
    assert len(srv.requests) == 2
    assert srv.requests[1].headers["x-stainless-retry-count"] == "1"
    assert srv.pending_faults() == 0


def test_429_without_retries_is_a_rate_limit_error(srv):
    srv.inject(Fault.status(429, retry_after=0.01))
    with pytest.raises(openai.RateLimitError):
        chat(srv).invoke("hello")


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(srv, status):
    srv.inject(Fault.status(status))
    with pytest.raises(openai.InternalServerError) as info:
        chat(srv).invoke("hello")
    assert info.value.status_code == status
    assert "injected" in info.value.message
    assert chat(srv).invoke("hello").content == "plain words here"  # one fault, one request


def test_timeout(srv):
    srv.inject(Fault.timeout(5))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(srv, timeout=0.3).invoke("hello")
    assert time.monotonic() - started < 2


def test_malformed_body(srv):
    srv.inject(Fault.malformed())
    with pytest.raises(ValueError):  # json.JSONDecodeError, raised by the openai client
        chat(srv).invoke("hello")


def test_disconnect(srv):
    srv.inject(Fault.disconnect())
    with pytest.raises(openai.APIConnectionError):
        chat(srv).invoke("hello")
    assert chat(srv).invoke("hello").content == "plain words here"


def test_fault_for_a_path_waits_for_that_path(srv):
    srv.inject(Fault.status(500, path="/images/"))
    assert chat(srv).invoke("hello").content == "plain words here"
    assert srv.pending_faults() == 1
    client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.images.generate(model="gpt-image-1", prompt="a cat", size="8x8")
    assert srv.pending_faults() == 0


def test_fail_every(srv):
    srv.fail_every(3, Fault.status(503))
    outcomes = []
    for _ in range(6):
        try:
            chat(srv).invoke("hello")
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("503")
    assert outcomes == ["ok", "ok", "503", "ok", "ok", "503"]


def test_responder_may_return_a_fault():
    with OpenAICompatibleServer(lambda request: Fault.status(429)) as srv, pytest.raises(openai.RateLimitError):
        chat(srv).invoke("hello")


def test_required_api_key():
    with OpenAICompatibleServer(api_key="sk-right") as srv:
        with pytest.raises(openai.AuthenticationError):
            chat(srv).invoke("hello")
        ok = ChatOpenAI(base_url=srv.base_url, api_key="sk-right", model="m", max_retries=0).invoke("hello")
    assert ok.content == "OK"


# ----------------------------------------------------------------------------- other endpoints


def test_images_endpoint_with_the_openai_client(srv):
    client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
    response = client.images.generate(model="gpt-image-1", prompt="a red cat", n=2, size="16x8")

    images = [Image.open(io.BytesIO(base64.b64decode(item.b64_json))) for item in response.data]
    assert [im.size for im in images] == [(16, 8), (16, 8)]
    assert images[0].getpixel((0, 0)) != images[1].getpixel((0, 0))  # a different image per index
    assert response.usage.input_tokens == 3
    [recorded] = srv.requests
    assert recorded.image.prompt == "a red cat"
    assert (recorded.image.n, recorded.image.width, recorded.image.height) == (2, 16, 8)
    assert recorded.chat is None
    with pytest.raises(openai.BadRequestError, match="size"):
        client.images.generate(model="gpt-image-1", prompt="a red cat", size="huge")


def test_models_and_unknown_paths(srv):
    client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-image-1"]
    assert client.models.retrieve("gpt-image-1").id == "gpt-image-1"

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(srv.base_url + "/embeddings", data=b"{}")
    assert info.value.code == 404
    error = json.loads(info.value.read())["error"]
    info.value.close()
    assert set(error) == {"message", "type", "param", "code"}
    assert "/v1/embeddings" in error["message"]
    assert srv.requests[-1].path == "/v1/embeddings"


def test_body_that_is_not_json_is_a_400(srv):
    request = urllib.request.Request(
        srv.base_url + "/chat/completions", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    info.value.close()
    assert info.value.code == 400
    assert srv.requests[-1].body == "{oops"


# ----------------------------------------------------------------------------- lifecycle


def test_concurrent_requests_are_all_recorded(srv):
    llm = chat(srv)
    threads = [threading.Thread(target=llm.invoke, args=(f"request {i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.chat.text for r in srv.requests) == sorted(f"request {i}" for i in range(6))


def test_close_stops_accepting_and_joins_threads():
    srv = OpenAICompatibleServer().start()
    port = srv.port
    llm = chat(srv)
    assert llm.invoke("hello").content == "OK"  # leaves a keep-alive connection open
    srv.inject(Fault.timeout(30))
    outcome: list[BaseException | str] = []

    def slow_call() -> None:
        try:
            outcome.append(chat(srv, timeout=30).invoke("slow").content)
        except Exception as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=slow_call)
    waiter.start()
    deadline = time.monotonic() + 5
    while srv.pending_faults() and time.monotonic() < deadline:  # the handler took the fault and sleeps
        time.sleep(0.01)

    started = time.monotonic()
    srv.close()
    assert time.monotonic() - started < 2  # the sleeping handler woke up, idle connections were dropped
    waiter.join(5)
    assert not waiter.is_alive()
    assert isinstance(outcome[0], openai.APIConnectionError)  # dropped, not answered
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with pytest.raises(RuntimeError):
        srv.base_url  # noqa: B018
    with pytest.raises(RuntimeError, match="closed"):
        srv.start()
    srv.close()  # idempotent
