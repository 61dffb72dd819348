"""The served graph (imagerepainter.serve) in process: input a remote client can send, output it can read."""

from __future__ import annotations

import asyncio
import base64
import io
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagerepainter import Repainter
from imagerepainter.errors import ConfigurationError, InvalidImageError, UnknownBackendError
from imagerepainter.image_sources import ImageSourcePolicy, read_source
from imagerepainter.images import to_data_url
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.serve import ServeSettings, build_served_graph, make_graph, served_graph


@pytest.fixture
def sandbox_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLLM", "T2I", "SCORER", "PRESET", "IMAGE_ROOTS", "ALLOW_URLS", "IMAGE_DIR"):
        monkeypatch.delenv(f"IMAGEREPAINTER_{name}", raising=False)


def _reference(seed: int = 5) -> Image.Image:
    return render_scene(random_scene(seed), width=192, height=128)  # 3:2, not the renderer's square default


def _decode(data_url: str) -> Image.Image:
    header, _, data = data_url.partition(",")
    assert header == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_a_data_url_in_gives_the_best_image_as_a_data_url_out():
    from langgraph.checkpoint.memory import InMemorySaver

    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    graph = build_served_graph(rp, ImageSourcePolicy(roots=[], owner="server"))
    graph = graph.copy(update={"checkpointer": InMemorySaver()})  # as a server attaches its own
    thread = {"configurable": {"thread_id": "t1"}}
    out = graph.invoke({"image": to_data_url(_reference()), "overrides": {"max_rounds": 3}}, thread)

    assert out["finished"] and out["stop_reason"] is not None
    assert 1 <= len(out["rounds"]) <= 3
    scores = [s for r in out["rounds"] for s in r["scores"]]
    assert out["best_score"] == max(scores)
    assert out["rounds"][-1]["best_score_so_far"] == out["best_score"]
    best = _decode(out["best_image"])
    # the image is the best candidate's pixels, rendered at the reference's aspect ratio
    assert abs(best.width / best.height - 1.5) < 0.05
    result = rp.result_from(graph.get_state(thread).values)  # the whole run, read back from the state
    assert result.best is not None and result.best.score == out["best_score"]
    assert best.convert("RGB").tobytes() == result.best.image.tobytes()
    assert out["best_prompt"] == result.best.prompt and len(result.rounds) == len(out["rounds"])
    assert set(out) >= {"initial_prompt", "higher_is_better", "usage", "run_id"}


def test_rounds_stream_to_the_client_as_custom_events():
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    graph = build_served_graph(rp, ImageSourcePolicy(roots=[], owner="server"))
    rounds = []
    for chunk in graph.stream(
        {"image": to_data_url(_reference(7)), "overrides": {"max_rounds": 3}}, stream_mode="custom", subgraphs=True
    ):
        event = Repainter.event_from(chunk)
        if event is not None and event.kind == "round":
            rounds.append(event)
    assert [e.round for e in rounds] == list(range(1, len(rounds) + 1)) and rounds
    assert all(isinstance(e.data["best_score"], float) for e in rounds)


def _events_before_error(graph: Any, graph_input: dict[str, Any], error: type[Exception]) -> tuple[list[Any], str]:
    """What the graph streamed before it raised ``error``, and the error's message."""
    seen: list[Any] = []
    with pytest.raises(error) as caught:
        for chunk in graph.stream(graph_input, stream_mode=["custom", "updates"], subgraphs=True):
            seen.append(chunk)
    return seen, str(caught.value)


@pytest.mark.parametrize(
    ("graph_input", "error", "says"),
    [
        ({"image": "/etc/hostname"}, InvalidImageError, "reads no files: send the image as a data URL"),
        ({"image": "https://example.com/cat.png"}, InvalidImageError, "does not download images from URLs"),
        ({"image": "data:image/png;base64,AAAA"}, InvalidImageError, "not an image"),
        ({"image": "data:image/png,plain"}, InvalidImageError, "must be base64-encoded"),
        ({"image": 42}, InvalidImageError, "must be a non-empty string"),
        ({}, ConfigurationError, "The input needs 'image'"),
        ({"image": "OK", "overrides": {"max_rounds": 0}}, ConfigurationError, "max_rounds"),
        ({"image": "OK", "overrides": {"preset": "paper"}}, ConfigurationError, "chosen when the Repainter is built"),
        ({"image": "OK", "overrides": ["max_rounds", 2]}, ConfigurationError, "'overrides' must be an object"),
        ({"image": "OK", "prompt": "   "}, ConfigurationError, "prompt must be a non-empty string"),
    ],
)
def test_bad_input_is_refused_with_a_typed_error_before_any_model_call(graph_input, error, says):
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    graph = build_served_graph(rp, ImageSourcePolicy(roots=[], owner="server"))
    if graph_input.get("image") == "OK":
        graph_input = graph_input | {"image": to_data_url(_reference())}
    seen, message = _events_before_error(graph, graph_input, error)
    assert says in message
    assert seen == []  # nothing ran: not the loop, not a model
    assert "DirectoryImageStore" not in message and "resum" not in message


