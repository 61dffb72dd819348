"""Event kinds are a closed set, and every event a run emits has the data its kind's type says."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from imagerepainter import Repainter
from imagerepainter.events import EVENT_KINDS, check_event_data
from imagerepainter.repainter import RepaintEvent
from imagerepainter.runs.folder import BackendSpecs, RunFolder
from imagerepainter.sandbox import random_scene, render_scene


def _checked(events: list[RepaintEvent]) -> set[str]:
    for event in events:
        assert event.kind in EVENT_KINDS
        assert check_event_data(event.kind, event.data) == event.data  # nothing missing, extra or mistyped
    return {event.kind for event in events}


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_every_event_of_a_run_has_its_kinds_data(preset: str) -> None:
    rp = Repainter(mllm="sandbox", t2i="sandbox?fidelity=0.6", scorer="sandbox", preset=preset)
    events = list(rp.stream(render_scene(random_scene(3), seed=1), max_rounds=2))
    assert _checked(events) == {"node", "call", "described", "generated", "round", "critique", "finished", "result"}
    round_event = next(e for e in events if e.kind == "round")
    assert round_event.data["best_score"] == round_event.data["scores"][round_event.data["round_best"]]


def test_a_review_pause_and_a_resumed_folder_emit_typed_data(tmp_path: Path) -> None:
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    events = list(rp.stream(render_scene(random_scene(2)), max_rounds=1, review=["prompt"]))
    assert events[-1].kind == "review" and _checked(events) >= {"review"}
    folder = RunFolder(tmp_path / "run")
    folder.run(
        BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox"),
        render_scene(random_scene(2)),
        overrides={"max_rounds": 1},
    )
    resumed: list[RepaintEvent] = []
    folder.resume(on_event=resumed.append)
    assert _checked(resumed) >= {"resumed"} and resumed[0].data["finished"] is True


def test_data_that_does_not_match_its_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="best_score"):
        check_event_data("round", {"round": 1, "scores": [0.5], "round_best": 0, "stop_reason": None})
    with pytest.raises(ValidationError, match="extra"):
        check_event_data("node", {"node": "score", "round": 1, "seconds": 0.1, "secnds": 2})
    with pytest.raises(ValueError, match="Unknown event kind 'progress'"):
        check_event_data("progress", {})


def test_another_graphs_custom_event_is_not_taken_for_ours() -> None:
    assert Repainter.event_from({"event": "progress", "percent": 40}) is None
    event = Repainter.event_from({"event": "finished", "stop_reason": "plateau"})
    assert event is not None and (event.kind, event.data) == ("finished", {"stop_reason": "plateau"})


def test_an_mllm_task_kind_is_one_of_a_closed_set() -> None:
    from imagerepainter.backends.base import TASK_KINDS, MLLMMessage
    from imagerepainter.errors import ConfigurationError

    assert MLLMMessage(text="t", task={"kind": "critique"}).task == {"kind": "critique"}
    assert len(TASK_KINDS) == 10 and MLLMMessage(text="t").task is None
    with pytest.raises(ConfigurationError, match="Unknown MLLM task kind 'critic'"):
        MLLMMessage(text="t", task={"kind": "critic"})
