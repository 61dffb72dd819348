"""Notebooks: the progress display (bar or lines, fed by the run's events), the result's HTML view, and
the example notebook executed top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import asyncio
import html
import io
import os
import re
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imagerepainter import Repainter, RepaintResult
from imagerepainter import progress as progress_module
from imagerepainter.progress import ProgressLines, event_lines, wants_progress
from imagerepainter.repainter import RepaintEvent
from imagerepainter.report import render_summary
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.testing.fakes import FakeMLLM, FakeT2I, ScriptedScorer

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def sandbox(**settings: object) -> Repainter:
    return Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", **{"max_rounds": 3, **settings})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ----------------------------------------------------------------------------- when progress shows


def test_progress_shows_in_a_kernel_or_a_terminal_and_never_when_turned_off(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel.zmqshell", raising=False)
    assert not wants_progress(None, io.StringIO())  # a pipe, a server's log, pytest's capture
    assert wants_progress(None, _Terminal())
    assert not wants_progress(False, _Terminal()) and wants_progress(True, io.StringIO())
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", object())  # what a Jupyter kernel has loaded
    assert wants_progress(None, io.StringIO()) and not wants_progress(False, io.StringIO())


def test_run_stays_quiet_for_library_callers(capsys):
    sandbox().run(render_scene(random_scene(1)))  # progress=None under pytest: stderr is not a terminal
    assert capsys.readouterr().err == ""


def test_the_bar_follows_the_run_describe_calls_first_and_ends_full_when_the_run_stops_early(capsys):
    result = sandbox(max_rounds=8, patience=1, min_delta=0.5).run(render_scene(random_scene(4)), progress=True)
    err = capsys.readouterr().err
    states = [s.strip() for s in err.replace("\n", "\r").split("\r") if s.strip()]
    describe = [i for i, s in enumerate(states) if "describing: " in s]
    described = next(i for i, s in enumerate(states) if "described the reference: " in s)
    calls = [c for c in result.calls if c["node"] == "describe"]
    assert len(describe) >= len(calls) and max(describe) < described  # each call shown as it finished, first
    assert {c["schema"] for c in calls} <= {m.group(1) for s in states if (m := re.search(r"describing: (\w+)", s))}
    n = len(result.rounds)
    assert n < 8 and f"{n}/{n}" in states[-1]  # stopped early: the bar ends full at the rounds run
    assert f"best {result.best.score:.4f}" in states[-1] and f"stopping: {result.stop_reason}" in states[-1]


def test_without_tqdm_the_run_prints_the_command_lines_lines(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import tqdm.auto now raises ImportError
    result = sandbox().run(render_scene(random_scene(2)), progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert all(re.match(r"\[\s*\d+\.\ds\] ", line) for line in lines)
    assert sum("describing: " in line for line in lines) == sum(c["node"] == "describe" for c in result.calls)
    assert lines[-1].endswith(f"stopping: {result.stop_reason}")


def test_resume_shows_the_bar_from_the_round_it_resumes(capsys):
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.1, 0.2, 0.3, 0.4] * 6), max_rounds=4)
    events = rp.stream(Image.new("RGB", (32, 32), "white"), thread_id="t", variants=1, patience=None)
    for event in events:
        if event.kind == "round" and event.round == 2:
            break
    events.close()
    capsys.readouterr()
    result = rp.resume("t", progress=True)
    states = [s for s in capsys.readouterr().err.replace("\n", "\r").split("\r") if "%|" in s]
    assert len(result.rounds) == 4 and not any("1/4" in s for s in states)  # rounds 1-2 were done before
    assert "4/4" in states[-1]


def test_batch_inside_a_running_loop_says_to_await_abatch():
    from imagerepainter.errors import ConfigurationError

    rp = sandbox(max_rounds=1)

    async def in_a_notebook_cell() -> None:
        with pytest.raises(ConfigurationError, match=r"await rp\.abatch"):
            rp.batch([render_scene(random_scene(1))])

    asyncio.run(in_a_notebook_cell())


def test_ctrl_c_while_the_bar_draws_leaves_a_run_that_resumes(monkeypatch):
    def interrupted(self, event):
        if event.kind == "round":
            raise KeyboardInterrupt

    monkeypatch.setattr(progress_module.ProgressBar, "__call__", interrupted)
    rp = sandbox(max_rounds=3, patience=None)
    reference = render_scene(random_scene(6))
    with pytest.raises(KeyboardInterrupt) as caught:  # kept, as a notebook keeps the last traceback
        rp.run(reference, thread_id="t", progress=True)
    assert rp.status("t") == "interrupted"  # and the thread is free again: resume does not say "in use"
    assert len(rp.resume("t", progress=False).rounds) == 3
    assert caught.traceback


# ----------------------------------------------------------------------------- per image, per line


def test_each_describe_call_is_shown_while_the_description_is_still_running():
    seen = threading.Event()

    def rewrite(text, images):  # the describe stage's last call waits until a line said the first ones
        assert seen.wait(20), "no progress line while the description was still running"
        return {"prompt": "a red square on white"}

    rp = Repainter(mllm=FakeMLLM(script={"PromptRewrite": rewrite}), t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 9))
    out = io.StringIO()
    show = ProgressLines(out)
    for event in rp.stream(Image.new("RGB", (32, 32), "white"), max_rounds=1):
        show(event)
        if "describing: ObjectList answered" in out.getvalue():
            seen.set()
    lines = out.getvalue().splitlines()
    described = next(i for i, line in enumerate(lines) if "described the reference: a red square" in line)
    assert sum("describing: " in line for line in lines[:described]) == described >= 3


def test_a_one_image_model_reports_after_each_image():
    t2i = FakeT2I(max_batch_size=1)
    rp = Repainter(mllm=FakeMLLM(), t2i=t2i, scorer=ScriptedScorer([0.5] * 9), max_rounds=1, adaptive_variants=False)
    events = list(rp.stream(Image.new("RGB", (32, 32), "white")))
    made = [e.data for e in events if e.kind == "generated"]
    assert [(d["done"], d["total"]) for d in made] == [(i, len(t2i.requests)) for i in range(1, len(t2i.requests) + 1)]
    assert len(made) == t2i.batches == 3 and all(d["seconds"] >= 0 for d in made)


def test_the_command_line_prints_a_line_per_slow_rendering_call_only(monkeypatch):
    out = io.StringIO()
    show = ProgressLines(out)
    show(RepaintEvent("generated", 1, {"done": 1, "total": 3, "seconds": 0.05}))  # the sandbox: quiet
    show(RepaintEvent("generated", 1, {"done": 2, "total": 3, "seconds": 2.5}))  # a slow model: one line each
    assert out.getvalue().splitlines()[0].endswith("] round 1: 2/3 candidates rendered (2.5s)")
    assert len(out.getvalue().splitlines()) == 1
    monkeypatch.setattr(progress_module, "SLOW_RENDER_SECONDS", 0.0)  # every call "slow": a line per image
    t2i = FakeT2I(max_batch_size=1)
    rp = Repainter(mllm=FakeMLLM(), t2i=t2i, scorer=ScriptedScorer([0.5] * 9), max_rounds=1, adaptive_variants=False)
    out = io.StringIO()
    for event in rp.stream(Image.new("RGB", (32, 32), "white")):
        ProgressLines(out)(event)
    assert re.findall(r"round 1: (\d)/3 candidates rendered", out.getvalue()) == ["1", "2", "3"]


def test_the_sandbox_demo_prints_no_line_per_image(capsys, tmp_path):
    from imagerepainter.cli.main import main

    assert main(["demo", "--seed", "3", "--max-rounds", "2", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "round 1 scored" in err and "candidates rendered" not in err


words = st.text(alphabet="abcdefghij#%", min_size=1, max_size=14)


@settings(max_examples=150, deadline=None)
@given(st.lists(words, min_size=1, max_size=40), st.integers(min_value=30, max_value=140))
def test_no_line_is_cut_inside_a_word(parts, width):
    text = " ".join(parts)
    for event in (
        RepaintEvent("described", None, {"prompt": text}),
        RepaintEvent("critique", 2, {"of_round": 1, "edits": [text]}),
    ):
        (line,) = event_lines(event, width=width)
        head, shown = line.split(": ", 1)
        assert len(line) <= max(width, len(head) + 2 + 10)  # our words whole, at least 10 of the model's
        if shown.endswith("…"):
            kept = shown[:-1]
            assert text.startswith(kept) and (not kept or text[len(kept)] == " " or " " not in text[: len(kept)])
        else:
            assert shown == text


# ----------------------------------------------------------------------------- the result's HTML view


def test_the_view_shows_reference_best_and_each_round_with_the_full_prompt_as_text():
    prompt = "a red circle <lora:detail:0.8> & <b>bold</b> " + "with a long tail of careful detail " * 8
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(size=64), scorer=ScriptedScorer([0.3, 0.6, 0.5] * 3), max_rounds=2)
    result = rp.run(Image.new("RGB", (64, 64), "white"), prompt=prompt, progress=False)
    page = result._repr_html_()
    assert "<b>bold" not in page and "<lora" not in page
    assert html.escape(prompt) in page and len(prompt) > 300  # the whole prompt, not cut at 120 characters
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert len(srcs) == 2 + len(result.rounds) and all(s.startswith("data:image/") for s in srcs)
    for r in result.rounds:
        assert f"round {r.index}<br>{r.best.score:.4f}" in page
    assert 'alt="reference"' in page and 'alt="best image"' in page


def noise_t2i(prompt: str, *, seed: int, width: int | None = None, height: int | None = None, **_: object) -> Image:
    """Incompressible images: the worst case for the view's size."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height or 256, width or 256, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_the_view_stays_within_its_byte_budget_dropping_later_rounds_images():
    scores = [0.1 + 0.01 * i for i in range(40)]
    rp = Repainter(mllm=FakeMLLM(), t2i=noise_t2i, scorer=ScriptedScorer(scores), max_rounds=12, patience=None)
    result = rp.run(noise_t2i("", seed=999), variants=1, adaptive_variants=False, progress=False)
    assert len(result.rounds) == 12
    full = render_summary(result, max_bytes=10_000_000)
    assert full.count("<img ") == 14
    page = render_summary(result, max_bytes=150_000)
    assert len(page.encode()) <= 150_000 < len(full.encode())
    kept = re.findall(r'alt="([^"]+)"', page)
    assert kept[:2] == ["reference", "best image"] and 0 < len(kept) < 14
    assert "left out to keep this view small" in page
    assert len(result._repr_html_().encode()) <= 400_000  # the default budget


