"""ChatModelMLLM through the real ChatOpenAI client against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_openai import ChatOpenAI
from PIL import Image

from imagerepainter.backends import ChatModelMLLM, MLLMMessage, RetryPolicy
from imagerepainter.errors import MLLMError, StructuredOutputError
from imagerepainter.loop import schemas
from imagerepainter.loop.schemas import Critique, GlobalDescription
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


def test_the_model_is_bound_once_per_schema_and_a_replaced_model_gets_its_own_binding():
    """Converting a schema to a strict response_format is paid once, not on every request; a model
    swapped in later is bound anew, so its requests never go through the old model."""
    binds: list[str] = []

    class CountingChat(ChatOpenAI):
        def bind(self, **kwargs):  # type: ignore[override]
            binds.append(kwargs["response_format"]["json_schema"]["name"])
            return super().bind(**kwargs)

    answers = {"GlobalDescription": [{"description": "a"}] * 3, "Critique": [CRITIQUE]}
    with (
        OpenAICompatibleServer(ScriptedResponder(answers)) as first,
        OpenAICompatibleServer(ScriptedResponder(answers)) as second,
    ):
        mllm = ChatModelMLLM(
            CountingChat(base_url=first.base_url, api_key=KEY, model="gpt-4o-mini", max_retries=0, timeout=2),
            retry=FAST,
        )
        _ask(mllm, GlobalDescription), _ask(mllm, GlobalDescription), _ask(mllm, Critique)
        mllm.model = CountingChat(base_url=second.base_url, api_key=KEY, model="gpt-4o-mini", max_retries=0, timeout=2)
        _ask(mllm, GlobalDescription)
        served = (len(first.chat_requests), len(second.chat_requests))
    assert binds == ["GlobalDescription", "Critique", "GlobalDescription"]
    assert served == (3, 1)


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


# ----------------------------------------------------------------------------- one retry policy for every chat model


def _always(server: OpenAICompatibleServer, fault: Fault) -> None:
    server.fail_every(1, fault)


@pytest.mark.parametrize("max_retries", [None, 1, 5], ids=["default", "max_retries=1", "max_retries=5"])
def test_a_chat_openai_that_retries_itself_gets_the_policys_attempts_and_nothing_more(max_retries):
    """ChatOpenAI's client retries 5xx itself (twice by default); the adapter calls it with those retries
    off, so the policy's attempts are all the requests (the client's 3 alone, or 3 x 3, before)."""
    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        _always(server, Fault.status(503))
        chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="m", timeout=2, max_retries=max_retries)
        mllm = ChatModelMLLM(chat, retry=FAST)
        with pytest.raises(MLLMError) as info:
            _ask(mllm, GlobalDescription)
        sent = len(server.requests)
    assert sent == FAST.max_attempts == info.value.requests
    message = str(info.value)
    assert f"kept failing after {FAST.max_attempts} attempts: " in message and "chat model itself" not in message
    assert mllm.model_retries == 0
    # the model passed in is unchanged; the one called shares its HTTP connection pool
    assert chat.max_retries == max_retries and chat.root_client.max_retries == (
        2 if max_retries is None else max_retries
    )
    assert mllm.model is chat and mllm.called_model is not chat
    assert mllm.called_model.root_client._client is chat.root_client._client


def test_the_policys_retry_after_and_deadline_govern_a_chat_openai_passed_in():
    """The server asks for 0.2 s each time: the policy caps that at its max_wait and stops at max_elapsed,
    where the client left to itself would wait out its own retries (5 here) regardless."""
    import time

    policy = RetryPolicy(max_attempts=10, initial_wait=1.0, max_wait=0.05, max_elapsed=0.3)
    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        _always(server, Fault.status(429, retry_after=0.2))
        chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="m", timeout=2, max_retries=5)
        started = time.monotonic()
        with pytest.raises(MLLMError, match="kept failing after"):
            _ask(ChatModelMLLM(chat, retry=policy), GlobalDescription)
        elapsed = time.monotonic() - started
        sent = len(server.requests)
    assert 2 < sent < 10  # stopped by the deadline, not by the attempt count
    assert elapsed < 0.3 + 0.5, elapsed  # the client's own 5 retries would wait 5 x 0.2 s


def test_a_chat_openai_built_without_a_timeout_is_called_with_the_librarys_timeout():
    from imagerepainter.backends.retry import DEFAULT_REQUEST_TIMEOUT

    unset = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key=KEY, model="m")
    chosen = ChatOpenAI(base_url="http://127.0.0.1:9/v1", api_key=KEY, model="m", timeout=7)
    assert unset.root_client.timeout is None  # ChatOpenAI's default: wait forever
    assert ChatModelMLLM(unset).called_model.root_client.timeout == DEFAULT_REQUEST_TIMEOUT
    assert ChatModelMLLM(chosen).called_model.root_client.timeout == 7  # the user's own is kept


def test_an_azure_chat_openai_is_called_without_its_clients_retries_too():
    from langchain_openai import AzureChatOpenAI

    azure = AzureChatOpenAI(
        azure_endpoint="http://127.0.0.1:9", api_key=KEY, api_version="2024-10-21", azure_deployment="gpt-4o"
    )
    called = ChatModelMLLM(azure).called_model
    assert (azure.root_client.max_retries, azure.root_async_client.max_retries) == (2, 2)
    assert (called.root_client.max_retries, called.root_async_client.max_retries) == (0, 0)
    assert type(called.root_client) is type(azure.root_client)  # still an AzureOpenAI client, same endpoint
    assert (
        called.root_client._client is azure.root_client._client and called.client is called.root_client.chat.completions
    )


def test_a_model_swapped_into_the_adapter_is_called_without_its_retries_too():
    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        _always(server, Fault.status(500))
        mllm = _mllm(server)
        mllm.model = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="m", timeout=2)  # retries twice
        with pytest.raises(MLLMError, match=r"after 3 attempts: "):
            _ask(mllm, GlobalDescription)
        assert len(server.requests) == FAST.max_attempts


def test_what_the_client_does_not_retry_is_still_retried_once():
    """A 200 with a body that is not JSON is not retried by the openai client, so the policy retries it."""
    with OpenAICompatibleServer(ScriptedResponder({"GlobalDescription": [{"description": "ok"}]})) as server:
        server.inject(Fault.malformed())
        chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="m", timeout=2)  # client retries 2
        reply = _ask(ChatModelMLLM(chat, retry=FAST), GlobalDescription)
        sent = len(server.requests)
    assert reply.value.description == "ok" and reply.requests == 2 and sent == 2


def test_a_model_without_its_own_retries_gets_all_the_policys_attempts():
    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        _always(server, Fault.status(503, retry_after=0.01))
        mllm = _mllm(server)  # max_retries=0
        with pytest.raises(MLLMError, match=r"kept failing after 3 attempts: ") as info:
            _ask(mllm, GlobalDescription)
        sent = len(server.requests)
    assert sent == 3 and mllm.model_retries == 0 and "chat model itself" not in str(info.value)


def test_an_openai_spec_builds_a_model_without_retries_and_keeps_the_policy():
    from imagerepainter.backends import resolve_mllm

    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        _always(server, Fault.status(503, retry_after=0.01))
        mllm = resolve_mllm(f"openai:m?base_url={server.base_url}")
        assert isinstance(mllm, ChatModelMLLM)
        assert mllm.model.max_retries == 0 and mllm.model_retries == 0
        with pytest.raises(MLLMError, match=r"after 10 attempts: "):
            _ask(mllm, GlobalDescription)
        assert len(server.requests) == 10  # RetryPolicy's default 10 attempts, nothing multiplied


def _hiding(chat: ChatOpenAI):
    """A chat model that retries by itself and hides its client (only ``invoke``)."""
    from langchain_core.runnables import RunnableLambda

    return RunnableLambda(lambda messages: chat.invoke(messages))


def test_the_own_retries_of_a_model_that_hides_them_count_in_the_policys_budget():
    """The client's retries cannot be switched off here: each failed invocation spent 1 + 2 of the 9
    attempts, so the server sees 9 requests (not 9 x 3), all of them counted."""
    policy = RetryPolicy(max_attempts=9, initial_wait=0.001, max_wait=0.01)
    with OpenAICompatibleServer(ScriptedResponder({})) as server:
        _always(server, Fault.status(500))
        chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="m", timeout=2, max_retries=2)
        mllm = ChatModelMLLM(_hiding(chat), retry=policy, methods=["json_text"], model_retries=2)
        with pytest.raises(MLLMError, match="after 3 attempts; the chat model itself retried up to 2 times") as info:
            _ask(mllm, GlobalDescription)
        sent = len(server.requests)
    assert sent == info.value.requests == 9
    assert mllm.model_retries == 2


def test_a_model_that_hides_its_retries_is_still_retried_by_the_policy():
    """What gets through the hidden client's own retries is retried by the policy, so the call succeeds."""
    answer = {"description": "ok"}
    fail = Fault.status(503)
    script = ScriptedResponder({"GlobalDescription": [fail, fail, answer]}, infer_schema_from_text=True)
    with OpenAICompatibleServer(script) as server:
        chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="m", timeout=2, max_retries=1)
        mllm = ChatModelMLLM(_hiding(chat), retry=FAST, methods=["json_text"], model_retries=1)
        reply = _ask(mllm, GlobalDescription)
        sent = len(server.requests)
    assert reply.value.description == "ok"
    assert sent == reply.requests == 3  # a failed invocation (1 + 1 retry), then an answer


