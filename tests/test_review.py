"""Human review: a run pauses with LangGraph's interrupt() and goes on with a person's answer.

Across two processes (SQLite checkpointer and store, directory image store, models behind the
OpenAI-compatible server on 127.0.0.1), and in one process: approve, edit, stop, bad answers,
the raw graph and a parent graph, and runs without review taking the same steps as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from PIL import Image
from typing_extensions import TypedDict

from imagerepainter import Repainter, RepaintResult
from imagerepainter.errors import MLLMError
from imagerepainter.loop.review import ReviewError
from imagerepainter.progress import event_lines
from imagerepainter.testing import FakeMLLM, FakeT2I, ScriptedScorer
from imagerepainter.testing.openai_server import ImageRequest, OpenAICompatibleServer
from imagerepainter.testing.responders import SchemaResponder
from tests import review_child
from tests.parents import loop_in_a_parent

ROOT = Path(__file__).resolve().parents[1]
REF = Image.new("RGB", (32, 32), "white")
DESCRIBE = {"GlobalDescription", "GlobalFeatures", "ObjectList", "ThingDetails", "PersonDetails", "Relationships"}


def _repainter(mllm=None, t2i=None, **settings) -> Repainter:
    scorer = ScriptedScorer([i / 100 for i in range(1, 100)])
    return Repainter(mllm=mllm or FakeMLLM(), t2i=t2i or FakeT2I(), scorer=scorer, **settings)


def _calls(mllm: FakeMLLM) -> Counter:
    return Counter(c.schema for c in mllm.calls)


# ---------------------------------------------------------------------------- two processes


def _solid(request: ImageRequest) -> list[Image.Image]:
    """A colour per prompt, so the image shows which prompt was rendered."""
    digest = hashlib.sha256(request.prompt.encode()).digest()
    return [Image.new("RGB", (request.width, request.height), tuple(digest[:3])) for _ in range(request.n)]


def test_review_across_two_processes_repeats_nothing_and_renders_the_edited_prompt(tmp_path):
    edited = "a blue square on a red ground, flat colours"
    with OpenAICompatibleServer(SchemaResponder(), image_responder=_solid) as server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        child = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "review_child.py"), server.base_url, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        paused = json.loads(child.stdout.strip().splitlines()[-1])
        # process 1 described the reference and paused before rendering round 1
        assert paused["status"] == "paused" and paused["finished"] is False
        request = paused["review"]
        assert request["kind"] == "prompt" and request["round"] == 1 and request["best"] is None
        assert request["prompts"] == [request["prompt"]] and request["prompt"] != edited
        described = Counter(r.chat.schema_name for r in server.requests if r.chat is not None)
        assert described["PromptRewrite"] == 1 and set(described) - {"PromptRewrite"} <= DESCRIBE
        assert not [r for r in server.requests if r.image is not None]  # no image before the answer

        # process 2 (this one): a new Repainter on the same files answers and resumes
        with review_child.repainter(server.base_url, tmp_path) as rp:
            thread = review_child.THREAD
            assert rp.status(thread) == "paused" and rp.pending_review(thread) == request
            answer = {"action": "edit", "prompt": edited, "by": "ana", "note": "name the colours"}
            second = rp.resume(thread, review=answer)
            assert second.review["kind"] == "prompt" and second.review["round"] == 2
            result = rp.resume(thread, review={"action": "approve", "by": "bo"})
        requests = server.requests

    chats = Counter(r.chat.schema_name for r in requests if r.chat is not None)
    assert chats - described == Counter({"CritiqueAndRevision": 1})  # nothing described again
    images = [r.image for r in requests if r.image is not None]
    assert images[0].prompt == edited  # the text-to-image model received the edited prompt
    assert sum(i.n for i in images) == result.usage["images"] == len(result.candidates) == 2
    assert result.finished and result.stop_reason == "max_rounds" and result.review is None
    first = result.rounds[0]
    assert first.prompt == edited and [c.prompt for c in first.candidates] == [edited]
    assert first.candidates[0].image.getpixel((0, 0)) == tuple(hashlib.sha256(edited.encode()).digest()[:3])
    assert result.rounds[1].prompt == first.critique.revised_prompt
    assert [(r["kind"], r["round"], r["action"], r["by"]) for r in result.reviews] == [
        ("prompt", 1, "edit", "ana"),
        ("prompt", 2, "approve", "bo"),
    ]
    assert result.reviews[0]["before"]["prompt"] == request["prompt"]
    assert result.reviews[0]["after"] == {"prompt": edited} and result.reviews[0]["note"] == "name the colours"
    assert first.reviews == [result.reviews[0]]


# ---------------------------------------------------------------------------- one process


def test_runs_without_review_take_the_same_steps():
    def nodes(rp: Repainter) -> list[str]:
        return [e.data["node"] for e in rp.stream(REF) if e.kind == "node"]

    round_ = ["generate", "score", "critique"]
    assert nodes(_repainter(max_rounds=3)) == ["start", "describe", *round_, *round_, "generate", "score", "finish"]
    paper = ["propose", "generate", "score", "critique", "revise"]
    assert nodes(_repainter(preset="paper")) == [
        "start",
        "describe",
        *paper,
        *paper,
        "propose",
        "generate",
        "score",
        "finish",
    ]


def test_approved_prompts_are_rendered_as_shown_and_nothing_runs_twice():
    mllm, t2i = FakeMLLM(), FakeT2I()
    rp = _repainter(mllm, t2i, adaptive_variants=False, max_rounds=2, patience=None)
    events = list(rp.stream(REF, review=("prompt",), thread_id="t"))
    last = events[-1]
    assert last.kind == "review" and last.round == 1 and last.result.review == last.data
    assert last.data["prompts"][0] == last.data["prompt"] and len(last.data["prompts"]) == 3
    assert not t2i.requests and rp.status("t") == "paused" and not last.result.finished
    paid = _calls(mllm)
    assert paid["PromptVariants"] == 1 and "paused for review of the prompts before round 1" in repr(last.result)
    assert event_lines(last) == [f"paused for review before round 1: {last.data['prompt']}"]  # what progress shows

    second = rp.resume("t", review="approve")
    assert [r.prompt for r in t2i.requests] == last.data["prompts"]
    assert _calls(mllm) - paid == Counter({"CritiqueAndRevision": 1})  # neither described nor proposed again
    assert second.review["round"] == 2 and second.review["best"]["round"] == 1
    result = rp.resume("t", review={"action": "accept"})
    assert result.finished and len(t2i.requests) == 6 and [r["action"] for r in result.reviews] == ["approve"] * 2


def test_edited_prompts_are_rendered_exactly():
    t2i = FakeT2I()
    rp = _repainter(t2i=t2i, adaptive_variants=False, max_rounds=1)
    paused = rp.run(REF, review="prompt")
    assert len(paused.review["prompts"]) == 3
    result = rp.resume(paused.thread_id, review={"action": "edit", "prompts": ["a cat", "a dog"], "by": "cy"})
    assert [r.prompt for r in t2i.requests] == ["a cat", "a dog"]
    assert result.rounds[0].prompt == "a cat" and [c.prompt for c in result.candidates] == ["a cat", "a dog"]
    assert result.reviews[0]["after"] == {"prompts": ["a cat", "a dog"]}


def test_a_new_prompt_before_a_round_is_what_every_candidate_renders():
    t2i = FakeT2I()
    rp = _repainter(t2i=t2i, adaptive_variants=False, max_rounds=1)
    paused = rp.run(REF, review="prompt")
    result = rp.resume(paused.thread_id, review={"action": "edit", "prompt": "a cat"})
    assert [r.prompt for r in t2i.requests] == ["a cat"] * 3 and len({r.seed for r in t2i.requests}) == 3
    assert result.rounds[0].prompt == "a cat" and result.reviews[0]["by"] is None


def test_edited_critique_edits_revise_the_critiqued_prompt():
    mllm, t2i = FakeMLLM(script={"RevisedPrompt": [{"prompt": "orange sky, revised by the model"}]}), FakeT2I()
    rp = _repainter(mllm, t2i, max_rounds=2, patience=None)
    paused = rp.run(REF, review=("critique",))
    request = paused.review
    assert request["kind"] == "critique" and request["round"] == 1 and len(t2i.requests) == 1
    assert request["critique"]["edits"] == ["fake edits 1", "fake edits 2"]
    assert request["prompt"] == request["critique"]["revised_prompt"]  # the combined critique revised it
    critiqued = paused.rounds[0].candidates[0].prompt
    result = rp.resume(paused.thread_id, review={"action": "edit", "edits": ["make the sky orange"], "by": "di"})
    revise = [c for c in mllm.calls if c.schema == "RevisedPrompt"]
    assert len(revise) == 1 and "make the sky orange" in revise[0].text and critiqued in revise[0].text
    assert result.finished and result.rounds[0].critique.edits == ["make the sky orange"]
    assert result.rounds[1].prompt == result.rounds[0].critique.revised_prompt == "orange sky, revised by the model"
    assert result.rounds[0].reviews[0]["after"] == {"edits": ["make the sky orange"]}


def test_a_prompt_written_after_a_critique_starts_the_next_round():
    mllm, t2i = FakeMLLM(), FakeT2I()
    rp = _repainter(mllm, t2i, preset="paper", max_rounds=2)
    paused = rp.run(REF, review=("critique",))
    assert paused.review["critique"]["revised_prompt"] is None  # the paper revises in a separate call
    result = rp.resume(paused.thread_id, review={"action": "edit", "prompt": "a lone tree", "by": "ed"})
    assert _calls(mllm)["RevisedPrompt"] == 0  # the reviewer's prompt replaces the revision
    assert result.rounds[1].prompt == "a lone tree" and result.rounds[0].critique.revised_prompt == "a lone tree"


def test_an_approved_separate_critique_is_revised_as_without_review():
    mllm = FakeMLLM()
    rp = _repainter(mllm, preset="paper", max_rounds=2)
    paused = rp.run(REF, review=("critique",))
    result = rp.resume(paused.thread_id, review="approve")
    assert _calls(mllm)["RevisedPrompt"] == 1 and result.rounds[1].prompt == result.rounds[0].critique.revised_prompt


@pytest.mark.parametrize("where", ["prompt", "critique"])
def test_a_reviewer_can_stop_the_run(where):
    t2i = FakeT2I()
    rp = _repainter(t2i=t2i, max_rounds=3)
    paused = rp.run(REF, review=(where,))
    rendered = len(t2i.requests)
    result = rp.resume(paused.thread_id, review={"action": "stop", "by": "fa", "note": "good enough"})
    assert result.finished and result.stop_reason == "reviewer_stopped" and len(t2i.requests) == rendered
    assert result.reviews[-1]["action"] == "stop" and result.reviews[-1]["by"] == "fa"
    assert "stopped: reviewer_stopped" in result.summary()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"action": "edit"}, "changes something"),
        ({"action": "approve", "prompt": "x"}, "'approve' takes no prompt"),
        ({"action": "edit", "prompts": ["a", "b", "c", "d"]}, "at most"),
        ({"action": "edit", "edits": ["x"]}, "not edits"),
        ({"action": "maybe"}, "action"),
        ({"action": "edit", "prompt": "  "}, "blank"),
        ({"action": "approve", "extra": 1}, "extra"),
        (42, "not int"),
    ],
)
def test_a_bad_answer_is_a_typed_error_and_the_run_still_waits(answer, says):
    t2i = FakeT2I()
    rp = _repainter(t2i=t2i, adaptive_variants=False, max_rounds=1)
    paused = rp.run(REF, review="prompt", thread_id="t")
    with pytest.raises(ReviewError, match=says):
        rp.resume("t", review=answer)
    assert rp.status("t") == "paused" and not t2i.requests and rp.pending_review("t") == paused.review
    assert rp.resume("t", review="approve").finished


def test_resume_says_when_an_answer_is_missing_or_not_awaited():
    rp = _repainter(max_rounds=1)
    rp.run(REF, review="prompt", thread_id="t")
    with pytest.raises(ReviewError, match=r"paused for a review of the prompts before round 1.*review="):
        rp.resume("t")
    rp.resume("t", review="approve")
    failing = FakeMLLM(script={"CritiqueAndRevision": lambda text, images: 1 / 0})
    other = _repainter(failing, max_rounds=2)
    with pytest.raises(MLLMError):
        other.run(REF, thread_id="f")
    assert other.status("f") == "interrupted" and other.pending_review("f") is None
    with pytest.raises(ReviewError, match="not paused for a review"):
        other.resume("f", review="approve")


def test_the_raw_graph_takes_dicts_and_asks_again_after_a_bad_one():
    rp = _repainter(max_rounds=2, patience=None, review=("critique",))
    graph, cfg = rp.as_graph(), {"configurable": {"thread_id": "g"}}
    out = graph.invoke({"reference": rp.store.put(REF)}, cfg)
    (pending,) = out["__interrupt__"]
    assert pending.value["kind"] == "critique" and pending.response_schema["required"] == ["action"]
    again = graph.invoke(Command(resume={"action": "edit", "prompts": ["x"]}), cfg)
    assert "not prompts" in again["__interrupt__"][0].value["error"]  # asked again, saying why
    out = graph.invoke(Command(resume={"action": "edit", "prompt": "a red barn", "by": "gu"}), cfg)
    result = rp.result_from(out)
    assert result.finished and result.rounds[1].prompt == "a red barn"
    assert [(r["action"], r["by"]) for r in result.reviews] == [("edit", "gu")]


def test_a_parent_graph_gets_the_interrupt_and_resumes_the_loop():
    t2i = FakeT2I()
    rp = _repainter(t2i=t2i, max_rounds=1)

    class Parent(TypedDict, total=False):
        reference: dict
        overrides: dict
        best: dict
        finished: bool

    app = loop_in_a_parent(rp, Parent).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "p"}}
    start = {"reference": rp.store.put(REF), "overrides": {"review": ["prompt"]}}
    chunks = list(app.stream(start, cfg, stream_mode=["custom", "updates"], subgraphs=True))
    events = [e for e in map(Repainter.event_from, chunks) if e is not None]
    assert events[-1].kind == "review" and events[-1].data == app.get_state(cfg).interrupts[0].value
    assert "described" in [e.kind for e in events] and not t2i.requests
    out = app.invoke(Command(resume={"action": "edit", "prompt": "a white wall"}), cfg)
    assert out["finished"] and out["best"]["prompt"] == "a white wall"
    assert [r.prompt for r in t2i.requests] == ["a white wall"]


def test_async_runs_pause_too():
    import asyncio

    rp = _repainter(max_rounds=1)
    paused = asyncio.run(rp.arun(REF, review="prompt"))
    assert paused.review["round"] == 1 and not paused.finished
    assert rp.resume(paused.thread_id, review="approve").finished


def test_a_run_folder_records_the_pause_and_resumes_with_the_answer(tmp_path):
    from imagerepainter.runs.folder import BackendSpecs, RunFolder
    from imagerepainter.sandbox import random_scene, render_scene

    folder = RunFolder(tmp_path / "run")
    specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    paused = folder.run(specs, render_scene(random_scene(3)), overrides={"max_rounds": 3, "review": ["prompt"]})
    assert paused.review["round"] == 1 and folder.read_record()["status"] == "paused"
    assert "This run is paused for a person" in folder.report_path.read_text()
    with pytest.raises(ReviewError, match="paused for a review"):
        RunFolder(folder.path).resume()
    assert folder.read_record()["status"] == "paused"  # a refused answer changes nothing
    second = RunFolder(folder.path).resume(review={"action": "edit", "prompt": "a red disc", "by": "hu"})
    assert second.review["round"] == 2 and second.rounds[0].prompt == "a red disc"
    result = RunFolder(folder.path).resume(review="stop")
    record = folder.read_record()
    assert record["status"] == "finished" and result.stop_reason == "reviewer_stopped"
    assert [r["by"] for r in record["result"]["reviews"]] == ["hu", None]
    assert RepaintResult.load(folder.path).reviews == result.reviews
