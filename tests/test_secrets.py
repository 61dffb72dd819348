"""API keys never reach run folders, checkpoints, reports, results or error messages."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from imagerepainter import Repainter
from imagerepainter.backends import MLLMMessage, RetryPolicy, resolve_mllm
from imagerepainter.backends.langchain_mllm import ChatModelMLLM
from imagerepainter.errors import ConfigurationError, MLLMError
from imagerepainter.loop.schemas import GlobalDescription
from imagerepainter.runs.folder import BackendSpecs, RunFolder
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.sandbox.server import sandbox_server
from imagerepainter.testing.openai_server import Fault

KEY = "sk-proj-SECRETsecret0123456789abcdef"


def test_key_is_nowhere_in_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with sandbox_server() as server:

        def build(**kwargs):
            chat = ChatOpenAI(model="sandbox", base_url=server.base_url, max_retries=0)  # key from the environment
            return Repainter(**{**kwargs, "mllm": chat})

        specs = BackendSpecs(mllm="openai:sandbox", t2i="sandbox", scorer="sandbox")
        result = RunFolder(tmp_path / "run").run(
            specs, render_scene(random_scene(2)), overrides={"max_rounds": 2}, build=build
        )
        assert server.requests[0].headers["authorization"] == "Bearer ***"  # it was sent, and only as a header
    assert len(result.rounds) == 2
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in result.model_dump_json()


def test_key_is_not_in_errors_even_when_the_server_echoes_it():
    with sandbox_server() as server:
        server.fail_every(1, Fault.status(500, message=f"upstream rejected key {KEY}"))
        chat = ChatOpenAI(model="sandbox", base_url=server.base_url, api_key=KEY, max_retries=0)
        rp = Repainter(
            mllm=ChatModelMLLM(chat, retry=RetryPolicy(max_attempts=2, initial_wait=0.0)),
            t2i="sandbox",
            scorer="sandbox",
            max_rounds=1,
        )
        with pytest.raises(MLLMError) as info:
            rp.run(render_scene(random_scene(1)))
    text = "".join([str(info.value), *getattr(info.value, "__notes__", [])])
    assert KEY not in text and "***" in text
    assert KEY not in repr(rp.mllm)


def test_keys_in_specs_are_refused():
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        resolve_mllm(f"openai:gpt-4o?api_key={KEY}")


KEY_SHAPES = [
    "sk-SECRET1234567890abcdefXYZ",  # OpenAI
    "gsk_SECRETxyz0987654321abcd",  # Groq
    "SECRETTOKEN-4242-abcdef-9999",  # any token passed as api_key
]


@pytest.mark.parametrize("key", KEY_SHAPES, ids=["sk", "gsk", "token"])
@pytest.mark.parametrize("code", [500, 404])
def test_tracebacks_of_mllm_errors_do_not_show_an_echoed_key(key, code):
    """The message was redacted, but a chained openai exception put the key back into printed tracebacks."""
    import traceback

    from imagerepainter.testing.openai_server import OpenAICompatibleServer
    from imagerepainter.testing.responders import SchemaResponder

    with OpenAICompatibleServer(SchemaResponder()) as server:
        server.fail_every(1, Fault.status(code, message=f"upstream rejected Authorization: Bearer {key} (key={key})"))
        chat = ChatOpenAI(base_url=server.base_url, api_key=key, model="gpt-4o", max_retries=0)
        mllm = ChatModelMLLM(chat, retry=RetryPolicy(max_attempts=2, initial_wait=0.0))
        with pytest.raises(MLLMError) as info:
            mllm.structured([MLLMMessage(text="describe")], GlobalDescription)
    err = info.value
    printed = "".join(traceback.format_exception(err))
    assert key not in printed and key not in repr(err)
    assert err.__cause__ is None and err.__context__ is None
    assert str(code) in str(err) and "***" in str(err)  # the redacted description and status stay


@pytest.mark.parametrize("key", KEY_SHAPES, ids=["sk", "gsk", "token"])
@pytest.mark.parametrize("code", [500, 404])
def test_tracebacks_of_image_errors_do_not_show_an_echoed_key(key, code):
    import traceback

    from imagerepainter.backends import GenerationRequest, OpenAIImagesT2I
    from imagerepainter.backends.retry import RetryPolicy
    from imagerepainter.errors import GenerationError
    from imagerepainter.testing.openai_server import OpenAICompatibleServer

    with OpenAICompatibleServer() as server:
        server.fail_every(1, Fault.status(code, message=f"images upstream failed for {key}", path="/images/"))
        t2i = OpenAIImagesT2I(  # a short retry budget: the 500s are retried, then reported
            "gpt-image-1", base_url=server.base_url, api_key=key, retry=RetryPolicy(max_attempts=2, initial_wait=0.01)
        )
        with pytest.raises(GenerationError) as info:
            t2i.generate([GenerationRequest(prompt="a cat", seed=1, width=8, height=8)])
    printed = "".join(traceback.format_exception(info.value))
    assert key not in printed and f"HTTP {code}" in str(info.value)


@pytest.mark.parametrize("base_url", ["http://bob:hunter2pw@127.0.0.1:9/v1", "http://127.0.0.1:9/v1%3Fkey%3Dhunter2pw"])
def test_credentials_in_a_spec_never_reach_an_option_error(base_url):
    import traceback

    from imagerepainter.backends.registry import resolve_mllm
    from imagerepainter.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_retries") as info:
        resolve_mllm(f"openai:gpt-4o-mini?base_url={base_url}&max_retries=-1")  # another option is invalid
    assert "hunter2pw" not in "".join(traceback.format_exception(info.value))


# ----------------------------------------------------------------------------- one secrets module

TOKEN = "Zq7RkP2mXw9vLs4TgB8nYc3H"  # a token that is not shaped like sk-...


@pytest.mark.parametrize(
    "spec",
    [
        f"openai:gpt-4o?timeout={TOKEN}&base_url=http://127.0.0.1:9/v1",  # a key pasted into the wrong option
        f"openai:gpt-4o?max_tokens={TOKEN}&base_url=http://127.0.0.1:9/v1",  # refused by ChatOpenAI's validation
        f"openai:gpt-4o?base_url=http://127.0.0.1:9/v1/{TOKEN}&max_retries=-1",
    ],
)
def test_a_secret_in_an_option_value_is_never_echoed_in_its_error(spec):
    import traceback

    with pytest.raises(ConfigurationError) as info:
        resolve_mllm(spec)
    assert TOKEN not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize(
    "base_url",
    [
        f"http://127.0.0.1:8765/v1/{TOKEN}",  # a key in the path, not shaped like sk-...
        f"http://127.0.0.1:8765/{TOKEN}/v1",
        f"http://127.0.0.1:8765/v1?session={TOKEN}",  # a key-like query value under an innocent name
        "http://127.0.0.1:8765/v1%3Fkey%3Dhunter2pw",  # an encoded query in the path
    ],
)
def test_a_token_in_a_base_url_is_never_saved(tmp_path, base_url):
    specs = BackendSpecs(mllm=f"openai:sandbox?base_url={base_url}", t2i="sandbox", scorer="sandbox")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY") as info:
        RunFolder(tmp_path / "run").run(specs, render_scene(random_scene(1)), overrides={"max_rounds": 1})
    assert TOKEN not in str(info.value) and "hunter2pw" not in str(info.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8765/v1",
        "https://my-resource.openai.azure.com/openai/deployments/gpt-4o-mini-2024-07-18",
        "http://127.0.0.1:8000/models/Meta-Llama-3.1-8B-Instruct/v1?api-version=2024-06-01",
    ],
)
def test_ordinary_base_urls_are_not_taken_for_credentials(base_url):
    from imagerepainter._secrets import redact, url_credentials

    assert url_credentials(base_url) is None
    assert redact(f"cannot reach {base_url}") == f"cannot reach {base_url}"


def test_urls_in_messages_lose_their_credentials():
    from imagerepainter._secrets import redact

    text = redact(f"GET http://bob:pw4242@host:8000/v1/{TOKEN}/chat?api_key=abc&session={TOKEN}&n=2 failed")
    assert TOKEN not in text and "pw4242" not in text and "abc" not in text
    assert text == "GET http://***@host:8000/v1/***/chat?api_key=***&session=***&n=2 failed"