# ----------------------------------------------------------------------------- a 400 after discovery is an error


class _OneImagePerRequest(SchemaResponder):
    """vLLM started with --limit-mm-per-prompt image=1: requests with two images get HTTP 400."""

    def __call__(self, request):
        if len(request.images) > 1:
            return Fault.status(400, message="At most 1 image(s) may be provided in one request.")
        return super().__call__(request)


def test_a_400_after_a_method_worked_is_an_error_not_a_fallback():
    ref, cand = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    with OpenAICompatibleServer(_OneImagePerRequest()) as server:
        mllm = _mllm(server)
        _ask(mllm, GlobalDescription, (ref,))  # json_schema works
        with pytest.raises(MLLMError) as info:
            _ask(mllm, Critique, (ref, cand))
        modes = [r.mode for r in server.chat_requests]
    assert modes == ["json_schema", "json_schema"]  # no tools / text fallback requests
    message = str(info.value)
    assert "HTTP 400" in message and "At most 1 image(s)" in message
    assert "2 images" in message and "--limit-mm-per-prompt" in message
    assert "json_text" not in message and not isinstance(info.value, StructuredOutputError)


def test_a_400_with_one_image_after_discovery_has_no_image_hint():
    bad = Fault.status(400, message="prompt too long")
    with OpenAICompatibleServer(ScriptedResponder({"GlobalDescription": [{"description": "a"}, bad]})) as server:
        mllm = _mllm(server)
        _ask(mllm, GlobalDescription)
        with pytest.raises(MLLMError, match="prompt too long") as info:
            _ask(mllm, GlobalDescription, (Image.new("RGB", (8, 8)),))
        assert len(server.chat_requests) == 2
    assert "limit-mm-per-prompt" not in str(info.value)