def test_server_paths_are_read_only_inside_the_allowed_folders(tmp_path):
    allowed = tmp_path / "refs"
    allowed.mkdir()
    _reference().save(allowed / "ref.png")
    _reference().save(tmp_path / "secret.png")
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    graph = build_served_graph(rp, ImageSourcePolicy.of([allowed], owner="server"))

    out = graph.invoke({"image": str(allowed / "ref.png"), "overrides": {"max_rounds": 1}})
    assert out["finished"] and len(out["rounds"]) == 1
    for outside in (tmp_path / "secret.png", allowed / ".." / "secret.png"):
        seen, message = _events_before_error(graph, {"image": str(outside)}, InvalidImageError)
        assert "outside the folders this server may read" in message and seen == []


def test_urls_are_downloaded_only_when_allowed_and_within_the_size_limit(image_server):
    url = f"{image_server}/ref.png"
    assert Image.open(io.BytesIO(read_source(url, ImageSourcePolicy(allow_urls=True)))).size == (256, 256)
    with pytest.raises(InvalidImageError, match="does not download"):
        read_source(url, ImageSourcePolicy())
    with pytest.raises(InvalidImageError, match="larger than 100 bytes"):
        read_source(url, ImageSourcePolicy(allow_urls=True, max_bytes=100))
    with pytest.raises(InvalidImageError, match="Could not download") as caught:
        read_source(f"{image_server}/missing.png?token=s3cr3t", ImageSourcePolicy(allow_urls=True))
    assert "s3cr3t" not in str(caught.value)  # a query string may hold a token
    with pytest.raises(InvalidImageError, match="ftp:// references are not read"):
        read_source("ftp://host/ref.png", ImageSourcePolicy(allow_urls=True))


def test_make_graph_reads_its_backends_and_policy_from_the_environment(sandbox_env, monkeypatch, tmp_path):
    graph = asyncio.run(make_graph({"configurable": {}}))  # as a server calls it
    assert served_graph() is graph  # built once per process and settings
    assert graph.checkpointer is None and graph.store is None  # the server brings its own
    monkeypatch.setenv("IMAGEREPAINTER_IMAGE_ROOTS", str(tmp_path))
    _reference().save(tmp_path / "ref.png")
    out = served_graph().invoke({"image": str(tmp_path / "ref.png"), "overrides": {"max_rounds": 1}})
    assert out["finished"] and out["best_image"].startswith("data:image/png;base64,")

    monkeypatch.setenv("IMAGEREPAINTER_ALLOW_URLS", "perhaps")
    with pytest.raises(ConfigurationError, match="IMAGEREPAINTER_ALLOW_URLS"):
        served_graph()
    monkeypatch.setenv("IMAGEREPAINTER_ALLOW_URLS", "1")
    monkeypatch.setenv("IMAGEREPAINTER_MLLM", "sandbx")
    with pytest.raises(UnknownBackendError, match="sandbox"):
        served_graph()
    key = "sk-proj-" + "x7" * 20
    monkeypatch.setenv("IMAGEREPAINTER_MLLM", f"openai:gpt-4o-mini?api_key={key}")
    with pytest.raises(ConfigurationError) as caught:  # keys belong in OPENAI_API_KEY, never in a spec
        served_graph()
    assert key not in str(caught.value)


def test_settings_default_to_the_sandbox_world_and_follow_the_cli_scorer_rule(tmp_path):
    assert ServeSettings.from_env({}) == ServeSettings()
    settings = ServeSettings.from_env(
        {
            "IMAGEREPAINTER_MLLM": "openai:gpt-4o-mini",
            "IMAGEREPAINTER_IMAGE_ROOTS": f"{tmp_path}/a{os.pathsep}{tmp_path}/b",
            "IMAGEREPAINTER_ALLOW_URLS": "yes",
            "IMAGEREPAINTER_IMAGE_DIR": str(tmp_path / "images"),
        }
    )
    assert (settings.mllm, settings.t2i, settings.scorer) == ("openai:gpt-4o-mini", "sandbox", "paper")
    assert settings.policy().roots == [Path(f"{tmp_path}/a").resolve(), Path(f"{tmp_path}/b").resolve()]
    assert settings.policy().allow_urls and settings.image_dir == str(tmp_path / "images")


def test_a_failed_run_continues_on_its_thread_without_redoing_finished_work():
    from langgraph.checkpoint.memory import InMemorySaver

    from imagerepainter.errors import GenerationError
    from imagerepainter.sandbox import SandboxT2I

    class FailsOnce(SandboxT2I):
        """Fails on its second batch (round 2), once."""

        calls = 0

        def generate(self, requests: Any) -> Any:
            FailsOnce.calls += 1
            if FailsOnce.calls == 2:
                raise RuntimeError("the GPU fell over")
            return super().generate(requests)

    graph_input = {"image": to_data_url(_reference(9)), "overrides": {"max_rounds": 3, "patience": None}}
    policy = ImageSourcePolicy(roots=[], owner="server")
    clean = build_served_graph(Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox"), policy).invoke(graph_input)

    rp = Repainter(mllm="sandbox", t2i=FailsOnce(), scorer="sandbox")
    graph = build_served_graph(rp, policy).copy(update={"checkpointer": InMemorySaver()})
    thread = {"configurable": {"thread_id": "flaky"}}
    with pytest.raises(GenerationError, match="the GPU fell over"):
        graph.invoke(graph_input, thread)
    out = graph.invoke(None, thread)  # what a client does: run the thread again with no input

    assert FailsOnce.calls == 3 + 1  # three rounds rendered once each, plus the failed try
    assert out["usage"] == clean["usage"]  # no model call repeated
    assert out["rounds"] == clean["rounds"] and out["best_image"] == clean["best_image"]
