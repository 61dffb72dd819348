"""Errors that say which call failed, and the smaller reliability fixes (issue 9, items 7 and 8).

MLLM failures go through the real ``ChatOpenAI`` client against the loopback OpenAI-compatible
server, so the replies are parsed exactly as a real server's would be.
"""

from __future__ import annotations

import copy
import json
import pickle
import sqlite3
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_openai import ChatOpenAI
from PIL import Image

from imagerepainter import Repainter
from imagerepainter._sqlite import check_database
from imagerepainter.backends import ChatModelMLLM, MLLMMessage, RetryPolicy
from imagerepainter.cli.main import main
from imagerepainter.config import GenerationConfig, RepainterConfig
from imagerepainter.errors import ConfigurationError, GenerationError, MLLMError, StructuredOutputError
from imagerepainter.images import DirectoryImageStore, MemoryImageStore
from imagerepainter.loop.schemas import Critique
from imagerepainter.sandbox import SandboxT2I, random_scene, render_scene
from imagerepainter.testing.openai_server import ChatReply, ChatRequest, Fault, OpenAICompatibleServer
from imagerepainter.testing.responders import SchemaResponder

KEY = "sk-test-reliability-0123456789abcdef"
FAST = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.05)
REFUSAL = "I cannot describe this image."


def _answering_except(prefix: str, reply: Any) -> Any:
    """Answer every schema like SchemaResponder, but ``reply`` to schemas whose name starts with ``prefix``."""
    answers = SchemaResponder()

    def respond(request: ChatRequest) -> Any:
        return reply if (request.schema_name or "").startswith(prefix) else answers(request)

    return respond


def _repainter(server: OpenAICompatibleServer, **kwargs: Any) -> Repainter:
    chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="gpt-4o-mini", max_retries=0, timeout=5)
    return Repainter(mllm=ChatModelMLLM(chat, retry=FAST), t2i="sandbox", scorer="sandbox", **kwargs)


@pytest.fixture
def reference() -> Image.Image:
    return render_scene(random_scene(4))


# ----------------------------------------------------------------------------- which call failed


def test_a_refusal_is_reported_with_its_text_and_the_call_that_got_it(reference):
    with OpenAICompatibleServer(_answering_except("Critique", ChatReply(refusal=REFUSAL))) as server:
        with pytest.raises(MLLMError) as caught:
            _repainter(server).run(reference, max_rounds=2)
        critiques = [r for r in server.chat_requests if (r.schema_name or "").startswith("Critique")]
    error = caught.value
    assert (error.node, error.round) == ("critique", 1)
    assert error.call == critiques[0].schema_name  # the schema asked, e.g. CritiqueAndRevision
    message = str(error)
    assert message.startswith(f"The critique after round 1 ({error.call}) failed: ")
    assert REFUSAL in message and "empty" not in message
    assert len(critiques) == 1  # a refusal is not asked again, nor another way: it would only be paid again
    assert error.partial_result is not None and len(error.partial_result.rounds) == 1  # round 1 is kept


def test_empty_choices_are_a_typed_error_that_names_the_describe_call(reference):
    responder = _answering_except("GlobalFeatures", ChatReply(no_choices=True))
    with OpenAICompatibleServer(responder) as server, pytest.raises(MLLMError) as caught:
        _repainter(server).run(reference, max_rounds=1)
    error = caught.value
    assert (error.node, error.round, error.call) == ("describe", 0, "GlobalFeatures")
    assert str(error).startswith("The describe step (GlobalFeatures) failed: ")
    assert "no choices" in str(error) and "IndexError" not in str(error)


def test_a_plain_http_400_on_the_first_call_is_reported_as_the_servers_400(reference):
    fault = Fault.status(400, message=f"Invalid image data (key {KEY} was used).")
    with OpenAICompatibleServer(lambda request: fault) as server, pytest.raises(MLLMError) as caught:
        _repainter(server).run(reference, max_rounds=1)
    message = str(caught.value)
    assert "HTTP 400" in message and "Invalid image data" in message
    assert "supports none of the structured-output methods" not in message
    assert KEY not in message  # the server's message is redacted
    assert caught.value.node == "describe"