class _DiscoveredConcurrently:
    """A text-only server on which two first calls discover the structured-output method together.

    Both first calls are held until both have sent their json_schema request; the second tools
    request is refused only once the other call has found that json_text works (``method``).
    Text requests with two images are refused, as vLLM does with --limit-mm-per-prompt image=1.
    """

    def __init__(self) -> None:
        import threading

        self.mllm: ChatModelMLLM | None = None
        self.both_started = threading.Barrier(2, timeout=10)
        self.tools_requests = 0
        self.lock = threading.Lock()

    def __call__(self, request):
        import json
        import time

        if request.mode == "json_schema":
            self.both_started.wait()
            return Fault.status(400, message="response_format is not supported")
        if request.mode == "tools":
            with self.lock:
                self.tools_requests += 1
                second = self.tools_requests == 2
            deadline = time.monotonic() + 10
            while second and self.mllm.method != "json_text" and time.monotonic() < deadline:
                time.sleep(0.01)
            return Fault.status(400, message="tools are not supported")
        if len(request.images) > 1:
            return Fault.status(400, message="At most 1 image(s) may be provided in one request.")
        return json.dumps({"description": f"answer {len(request.images)}"})


def test_a_400_on_a_method_that_never_worked_still_falls_back():
    """Concurrent first calls discover methods together: one may learn json_text while another
    still tries tools; the tools 400 then means "unsupported", not a refused request."""
    from concurrent.futures import ThreadPoolExecutor

    responder = _DiscoveredConcurrently()
    with OpenAICompatibleServer(responder) as server:
        mllm = responder.mllm = _mllm(server)
        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda _: _ask(mllm, GlobalDescription), range(2)))
        assert [r.value.description for r in replies] == ["answer 0", "answer 0"]
        assert sorted(r.requests for r in replies) == [3, 3] and mllm.method == "json_text"
        assert sorted(r.mode for r in server.chat_requests) == ["json_schema"] * 2 + ["text"] * 2 + ["tools"] * 2
        # json_text has worked now: a 400 to it is a refused request, with the image hint
        with pytest.raises(MLLMError, match="limit-mm-per-prompt") as info:
            _ask(mllm, GlobalDescription, (Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8))))
        assert not isinstance(info.value, StructuredOutputError) and server.chat_requests[-1].mode == "text"
        assert len(server.chat_requests) == 7  # no fallback to the methods that never worked


@pytest.mark.parametrize(("preset", "image_format", "longest"), [("default", "JPEG", 768), ("paper", "PNG", 1000)])
def test_the_preset_decides_how_images_travel_to_the_model(preset, image_format, longest):
    """`default` sends visually lossless JPEG (small bodies, fast to encode) shrunk to 768 px;
    `paper` sends lossless PNG at full size, as the authors' code sends its files."""
    from imagerepainter import Repainter
    from imagerepainter.sandbox import random_scene, render_scene
    from imagerepainter.sandbox.server import sandbox_server

    reference = render_scene(random_scene(3), 1000, 600)
    with sandbox_server() as server:
        rp = Repainter(mllm=_mllm(server), t2i="sandbox", scorer="sandbox", preset=preset, max_rounds=1)
        rp.run(reference)
        images = [im for request in server.chat_requests for im in request.images]
    assert images, "no request carried an image"
    assert {im.format for im in images} == {image_format}
    assert max(max(im.size) for im in images) == longest
