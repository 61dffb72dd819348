"""A parent graph hands the loop's subgraph a reference as ``Repainter.run`` takes it, or a data URL."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from PIL import Image
from typing_extensions import TypedDict

from imagerepainter import Repainter
from imagerepainter.errors import ConfigurationError, InvalidImageError
from imagerepainter.images import encode_png, to_data_url
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.testing import FakeMLLM


class Parent(TypedDict, total=False):
    reference: Any
    overrides: dict[str, Any]
    run_id: str


def _parent(rp: Repainter, *, checkpointed: bool = True) -> Any:
    graph = StateGraph(Parent)
    graph.add_node("repaint", rp.as_graph())
    graph.add_edge(START, "repaint")
    graph.add_edge("repaint", END)
    return graph.compile(checkpointer=InMemorySaver() if checkpointed else None)


def _comparable(result) -> list[tuple]:
    return [(c.prompt, c.seed, c.score, c.image_ref["sha256"]) for c in result.candidates]


@pytest.mark.parametrize("given", ["path", "str path", "bytes", "image", "data URL"])
def test_a_parent_graph_passes_the_reference_as_run_takes_it(tmp_path, given):
    image = render_scene(random_scene(6), 96, 64)  # not square: the run's size follows the reference
    path = tmp_path / "photo.png"
    image.save(path)
    reference = {
        "path": path,
        "str path": str(path),
        "bytes": encode_png(image),
        "image": image,
        "data URL": to_data_url(image),
    }[given]
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
    # LangGraph checkpoints a graph's input: a PIL image (not serializable) only in a parent without a checkpointer
    parent = _parent(rp, checkpointed=given != "image")
    out = parent.invoke({"reference": reference}, {"configurable": {"thread_id": "t"}})
    result = rp.result_from(out)
    alone = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2).run(image)
    assert result.finished and _comparable(result) == _comparable(alone)
    assert out["reference"]["sha256"] == alone.reference["sha256"]
    assert rp.store.get(out["reference"]).size == (96, 64)
    assert result.config.generation.width / result.config.generation.height == pytest.approx(1.5, rel=0.05)


def test_a_parents_overrides_apply_to_a_reference_given_as_a_path(tmp_path):
    path = tmp_path / "photo.png"
    render_scene(random_scene(2), 64, 64).save(path)
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)
    out = _parent(rp).invoke(
        {"reference": str(path), "overrides": {"max_rounds": 1}}, {"configurable": {"thread_id": "t"}}
    )
    assert len(rp.result_from(out).rounds) == 1


@pytest.mark.parametrize(
    ("bad", "error", "says"),
    [
        ("missing.png", InvalidImageError, "does not exist"),
        ("https://example.com/photo.png", InvalidImageError, "data URL"),
        ("data:image/png;base64,@@@", InvalidImageError, "not valid base64"),
        (b"not an image", InvalidImageError, "not an image"),
        (None, ConfigurationError, "needs 'reference'"),
    ],
)
def test_a_bad_reference_is_a_typed_error_before_any_model_call(tmp_path, bad, error, says):
    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i="sandbox", scorer="sandbox", max_rounds=1)
    with pytest.raises(error, match=says):
        _parent(rp).invoke({"reference": bad}, {"configurable": {"thread_id": "t"}})
    assert mllm.calls == []


def test_a_path_is_sized_as_run_sizes_it_and_the_parent_reads_the_notes(tmp_path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (1, 300), "red").save(path)  # thinner than the renderer's limits allow
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1)
    result = rp.result_from(_parent(rp).invoke({"reference": str(path)}, {"configurable": {"thread_id": "t"}}))
    alone = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1).run(path)
    assert result.finished and result.notes == alone.notes and result.notes
    assert result.config.generation == alone.config.generation