@pytest.mark.parametrize(
    ("reply", "said", "kind"),
    [
        (Fault.status(400, message="Bad request."), "HTTP 400", MLLMError),
        (Fault.status(401, message="Invalid API key."), "refused the credentials (HTTP 401)", MLLMError),
        (Fault.status(404, message="No such model."), "404 (no such model or endpoint)", MLLMError),
        (
            ChatReply(text=json.dumps({"verdict": "close enough"})),
            "did not return a valid Critique",
            StructuredOutputError,
        ),
        (
            ChatReply(text='{"style": "flat", "composition": "cent'),
            "did not return a valid Critique",
            StructuredOutputError,
        ),
        (ChatReply(no_choices=True), "no choices", MLLMError),
        (ChatReply(refusal=REFUSAL), REFUSAL, MLLMError),
    ],
    ids=["400", "401", "404", "schema-violating", "truncated-json", "empty-choices", "refusal"],
)
def test_each_permanent_failure_is_a_typed_one_line_error_that_names_the_call(reference, reply, said, kind):
    """Every permanent failure of the critique after round 1: the error's type, the call, the cause,
    one line; and what the failed call cost is counted (its requests, as the server saw them)."""
    with OpenAICompatibleServer(_answering_except("Critique", reply)) as server:
        rp = _repainter(server)
        with pytest.raises(MLLMError) as caught:
            rp.run(reference, max_rounds=2, thread_id="t")
        asked = [r for r in server.chat_requests if (r.schema_name or "").startswith("Critique")]
    error = caught.value
    assert type(error) is kind
    assert (error.node, error.round) == ("critique", 1) and error.call == asked[0].schema_name
    message = str(error)
    assert message.startswith(f"The critique after round 1 ({error.call}) failed: ") and said in message
    assert "\n" not in message and KEY not in message
    assert error.requests == len(asked) >= 1
    assert error.partial_result is not None and len(error.partial_result.rounds) == 1  # round 1 is kept


def test_a_400_to_a_structured_output_method_alone_still_falls_back(reference):
    """The 400 rule does not break servers that only lack ``json_schema``: they still work."""
    with OpenAICompatibleServer(SchemaResponder(), structured_output="tools") as server:
        result = _repainter(server).run(reference, max_rounds=1)
    assert result.finished


def test_a_failing_renderer_names_the_generate_step_and_round(reference):
    def render(prompt: str, *, seed: int, **_: Any) -> Image.Image:
        raise RuntimeError("the GPU fell over")

    rp = Repainter(mllm="sandbox", t2i=render, scorer="sandbox")
    with pytest.raises(GenerationError) as caught:
        rp.run(reference, max_rounds=2)
    error = caught.value
    assert (error.node, error.round, error.call) == ("generate", 1, "generate")
    assert str(error).startswith("The generate step of round 1 (generate) failed: ")
    assert "GPU fell over" in str(error)
    assert isinstance(error.__cause__, RuntimeError)  # the renderer's own error stays the cause


def test_the_cli_prints_the_node_and_round_in_its_one_line_error(tmp_path, monkeypatch, capsys, reference):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    reference.save(tmp_path / "ref.png")
    with OpenAICompatibleServer(_answering_except("Critique", ChatReply(refusal=REFUSAL))) as server:
        code = main(
            [
                "run",
                str(tmp_path / "ref.png"),
                *("--mllm", "openai:gpt-4o-mini", "--base-url", server.base_url),
                *("--t2i", "sandbox", "--scorer", "sandbox", "--max-rounds", "2", "--quiet"),
                *("--out", str(tmp_path / "out")),
            ]
        )
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    first = err.strip().splitlines()[0]
    assert first.startswith("error: The critique after round 1 (Critique") and REFUSAL in first


# ----------------------------------------------------------------------------- smaller ones


def _int_fields(model: type) -> list[str]:
    hints = typing.get_type_hints(model)
    return [name for name in model.model_fields if int in (hints[name], *typing.get_args(hints[name]))]


@pytest.mark.parametrize("field", _int_fields(RepainterConfig))
def test_integer_settings_refuse_bools(field):
    with pytest.raises(ConfigurationError, match=rf"{field}: .*not a bool"):
        RepainterConfig().with_overrides(**{field: True})


@pytest.mark.parametrize("field", _int_fields(GenerationConfig))
def test_integer_generation_settings_refuse_bools(field):
    with pytest.raises(ConfigurationError, match=rf"generation.{field}: .*not a bool"):
        RepainterConfig().with_overrides(generation={field: False})


def test_max_rounds_true_is_refused_before_any_call_and_whole_numbers_still_work(reference):
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    with pytest.raises(ConfigurationError, match="max_rounds"):
        rp.run(reference, max_rounds=True)
    assert RepainterConfig().with_overrides(max_rounds=np.int64(2)).max_rounds == 2
    assert len(rp.run(reference, max_rounds=2, patience=None).rounds) == 2


def _pixels(image: Image.Image) -> bytes:
    return image.tobytes()


def test_a_result_deep_copies_and_pickles_with_a_memory_store(reference):
    store = MemoryImageStore()  # a store the caller passes and keeps: it holds every run's images
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", store=store)
    result = rp.run(reference, max_rounds=2)
    assert result.best is not None

    copied = copy.deepcopy(result)
    assert copied.model_dump() == result.model_dump()
    assert _pixels(copied.best.image) == _pixels(result.best.image)  # the copy reads the same store

    restored = pickle.loads(pickle.dumps(result))
    assert restored.model_dump() == result.model_dump()
    with pytest.raises(LookupError, match="bind"):  # a memory store is this process's: not pickled
        _ = restored.best.image
    assert _pixels(restored.bind(store).best.image) == _pixels(result.best.image)


