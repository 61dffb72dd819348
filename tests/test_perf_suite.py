"""The performance suite (benchmarks/perf_suite.py) runs and reports every figure; timings are never judged here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from imagerepainter.testing.openai_server import OpenAICompatibleServer
from tests.bench_modules import benchmark_module

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "perf_suite.py"


def _suite_module():
    return benchmark_module("perf_suite")


def test_the_critical_path_counts_describe_levels_once_and_every_later_call():
    perf_suite = _suite_module()
    describe = ["GlobalDescription", "GlobalFeatures", "ObjectList", "ThingDetails", "PersonDetails", "Relationships"]
    later = ["PromptVariants", "CritiqueAndRevision", "CritiqueAndRevision"]
    path = perf_suite.critical_path([*describe, "PromptRewrite", *later], t2i_seconds=0.9, delay=0.2)
    assert path["describe_levels"] == 3
    assert path["sequential_mllm_calls"] == 6
    assert path["mllm_calls"] == 10
    assert path["seconds"] == pytest.approx(0.2 * 6 + 0.9)
    # a description without objects has no second level
    assert (
        perf_suite.critical_path(["GlobalDescription", "GlobalFeatures", "PromptRewrite"], 0.0, 1.0)["describe_levels"]
        == 2
    )


def test_inputs_are_photo_like_and_every_candidate_is_distinct():
    perf_suite = _suite_module()
    kit = sys.modules["perf_kit"]
    image, source = kit.photo(64, "no-such-photo.png")  # what CI gets without ../shared
    assert image.size == (64, 64) and image.mode == "RGB" and "generated" in source
    assert len(image.getcolors(maxcolors=1 << 24) or []) > 1000  # textured, not a solid colour
    canvas = kit.Canvas(32, "no-such-photo.png")
    first, second = canvas.next(), canvas.next()
    assert first.size == (32, 32) and first.tobytes() != second.tobytes()
    assert perf_suite.FIGURES


def test_checkpoint_bytes_are_grouped_by_round_after_the_run_and_account_for_every_byte(tmp_path):
    """Per-round checkpoint bytes come from what is stored, grouped by each checkpoint's round:
    all of the checkpoint and writes tables are counted once, and every closed round has a group."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from imagerepainter import Repainter
    from imagerepainter.testing import FakeMLLM

    _suite_module()
    kit = sys.modules["perf_kit"]
    db = tmp_path / "checkpoint.sqlite"
    conn = sqlite3.connect(db, check_same_thread=False)
    reference, _ = kit.photo(32, "no-such-photo.png")
    with Repainter(
        mllm=FakeMLLM(),
        t2i=kit.SleepingT2I(32),
        scorer=kit.RisingScorer(),
        checkpointer=SqliteSaver(conn),
        max_rounds=4,
    ) as rp:
        result = rp.run(reference, progress=False)
    conn.close()
    by_round = kit.checkpoint_bytes_by_round(db)
    assert len(result.rounds) == 4 and sorted(by_round) == [0, 1, 2, 3, 4]
    assert sum(by_round.values()) == kit.stored_bytes(db)  # checkpoints and writes are all there is
    assert all(size > 0 for size in by_round.values())


def test_the_loopback_server_delay_applies_to_each_request_side_by_side():
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with OpenAICompatibleServer(delay=0.3) as server:

        def ask(_: int) -> tuple[float, str]:
            start = time.perf_counter()
            request = urllib.request.Request(
                server.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
            )
            reply = json.load(urllib.request.urlopen(request, timeout=10))
            return time.perf_counter() - start, reply["choices"][0]["message"]["content"]

        start = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(ask, range(4)))
        together = time.perf_counter() - start
    assert all(seconds >= 0.3 for seconds, _ in answers)  # nobody is answered early
    assert all(text == "OK" for _, text in answers)
    assert together < 4 * 0.3  # concurrent requests wait side by side, not one after another
    with pytest.raises(ValueError, match="delay"):
        OpenAICompatibleServer(delay=-1)


@pytest.mark.slow
def test_the_short_mode_runs_and_reports_every_figure(tmp_path):
    out = tmp_path / "perf.json"
    done = subprocess.run(
        [sys.executable, str(SUITE), "--short", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    perf_suite = _suite_module()

    machine = report["machine"]
    for key in ("cpu_model", "cores", "python", "torch", "langgraph"):
        assert machine[key], key
    assert report["settings"]["repetitions"] == 1 and report["settings"]["short"] is True

    figures = report["figures"]
    assert set(figures) == set(perf_suite.FIGURES)
    for key, figure in figures.items():
        assert figure.get("unit"), key
    settings = report["settings"]
    for size in settings["sizes"]:
        for preset in ("default", "paper"):
            run = figures["wall_over_critical_path"][f"{preset}@{size}"]
            assert run["ratio"] > 0 and run["critical_path_s"] > 0 and run["n"] == 1
            assert run["describe_levels"] == 3  # the fake answers name two objects
    assert figures["describe_in_delays"]["median"] > 0
    for size in settings["generate_sizes"]:
        assert figures["generate_efficiency"][str(size)]["median"] > 0
    cpu = figures["graph_cpu_per_round"]
    assert cpu["replica_matches_cli"], (
        f"RunFolder now builds its Repainter with {cpu['cli_settings']}: make perf_suite.cli_run do the same"
    )
    assert cpu["run_folder"]["median"] is not None
    for size in settings["cli_sizes"]:
        assert cpu[str(size)]["median"] is not None
        per_round = figures["checkpoint_bytes_per_round"][str(size)]
        assert per_round["first"] > 0 and per_round["last"] > 0
    sandbox = figures["sandbox_images_to_paper_best"]
    assert sandbox["count"] == len(sandbox["scenes"]) == settings["scenes"]
    imports = figures["import_cost"]
    assert imports["Repainter"]["modules"] > 0 and imports["Repainter"]["top_third_party"]

    named = " ".join(row["figure"] for row in report["table"])
    for words in (
        "wall / critical path",
        "describe stage",
        "generate node",
        "graph CPU",
        "checkpoint bytes",
        "paper's best",
        "import",
    ):
        assert words in named
    assert "| figure | value |" in done.stdout
