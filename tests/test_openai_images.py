"""OpenAIImagesT2I end to end against the OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import sys
import traceback

import openai
import pytest
from PIL import Image

from imagerepainter.backends.base import GenerationRequest, TextToImage
from imagerepainter.backends.openai_images import OpenAIImagesT2I
from imagerepainter.backends.retry import DEFAULT_REQUEST_TIMEOUT, RetryPolicy
from imagerepainter.errors import ConfigurationError, GenerationError, MissingDependencyError
from imagerepainter.testing.openai_server import Fault, ImageRequest, OpenAICompatibleServer

KEY = "sk-secret-key-0123456789"


def colour(prompt: str, index: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{prompt}/{index}".encode()).digest()
    return digest[0], digest[1], digest[2]


def image_responder(request: ImageRequest) -> list[Image.Image] | Fault:
    """Solid colours that encode (prompt, index); prompts with 'forbidden' are refused."""
    if "forbidden" in request.prompt:
        return Fault.status(
            400,
            error_code="moderation_blocked",
            error_type="image_generation_user_error",
            message="Your request was rejected by the safety system.",
        )
    return [
        Image.new("RGBA", (request.width, request.height), (*colour(request.prompt, i), 255)) for i in range(request.n)
    ]


@pytest.fixture
def srv():
    with OpenAICompatibleServer(image_responder=image_responder) as server:
        yield server


def backend(srv: OpenAICompatibleServer, model: str = "gpt-image-1", **kwargs) -> OpenAIImagesT2I:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 5)
    return OpenAIImagesT2I(model, base_url=srv.base_url, api_key=KEY, **kwargs)


def req(prompt: str, seed: int = 0, **kwargs) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, seed=seed, **kwargs)


def test_protocol_name_and_capabilities(srv):
    t2i = backend(srv)
    assert isinstance(t2i, TextToImage)
    assert t2i.name == "openai-images:gpt-image-1"
    assert t2i.capabilities.max_batch_size == 10
    assert not t2i.capabilities.supports_seed
    assert not t2i.capabilities.supports_negative_prompt
    assert backend(srv, "dall-e-3").capabilities.max_batch_size == 1


def test_request_body_and_decoding(srv):
    [out] = backend(srv, quality="low").generate([req("a red cat", seed=7, width=32, height=16)])

    assert not out.blocked
    assert out.image.mode == "RGB"
    assert out.image.size == (32, 16)
    assert out.image.getpixel((0, 0)) == colour("a red cat", 0)
    [recorded] = srv.requests
    assert recorded.path == "/v1/images/generations"
    assert recorded.body == {"model": "gpt-image-1", "prompt": "a red cat", "n": 1, "size": "32x16", "quality": "low"}
    assert recorded.headers["authorization"] == "Bearer ***"  # the key was sent


def test_same_prompt_batches_use_n_and_keep_order(srv):
    requests = [req("cat", 1, width=8, height=8), req("dog", 2, width=8, height=8), req("cat", 3, width=8, height=8)]
    outputs = backend(srv).generate(requests)

    assert [o.image.getpixel((0, 0)) for o in outputs] == [colour("cat", 0), colour("dog", 0), colour("cat", 1)]
    bodies = sorted((r.body["prompt"], r.body["n"]) for r in srv.requests)
    assert bodies == [("cat", 2), ("dog", 1)]


def test_dall_e_3_asks_for_base64_one_image_per_call(srv):
    outputs = backend(srv, "dall-e-3", size="16x16").generate([req("cat", 1), req("cat", 2)])

    assert [o.image.size for o in outputs] == [(16, 16), (16, 16)]
    assert [r.body["n"] for r in srv.requests] == [1, 1]
    assert all(r.body["response_format"] == "b64_json" and r.body["size"] == "16x16" for r in srv.requests)


def test_gpt_image_models_send_no_response_format_and_default_size(srv):
    backend(srv).generate([req("cat")])
    assert "response_format" not in srv.requests[0].body
    assert "size" not in srv.requests[0].body  # the service chooses


def test_blocked_prompt_is_marked_not_raised(srv, caplog):
    with caplog.at_level(logging.WARNING):
        outputs = backend(srv).generate(
            [req("a forbidden thing", width=16, height=8), req("a cat", width=16, height=8), req("a forbidden thing")]
        )

    assert [o.blocked for o in outputs] == [True, False, True]
    assert outputs[0].image.size == (16, 8)
    assert outputs[0].image.getextrema() == ((0, 0), (0, 0), (0, 0))  # black
    assert outputs[2].image.size == (1024, 1024)  # no size asked for
    assert "moderation_blocked" in caplog.text


def test_content_policy_violation_code_is_blocked_too(srv):
    srv.inject(Fault.status(400, error_code="content_policy_violation", message="Rejected by our safety system."))
    [out] = backend(srv, "dall-e-3").generate([req("x", width=8, height=8)])
    assert out.blocked


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.status(500), "HTTP 500"),
        (Fault.status(429, retry_after=0.01), "rate limit"),
        (Fault.status(401, message=f"Incorrect API key provided: {KEY}."), "Check the API key"),
        (Fault.status(400, message="Invalid size."), "Invalid size"),
        (Fault.malformed(), "unreadable"),
        (Fault.disconnect(), "could not reach"),
        (Fault.timeout(3), "timed out"),
    ],
)
def test_errors_are_wrapped_without_the_key(srv, fault, expected):
    t2i = backend(srv, timeout=0.3, retry=RetryPolicy(max_attempts=1))
    srv.inject(fault)
    with pytest.raises(GenerationError, match=expected) as info:
        t2i.generate([req("a cat", width=8, height=8)])

    assert info.value.backend == "openai-images:gpt-image-1"
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)
    # The openai error is not chained: its message and body may echo the key, and tracebacks print causes.
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert KEY not in "".join(traceback.format_exception(info.value))


def test_retries_are_the_clients_when_it_retries_and_never_multiplied(srv):
    srv.inject(Fault.status(503), Fault.status(429, retry_after=0.01))
    [out] = backend(srv, max_retries=2).generate([req("a cat", width=8, height=8)])
    assert not out.blocked
    assert len(srv.requests) == 3

    srv.reset()
    srv.fail_every(1, Fault.status(503, retry_after=0.01))
    with pytest.raises(GenerationError, match="HTTP 503"):
        backend(srv, max_retries=2).generate([req("a cat", width=8, height=8)])
    assert len(srv.requests) == 3  # the client's 1 + 2 attempts, not multiplied by the policy's


def test_the_policy_retries_every_transient_fault_with_a_client_built_here(srv):
    fast = RetryPolicy(max_attempts=8, initial_wait=0.001, max_wait=0.01)
    faults = [Fault.status(429, retry_after=0.01), Fault.status(500), Fault.disconnect(), Fault.malformed()]
    srv.inject(*faults, Fault.timeout(2))
    [out] = backend(srv, timeout=0.3, retry=fast).generate([req("a cat", width=8, height=8)])
    assert not out.blocked and out.image.size == (8, 8)
    assert len(srv.requests) == len(faults) + 2  # every fault and the timeout, then the answer


def test_the_default_timeout_is_bounded_and_a_spec_can_change_it(monkeypatch):
    from imagerepainter.backends import resolve_t2i

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert OpenAIImagesT2I("gpt-image-1", api_key=KEY)._client.timeout == DEFAULT_REQUEST_TIMEOUT
    t2i = resolve_t2i("openai:gpt-image-1?timeout=30")
    assert isinstance(t2i, OpenAIImagesT2I)
    assert t2i._client.timeout == 30.0 and t2i._client.max_retries == 0


def test_key_is_not_in_repr(srv):
    t2i = backend(srv)
    assert KEY not in repr(t2i)
    assert "gpt-image-1" in repr(t2i)
    assert srv.base_url in repr(t2i)


def test_a_given_client_is_used(srv):
    client = openai.OpenAI(base_url=srv.base_url, api_key=KEY, max_retries=0)
    [out] = OpenAIImagesT2I("my-local-model", client=client).generate([req("cat", width=8, height=8)])
    assert out.image.size == (8, 8)
    assert srv.requests[0].body["model"] == "my-local-model"
    assert srv.requests[0].body["response_format"] == "b64_json"  # not a GPT image model


def test_url_only_answer_is_an_error(srv):
    class UrlOnly:
        def __init__(self):
            self.images = self

        def generate(self, **params):
            return openai.types.ImagesResponse(created=0, data=[{"url": "https://example.com/x.png"}])

    with pytest.raises(GenerationError, match="only a URL"):
        OpenAIImagesT2I("dall-e-2", client=UrlOnly()).generate([req("cat")])


def test_argument_errors(srv, monkeypatch):
    with pytest.raises(ConfigurationError, match="size"):
        backend(srv, size="big")
    with pytest.raises(ConfigurationError, match="both width and height"):
        backend(srv).generate([req("cat", width=8)])
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIImagesT2I("gpt-image-1", base_url=srv.base_url)
    assert backend(srv).generate([]) == []
    assert srv.requests == []


def test_missing_openai_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"imagerepainter\[openai\]"):
        OpenAIImagesT2I("gpt-image-1", api_key=KEY)


# ----------------------------------------------------------------------------- settings checked before paid calls


def _settings(**kwargs):
    from imagerepainter.config import GenerationConfig

    return GenerationConfig(**kwargs)


def test_official_api_sizes_are_checked_before_any_call(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    t2i = OpenAIImagesT2I("gpt-image-1", api_key=KEY)  # api.openai.com; nothing is sent
    with pytest.raises(ConfigurationError, match=r"cannot render 64x64.*1024x1536, 1536x1024") as info:
        t2i.check_settings(_settings(width=64, height=64))
    assert KEY not in str(info.value)
    t2i.check_settings(_settings(width=1024, height=1536))
    t2i.check_settings(_settings())  # the service chooses
    with pytest.raises(ConfigurationError, match="1792x1024"):
        OpenAIImagesT2I("dall-e-3", api_key=KEY).check_settings(_settings(width=1024, height=1536))
    OpenAIImagesT2I("some-future-model", api_key=KEY).check_settings(_settings(width=64, height=64))  # unknown


def test_a_default_size_is_checked_too(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="cannot render 512x512"):
        OpenAIImagesT2I("gpt-image-1", api_key=KEY, size="512x512").check_settings(_settings())


def test_compatible_servers_choose_their_own_sizes(srv):
    backend(srv).check_settings(_settings(width=64, height=32))
    assert srv.requests == []  # checking costs no request


def test_height_without_width_is_refused_before_any_call(srv):
    with pytest.raises(ConfigurationError, match="both width and height"):
        backend(srv).check_settings(_settings(height=64))
    assert srv.requests == []


def test_a_failure_says_how_many_attempts_were_made_over_how_long(srv):
    from imagerepainter.bench.breaker import is_permanent, outlasted_retries

    srv.fail_every(1, Fault.status(500))
    fast = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.01)
    with pytest.raises(GenerationError, match=r"HTTP 500.*\(3 attempts over \d+\.\d s\)") as info:
        backend(srv, retry=fast).generate([req("a cat", width=8, height=8)])
    assert not is_permanent(info.value) and len(srv.requests) == 3
    assert outlasted_retries(info.value)  # a model with no case succeeded yet is stopped at this case

    srv.reset()
    srv.inject(Fault.status(401, message="Incorrect API key provided."))
    with pytest.raises(GenerationError, match=r"\(1 attempt over") as info:
        backend(srv, retry=fast).generate([req("a cat", width=8, height=8)])
    assert is_permanent(info.value) and not outlasted_retries(info.value)  # the breaker stops the model at once