def test_a_result_of_the_default_store_pickles_with_its_own_images(reference):
    """The default store hands a finished run's images to its result: a pickle carries them, and only them."""
    result = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox").run(reference, max_rounds=2)
    restored = pickle.loads(pickle.dumps(result))
    assert restored.model_dump() == result.model_dump()
    assert restored.best is not None and result.best is not None
    assert _pixels(restored.best.image) == _pixels(result.best.image)
    assert _pixels(restored.reference_image) == _pixels(result.reference_image)
    assert all(
        _pixels(a.image) == _pixels(b.image) for a, b in zip(restored.candidates, result.candidates, strict=True)
    )


def test_a_result_with_a_directory_store_pickles_with_its_images(tmp_path, reference):
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", store=DirectoryImageStore(tmp_path / "images"))
    result = rp.run(reference, max_rounds=1)
    restored = pickle.loads(pickle.dumps(result))
    assert restored.model_dump() == result.model_dump()
    assert _pixels(restored.best.image) == _pixels(result.best.image)
    assert _pixels(restored.rounds[0].candidates[-1].image) == _pixels(result.rounds[0].candidates[-1].image)


def test_the_sandbox_renders_any_size_from_8_pixels_and_refuses_smaller(reference):
    t2i = SandboxT2I()
    t2i.check_settings(GenerationConfig(height=63, width=101))
    result = Repainter(mllm="sandbox", t2i=t2i, scorer="sandbox", height=63, width=101).run(reference, max_rounds=1)
    assert result.best is not None and result.best.image.size == (101, 63)
    with pytest.raises(ConfigurationError, match="height=7"):
        t2i.check_settings(GenerationConfig.model_construct(height=7))


def test_a_damaged_sqlite_file_is_a_configuration_error(tmp_path):
    good = tmp_path / "good.sqlite"
    sqlite3.connect(good).execute("CREATE TABLE t (x)").connection.close()
    check_database(good, "the run's checkpoints")
    check_database(tmp_path / "missing.sqlite", "the run's checkpoints")
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ConfigurationError) as caught:
        check_database(bad, "the run's checkpoints")
    message = str(caught.value)
    assert "\n" not in message and str(bad) in message and "the run's checkpoints" in message
    assert bad.read_bytes() == bytes(range(256)) * 8  # nothing written


def test_resume_of_a_folder_with_a_damaged_checkpoint_is_a_one_line_error(tmp_path, capsys, reference):
    reference.save(tmp_path / "ref.png")
    folder = tmp_path / "run"
    argv = ["run", str(tmp_path / "ref.png"), "--mllm", "sandbox", "--t2i", "sandbox", "--max-rounds", "1"]
    assert main([*argv, "--quiet", "--out", str(folder)]) == 0
    record = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps(record | {"status": "interrupted"}))
    Path(folder / "checkpoint.sqlite").write_bytes(b"\x00garbage" * 200)
    capsys.readouterr()
    assert main(["resume", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "checkpoint" in lines[0], err


def test_a_backend_error_with_its_partial_result_pickles(reference):
    """multiprocessing sends a worker's error back pickled: where it failed and what was paid for survive."""
    responder = _answering_except("Critique", ChatReply(refusal=REFUSAL))
    with OpenAICompatibleServer(responder) as server, pytest.raises(MLLMError) as caught:
        _repainter(server).run(reference, max_rounds=2)
    error = caught.value
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is MLLMError and str(restored) == str(error)
    assert (restored.node, restored.round, restored.call, restored.thread_id) == (
        error.node,
        error.round,
        error.call,
        error.thread_id,
    )
    assert error.partial_result is not None and restored.partial_result is not None
    assert restored.partial_result.model_dump() == error.partial_result.model_dump()


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (ChatReply(refusal=REFUSAL), REFUSAL),
        (ChatReply(text="", finish_reason="content_filter"), "content filter"),
    ],
)
@pytest.mark.parametrize("methods", [None, ["function_calling"], ["json_text"]])
def test_a_refusal_is_one_request_and_says_so_whatever_the_method(reply, said, methods):
    with OpenAICompatibleServer(lambda request: reply) as server:
        chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="m", max_retries=0, timeout=5)
        mllm = ChatModelMLLM(chat, retry=FAST, **({"methods": methods} if methods else {}))
        with pytest.raises(MLLMError, match="refused to answer") as caught:
            mllm.structured([MLLMMessage(text="Compare.")], Critique)
        assert len(server.chat_requests) == 1
    assert said in str(caught.value) and "empty" not in str(caught.value)
