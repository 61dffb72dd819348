"""The command line and run folders: demo, run, resume after SIGKILL, exit codes, sandbox over HTTP."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from imagerepainter import Repainter
from imagerepainter.cli.main import build_parser, main, subcommand_parsers
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.sandbox.server import sandbox_server

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagerepainter.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _complete(folder: Path) -> dict:
    assert {p.name for p in folder.iterdir()} >= {
        "reference.png",
        "images",
        "run.json",
        "checkpoint.sqlite",
        "history.sqlite",
        "report.html",
    }
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished"
    result = record["result"]
    for rnd in result["rounds"]:
        for cand in rnd["candidates"]:
            assert cand["prompt"] and isinstance(cand["seed"], int) and cand["score"] is not None
            assert (folder / "images" / f"{cand['image_ref']['sha256']}.png").exists()
    assert result["stop_reason"] and result["config"] and result["usage"]["images"] > 0 and result["timings"]
    assert record["versions"]["imagerepainter"] and record["specs"]["mllm"] == "sandbox"
    return record


def test_demo_writes_a_complete_run_folder_quickly(tmp_path):
    start = time.monotonic()
    out = _cli("demo", "--out", str(tmp_path / "demo"), "--seed", "7")
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    assert elapsed < 30
    record = _complete(tmp_path / "demo")
    assert "round 1 scored" in out.stderr and "Report:" in out.stdout
    scores = [r["best_score_so_far"] for r in record["result"]["rounds"]]
    assert scores == sorted(scores) and scores[-1] > scores[0]


def test_run_on_a_photograph_with_json_output(tmp_path, evalref_dir):
    start = time.monotonic()
    photo = str(evalref_dir / "complex_4.png")
    out = _cli("run", photo, "--mllm", "sandbox", "--t2i", "sandbox", "--out", str(tmp_path / "p"), "--json")
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - start < 30
    printed = json.loads(out.stdout)
    assert printed["folder"] == str(tmp_path / "p") and printed["rounds"]
    record = _complete(tmp_path / "p")
    assert record["specs"]["scorer"] == "sandbox"  # the default scorer needs no weights in the sandbox


def test_score_rises_over_rounds_on_twenty_hidden_scenes():
    improved = 0
    for seed in range(20):
        rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox")
        result = rp.run(render_scene(random_scene(seed), seed=seed), seed=seed)
        best = result.scores
        assert all(b >= a for a, b in itertools.pairwise(best)), best  # the global best never falls
        improved += result.rounds[-1].best.score > result.rounds[0].best.score
    assert improved >= 16


@pytest.mark.parametrize("support", ["json_schema", "text"])
def test_chatopenai_against_the_sandbox_server_matches_in_process(support):
    reference = render_scene(random_scene(11), seed=11)
    local = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=4).run(reference)
    with sandbox_server(structured_output=support) as server:
        chat = ChatOpenAI(model="sandbox", base_url=server.base_url, api_key="EMPTY", max_retries=0)
        remote = Repainter(mllm=chat, t2i="sandbox", scorer="sandbox", max_rounds=4).run(reference)
        assert len(server.chat_requests) >= remote.usage["mllm_calls"]

    def sig(r):
        return [(c.round, c.prompt, c.seed, c.score) for c in r.candidates], r.stop_reason

    assert sig(remote) == sig(local)


def _signature(record: dict) -> list:
    return [
        (r["index"], c["prompt"], c["seed"], c["score"]) for r in record["result"]["rounds"] for c in r["candidates"]
    ]


def test_sigkill_at_a_random_moment_then_resume_gives_the_uninterrupted_result(tmp_path):
    child = [sys.executable, str(ROOT / "tests" / "crash_child.py")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [*child, "run", str(tmp_path / "whole"), str(tmp_path / "whole.log"), "3"], check=True, env=env, timeout=120
    )
    whole = json.loads((tmp_path / "whole" / "run.json").read_text())

    rng = random.Random(1234)
    finished_at_kill = []
    for attempt in range(3):
        folder, log = tmp_path / f"crash{attempt}", tmp_path / f"crash{attempt}.log"
        proc = subprocess.Popen([*child, "run", str(folder), str(log), "3"], env=env)
        deadline = time.monotonic() + 60
        while not (folder / "run.json").exists() and time.monotonic() < deadline:  # the run has started
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))  # the run takes over 2 s from here (0.3 s per rendered round)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        before = json.loads((folder / "run.json").read_text())
        assert before["status"] == "running"  # killed mid-run, not after it finished
        finished = {(r["index"]) for r in before.get("result", {}).get("rounds", [])}
        finished_at_kill.append(len(finished))
        subprocess.run([*child, "resume", str(folder), str(log), "3"], check=True, env=env, timeout=120)
        after = json.loads((folder / "run.json").read_text())
        assert after["status"] == "finished"
        assert _signature(after) == _signature(whole)
        assert after["result"]["stop_reason"] == whole["result"]["stop_reason"]
        # the renderer was not asked again for rounds that had finished before the kill
        rendered = [json.loads(line) for line in log.read_text().splitlines()]
        first = {(e["prompt"], e["seed"]) for e in rendered if e["mode"] == "run"}
        again = {(e["prompt"], e["seed"]) for e in rendered if e["mode"] == "resume"}
        done = {
            (c["prompt"], c["seed"])
            for r in before.get("result", {}).get("rounds", [])
            if r["index"] in finished
            for c in r["candidates"]
        }
        assert not (again & done)
        assert len(again & first) <= 3  # at most the one round that was being rendered when killed
    assert max(finished_at_kill) >= 1, finished_at_kill  # some kill came after a finished round


def test_errors_are_one_line_with_an_exit_code(tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert (
        main(
            [
                "run",
                str(tmp_path / "bad.png"),
                "--mllm",
                "sandbox",
                "--t2i",
                "sandbox",
                "--scorer",
                "sandbox",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    render_scene(random_scene(1)).save(tmp_path / "good.png")
    assert main(["run", str(tmp_path / "good.png"), "--mllm", "sandbx", "--t2i", "sandbox", "--scorer", "sandbox"]) == 2
    assert "Did you mean 'sandbox'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing created for a bad reference


def test_resume_of_a_finished_run_is_a_no_op_that_says_so(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet", "--max-rounds", "2"]) == 0
    before = (tmp_path / "d" / "run.json").read_text()
    capsys.readouterr()
    for argv in (["resume", str(tmp_path / "d"), "--quiet"], ["run", "--resume", str(tmp_path / "d")]):
        assert main(argv) == 0
        out, err = capsys.readouterr()
        assert err == f"Nothing to resume: the run in {tmp_path / 'd'} had already finished. Its result:\n"
        assert out.startswith("2 rounds, stopped: max_rounds.")
    assert json.loads((tmp_path / "d" / "run.json").read_text())["result"] == json.loads(before)["result"]


@pytest.mark.parametrize(("stop_at", "nth", "kept_rounds"), [("critique", 2, 2), ("described", 1, 0)])
def test_resume_after_ctrl_c_says_what_is_kept_and_where_it_goes_on(
    tmp_path, monkeypatch, capsys, stop_at, nth, kept_rounds
):
    from imagerepainter.cli import main as cli

    progress = cli.Progress.__call__
    seen: list[str] = []

    def ctrl_c(self, event):
        progress(self, event)
        seen.append(event.kind)
        if seen.count(stop_at) == nth:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.Progress, "__call__", ctrl_c)
    folder = tmp_path / "d"
    assert main(["demo", "--seed", "5", "--max-rounds", "4", "--out", str(folder)]) == 130
    monkeypatch.setattr(cli.Progress, "__call__", progress)
    stopped = json.loads((folder / "run.json").read_text())
    assert stopped["status"] == "interrupted" and len(stopped["result"]["rounds"]) == kept_rounds
    usage = stopped["result"]["usage"]
    capsys.readouterr()

    assert main(["resume", str(folder)]) == 0
    lines = capsys.readouterr().err.splitlines()
    rounds = f"{kept_rounds} finished round{'' if kept_rounds == 1 else 's'}"
    images = f"{usage.get('images', 0)} image{'' if usage.get('images', 0) == 1 else 's'}"
    kept = f"{rounds}, {images} and {usage['mllm_calls']} MLLM calls"
    assert lines[0].endswith(f"] resuming: kept {kept}; continuing with round {kept_rounds + 1}"), lines[:3]
    assert f"round {kept_rounds + 1} scored" in lines[1]  # the first thing it does after
    assert not any(f"round {n}:" in line for n in range(1, kept_rounds + 1) for line in lines)  # kept: not redone
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"


def test_backends_lists_providers(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "diffusers" in out and "sandbox" in out and "paper" in out


def test_docs_cli_page_is_in_step_with_help(capsys):
    doc = (ROOT / "docs" / "cli.md").read_text()
    for name in ["", *subcommand_parsers(build_parser())]:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"] if name else ["--help"])
        assert exc.value.code == 0
        printed = capsys.readouterr().out.strip()
        assert printed.startswith(f"usage: imagerepainter {name}".rstrip())
        assert printed in doc, f"docs/cli.md is out of step with `imagerepainter {name} --help`"


@pytest.mark.browser
def test_the_demo_report_renders_in_chromium(tmp_path):
    from tests import browser

    if browser.chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    assert main(["demo", "--out", str(tmp_path / "d"), "--seed", "9", "--quiet", "--max-rounds", "3"]) == 0
    result = json.loads((tmp_path / "d" / "run.json").read_text())["result"]
    images = 2 + sum(len(r["candidates"]) for r in result["rounds"])  # reference, best, every candidate
    body = browser.probe(tmp_path / "d" / "report.html")
    assert body["data-images-loaded"] == f"{images}/{images}"
    assert body["data-chart-points"] == str(sum(len(r["candidates"]) for r in result["rounds"]))


def test_backends_that_cannot_be_built_fail_cleanly_and_leave_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    code = main(
        [
            "run",
            str(tmp_path / "ref.png"),
            "--mllm",
            "openai:gpt-4o",
            "--t2i",
            "sandbox",
            "--scorer",
            "sandbox",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "OPENAI_API_KEY" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_run_keeps_the_references_shape_unless_a_size_is_given(tmp_path, evalref_dir, capsys):
    from PIL import Image

    photo = tmp_path / "wide.png"
    Image.open(evalref_dir / "scene_2.png").convert("RGB").resize((451, 300)).save(photo)
    base = ["run", str(photo), "--mllm", "sandbox", "--t2i", "sandbox", "--max-rounds", "2", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "shaped")]) == 0
    record = json.loads((tmp_path / "shaped" / "run.json").read_text())
    generation = record["result"]["config"]["generation"]
    width, height = generation["width"], generation["height"]
    assert abs(width / height - 451 / 300) <= 1 / height  # 3:2 within one rounding step
    assert abs(width * height - 256 * 256) < 0.02 * 256 * 256  # at the sandbox's native pixel count
    sizes = {
        tuple(c["image_ref"][k] for k in ("width", "height"))
        for r in record["result"]["rounds"]
        for c in r["candidates"]
    }
    assert sizes == {(width, height)}
    assert main([*base, "--width", "128", "--height", "96", "--out", str(tmp_path / "given")]) == 0  # explicit wins
    given = json.loads((tmp_path / "given" / "run.json").read_text())
    assert {
        (c["image_ref"]["width"], c["image_ref"]["height"]) for c in given["result"]["rounds"][0]["candidates"]
    } == {(128, 96)}


def test_progress_shows_describe_calls_says_a_judged_match_in_words_and_cuts_at_word_boundaries():
    import io

    from imagerepainter.cli.main import Progress
    from imagerepainter.repainter import RepaintEvent

    out = io.StringIO()
    show = Progress(out)
    show(RepaintEvent("call", 0, {"node": "describe", "call": "ObjectList", "seconds": 0.42}))
    long_edit = "move the small crimson hexagon to the upper left corner " * 4
    show(RepaintEvent("critique", 2, {"of_round": 2, "edits": [long_edit], "is_match": False}))
    show(RepaintEvent("critique", 4, {"of_round": 4, "edits": [], "is_match": True, "stop": False}))
    show(RepaintEvent("critique", 5, {"of_round": 5, "edits": [], "is_match": True, "stop": True}))
    lines = out.getvalue().splitlines()
    assert "describing: ObjectList answered in 0.4s" in lines[0]
    shown = lines[1].split(": ", 1)[1]
    assert shown.endswith("…") and long_edit.startswith(shown[:-1]) and long_edit[len(shown) - 1] == " "
    assert lines[2].endswith("judged a match; going on for a better score (stop_on_match is off)")
    assert lines[3].endswith("judged a match; stopping")


@pytest.mark.parametrize("command", list(subcommand_parsers(build_parser())))
def test_help_teaches_with_examples_and_defaults(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    examples = text.split("\nexamples:\n", 1)[1]  # kept as written, one example per line
    assert f"imagerepainter {command}" in examples
    if command in ("run", "eval", "backends"):
        assert "--mllm" in examples
    flat = " ".join(text.split())
    for action in subcommand_parsers(build_parser())[command]._actions:  # every default is shown
        if action.default not in (None, False, "==SUPPRESS==") and action.help:
            shown = action.help % {"default": action.default} if "%(default)" in action.help else action.help
            assert "default" in shown, f"{command} {action.option_strings}: {shown}"
    if command == "run":
        assert "(default: default; paper:" in flat and "(default: 6; paper preset: 3)" in flat
        assert "    imagerepainter run photo.png --mllm sandbox --t2i sandbox\n" in examples  # offline, verbatim


def test_backends_shows_the_spec_syntax(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("A spec is provider[:model][?option=value&...]") and "init_chat_model" in out