def test_without_its_images_the_view_is_text(tmp_path):
    result = sandbox().run(render_scene(random_scene(5)), progress=False)
    loaded = RepaintResult.model_validate_json(result.model_dump_json())  # from JSON, no store
    page = loaded._repr_html_()
    assert "<img" not in page and "Images not at hand" in page and html.escape(result.best.prompt) in page
    result.save(tmp_path / "saved")
    again = RepaintResult.load(tmp_path / "saved")._repr_html_()
    assert again.count("<img ") == 2 + len(result.rounds)


# ----------------------------------------------------------------------------- the example notebook


def test_the_committed_notebook_has_no_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_example_notebook_runs_top_to_bottom(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)  # raises CellExecutionError on any failing cell
    cells = {c.source.splitlines()[0]: c.outputs for c in nb.cells if c.cell_type == "code"}
    ran = "".join(o.get("text", "") for o in cells["result = rp.run(reference)"] if o.output_type == "stream")
    assert "describing: " in ran and "stopping: " in ran  # the bar, in the notebook
    assert "Warning" not in ran
    shown = next(o for o in cells["result"] if o.output_type == "execute_result")["data"]["text/html"]
    assert shown.count('<img src="data:image/') >= 3 and "Best prompt:" in shown
    streamed = "".join(o.get("text", "") for o in cells["from imagerepainter.progress import event_lines"])
    assert "round 1 scored: " in streamed
    awaited = [o for o in cells["result = await rp.arun(reference, max_rounds=2)"] if o.output_type == "stream"]
    assert "2 rounds" in "".join(o["text"] for o in awaited)
