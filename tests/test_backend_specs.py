"""Spec options are checked when a spec is resolved: typos, bad values and unusable devices fail at once."""

from __future__ import annotations

import pytest

from imagerepainter import Repainter
from imagerepainter.backends import resolve_mllm, resolve_scorer, resolve_t2i
from imagerepainter.errors import ConfigurationError, UnknownBackendError

LOCAL = "base_url=http://127.0.0.1:9/v1"  # nothing listens there: resolving a spec sends nothing


UNKNOWN_OPTIONS = [  # the message names the option, the accepted ones and the closest
    (
        resolve_mllm,
        "sandbox?x=1",
        r"Unknown option 'x' in the 'sandbox' MLLM spec\. Accepted options: acuity, max_edits\.",
    ),
    (resolve_t2i, "sandbox?default_sise=64", r"Did you mean 'default_size'\? Accepted options: default_size, "),
    (resolve_t2i, "diffusers:/no/such/folder?foo=1", r"Unknown option 'foo' .*Accepted options: batch_size, "),
    (resolve_t2i, "openai:gpt-image-1?sise=1024x1024", r"Did you mean 'size'\?"),
    (resolve_scorer, "ssim?foo=1", r"Unknown option 'foo' in the 'ssim' scorer spec\. Accepted options: "),
    (resolve_scorer, "ssim?kernel=7", r"Did you mean 'kernel_size'\?"),
    (resolve_scorer, "clip:/no/such/folder?bogus=1", r"Unknown option 'bogus' in the 'clip' scorer spec"),
    (resolve_scorer, "sandbox?x=1", r"takes no options"),
    (resolve_mllm, f"openai:gpt-4o?temprature=0&{LOCAL}", r"Did you mean 'temperature'\? Accepted options: "),
]
BAD_VALUES = [  # the message names the option, the type it wants and the value
    (resolve_mllm, f"openai:gpt-4o?temperature=abc&{LOCAL}", r"option 'temperature': .*number.*'abc'"),
    (resolve_mllm, f"openai:gpt-4o?timeout=soon&{LOCAL}", r"Option 'timeout' must be a number, got 'soon'"),
    (resolve_t2i, "sandbox?default_size=big", r"Option 'default_size' must be a whole number, got 'big'"),
    (resolve_t2i, "diffusers:/no/such/folder?batch_size=two", r"Option 'batch_size' must be a whole number"),
    (resolve_scorer, "psnr?max_db=abc", r"Option 'max_db' must be a number, got 'abc'"),
    (resolve_scorer, "clip?local_files_only=maybe", r"Option 'local_files_only' must be true or false"),
    (resolve_mllm, f"openai:gpt-4o?model=gpt-4o-mini&{LOCAL}", r"The model goes before '\?'"),
]


@pytest.mark.parametrize(("resolve", "spec", "expected"), UNKNOWN_OPTIONS + BAD_VALUES)
def test_an_unknown_option_or_a_value_that_cannot_be_converted_is_a_configuration_error(resolve, spec, expected):
    with pytest.raises(ConfigurationError, match=expected):
        resolve(spec)


def test_values_are_converted_to_the_declared_types():
    assert resolve_t2i("sandbox?default_size=64&noise=0.5").default_size == 64
    assert resolve_mllm("sandbox?max_edits=2").max_edits == 2
    chat = resolve_mllm(f"openai:gpt-4o?temperature=0.25&timeout=7&max_tokens=100&{LOCAL}").model
    assert (chat.temperature, chat.request_timeout, chat.max_tokens, chat.max_retries) == (0.25, 7.0, 100, 0)


def test_a_typo_fails_when_the_repainter_is_built_not_in_run():
    with pytest.raises(ConfigurationError, match="temperature"):
        Repainter(mllm=f"openai:gpt-4o?temprature=0&{LOCAL}", t2i="sandbox", scorer="sandbox")
    with pytest.raises(ConfigurationError, match="Accepted options"):
        Repainter(mllm="sandbox", t2i="sandbox", scorer="ssim?foo=1")


@pytest.mark.parametrize(
    ("resolve", "spec"),
    [
        (resolve_t2i, "diffusers:/no/such/folder?device=cuda"),
        (resolve_scorer, "clip:/no/such/folder?device=cuda"),
        (resolve_scorer, "dinov2?device=cuda:1"),
        (resolve_scorer, "paper?device=cuda"),
    ],
)
def test_cuda_on_a_machine_without_cuda_is_refused_when_resolved(resolve, spec, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigurationError, match=r"asks for CUDA, but torch .* sees no CUDA GPU"):
        resolve(spec)


def test_any_langchain_provider_is_an_mllm_spec_and_a_missing_package_is_named(monkeypatch):
    from imagerepainter.backends import ChatModelMLLM
    from imagerepainter.errors import MissingDependencyError

    pytest.importorskip("langchain.chat_models")
    with pytest.raises(MissingDependencyError, match="pip install langchain-anthropic"):
        resolve_mllm("anthropic:claude-sonnet-4-5")  # not installed here
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "sk-test-azure")
    mllm = resolve_mllm("azure_openai:gpt-4o?azure_endpoint=http://127.0.0.1:9&api_version=2024-02-01")
    assert isinstance(mllm, ChatModelMLLM) and type(mllm.model).__name__ == "AzureChatOpenAI"
    with pytest.raises(UnknownBackendError, match="Did you mean 'openai'"):
        resolve_mllm("opneai:gpt-4o")  # neither ours nor LangChain's: the suggestion stays
