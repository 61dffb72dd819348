"""Stopping a run from another thread: the step in progress ends and is kept, no later step starts."""

from __future__ import annotations

import threading

import pytest

from imagerepainter import Repainter
from imagerepainter.errors import IncompleteRunError
from imagerepainter.sandbox import random_scene, render_scene


def _sandbox() -> Repainter:
    return Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)


def _comparable(result) -> list[tuple]:
    return [(c.prompt, c.seed, c.score) for c in result.candidates]


@pytest.mark.parametrize("when", ["call", "generated", "critique"])
def test_a_stop_mid_step_finishes_that_step_and_resume_does_not_repeat_it(when):
    reference = render_scene(random_scene(5), 64, 64)
    whole = _sandbox().run(reference)
    rp = _sandbox()
    stop = threading.Event()
    after: list[tuple[str, str | None]] = []
    with pytest.raises(IncompleteRunError, match=r"stopped before its \w+ step; Repainter.resume\('t'\)"):
        for event in rp.stream(reference, thread_id="t", stop=stop):
            if stop.is_set():
                after.append((event.kind, event.data.get("node")))
            elif event.kind == when:
                stop.set()  # as another thread would; the node that sent this event is still running
    assert after and after[-1][0] == "node"  # the node in progress finished and reported it ...
    assert [kind for kind, _ in after].count("node") == 1  # ... and no node started after it
    assert rp.status("t") == "interrupted"
    resumed = rp.resume("t")
    assert _comparable(resumed) == _comparable(whole)
    assert resumed.usage["mllm_calls"] == whole.usage["mllm_calls"]  # nothing asked twice


def test_a_stop_never_set_changes_nothing():
    reference = render_scene(random_scene(6), 64, 64)
    result = _sandbox().run(reference)
    events = list(_sandbox().stream(reference, stop=threading.Event()))
    assert events[-1].result is not None and _comparable(events[-1].result) == _comparable(result)
