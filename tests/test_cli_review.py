"""Human review from the command line: ``run --review`` pauses with exit code 3 and never waits
for input; ``resume DIR --approve | --prompt | --edits | --stop`` answers, on the sandbox world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerepainter.cli.main import EXIT_PAUSED, main
from imagerepainter.sandbox import random_scene, render_scene

SANDBOX = ("--mllm", "sandbox", "--t2i", "sandbox", "--quiet")


@pytest.fixture
def reference(tmp_path: Path) -> str:
    path = tmp_path / "ref.png"
    render_scene(random_scene(4)).save(path)
    return str(path)


def _record(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def _paid(folder: Path) -> tuple[int, int]:
    usage = _record(folder)["result"]["usage"]
    return usage["mllm_calls"], usage.get("images", 0)  # no image rendered yet: no count


def _paused_run(reference: str, folder: Path, *review: str, rounds: int = 2) -> None:
    assert main(["run", reference, *SANDBOX, "--max-rounds", str(rounds), *review, "--out", str(folder)]) == 3


def test_a_paused_run_says_what_to_review_and_an_edited_prompt_is_what_the_round_renders(reference, tmp_path, capsys):
    folder = tmp_path / "run"
    _paused_run(reference, folder, "--review", "prompt")
    out = capsys.readouterr().out
    record = _record(folder)
    request = record["result"]["review"]
    assert record["status"] == "paused" and request["kind"] == "prompt" and request["round"] == 1
    assert "Paused for review: the prompts before round 1." in out and request["prompts"][0] in out
    assert f"imagerepainter resume {folder} --approve" in out and f"imagerepainter resume {folder} --stop" in out
    paid = _paid(folder)

    assert main(["resume", str(folder)]) == EXIT_PAUSED  # no answer: says what is pending, calls nothing
    err = capsys.readouterr().err
    assert "waits for an answer" in err and f"imagerepainter resume {folder} --prompt TEXT" in err
    assert _paid(folder) == paid and _record(folder)["status"] == "paused"

    edited = "a red disc on a green background"
    assert main(["resume", str(folder), "--prompt", edited, "--by", "ana", "--note", "red", "--quiet"]) == 3
    record = _record(folder)
    first = record["result"]["rounds"][0]
    assert first["prompt"] == edited and {c["prompt"] for c in first["candidates"]} == {edited}
    assert record["result"]["reviews"] == [
        {
            "kind": "prompt",
            "round": 1,
            "action": "edit",
            "by": "ana",
            "note": "red",
            "before": {"prompt": request["prompt"], "prompts": request["prompts"]},
            "after": {"prompt": edited},
        }
    ]
    assert record["status"] == "paused" and record["result"]["review"]["round"] == 2
    calls, images = _paid(folder)
    assert images == paid[1] + len(first["candidates"])  # only round 1's images are new
    assert calls == paid[0] + 1  # round 1's one (combined) critique call: the description was not asked again
    assert "Paused for review: the prompts before round 2." in capsys.readouterr().out

    assert main(["resume", str(folder), "--approve", "--json"]) == 0  # round 2 renders, then the run ends
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["finished"] and result["review"] is None and "Paused" not in captured.err
    assert [r["action"] for r in result["reviews"]] == ["edit", "approve"]
    assert len(result["rounds"]) == 2 and _record(folder)["status"] == "finished"


def test_a_critique_review_takes_edits_and_a_stop(reference, tmp_path, capsys):
    folder = tmp_path / "run"
    _paused_run(reference, folder, "--review", "critique", rounds=3)
    out = capsys.readouterr().out
    request = _record(folder)["result"]["review"]
    assert request["kind"] == "critique" and request["round"] == 1
    assert "Paused for review: the critique after round 1." in out
    assert all(f"  - {edit}" in out for edit in request["critique"]["edits"])
    assert f"imagerepainter resume {folder} --edits TEXT" in out

    assert main(["resume", str(folder), "--edits", "make the background red", "--edits", "add a disc"]) == 3
    reviews = _record(folder)["result"]["reviews"]
    assert reviews[0]["after"] == {"edits": ["make the background red", "add a disc"]}
    paid = _paid(folder)
    assert main(["resume", str(folder), "--stop", "--by", "bo"]) == 0
    record = _record(folder)
    assert record["status"] == "finished" and record["result"]["stop_reason"] == "reviewer_stopped"
    assert record["result"]["reviews"][-1]["action"] == "stop" and record["result"]["reviews"][-1]["by"] == "bo"
    assert _paid(folder) == paid  # stopping pays for nothing


def test_review_points_come_as_a_comma_list_or_repeated(reference, tmp_path, capsys):
    _paused_run(reference, tmp_path / "a", "--review", "critique,prompt")
    _paused_run(reference, tmp_path / "b", "--review", "critique", "--review", "prompt")
    for name in ("a", "b"):
        assert _record(tmp_path / name)["result"]["config"]["review"] == ["prompt", "critique"]
    with pytest.raises(SystemExit) as exc:
        main(["run", reference, *SANDBOX, "--review", "prompts"])
    assert exc.value.code == 2 and "invalid choice: 'prompts'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--approve", "--stop"], "Give one answer to the review, not --approve and --stop."),
        (["--stop", "--prompt", "x"], "not --stop and --prompt/--edits"),
        (["--by", "ana"], "--by and --note go with an answer"),
        (["--prompt", "  "], "--prompt needs a text, not a blank one."),
    ],
)
def test_a_bad_answer_is_one_line_and_changes_nothing(reference, tmp_path, capsys, flags, says):
    folder = tmp_path / "run"
    _paused_run(reference, folder, "--review", "prompt")
    before = (folder / "run.json").read_text()
    capsys.readouterr()
    assert main(["resume", str(folder), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and says in err
    assert (folder / "run.json").read_text() == before


def test_an_answer_the_review_does_not_take_is_refused_before_anything_runs(reference, tmp_path, capsys):
    folder = tmp_path / "run"
    _paused_run(reference, folder, "--review", "prompt")
    before = (folder / "run.json").read_text()
    capsys.readouterr()
    assert main(["resume", str(folder), "--edits", "make it red"]) == 2  # edits answer a critique review
    assert "takes prompt or prompts, not edits" in capsys.readouterr().err
    assert (folder / "run.json").read_text() == before


def test_an_answer_to_a_run_that_is_not_paused_is_refused(reference, tmp_path, capsys):
    folder = tmp_path / "run"
    assert main(["run", reference, *SANDBOX, "--max-rounds", "1", "--out", str(folder)]) == 0
    before = (folder / "run.json").read_text()
    capsys.readouterr()
    assert main(["resume", str(folder), "--approve"]) == 2
    err = capsys.readouterr().err
    assert f"The run in '{folder}' is not paused for a review (status: finished); nothing to answer." in err
    assert (folder / "run.json").read_text() == before


def test_prompt_given_once_per_candidate_renders_exactly_those(reference, tmp_path, capsys):
    folder = tmp_path / "run"
    _paused_run(reference, folder, "--review", "prompt", "--preset", "paper", rounds=1)  # 3 candidates a round
    out = capsys.readouterr().out
    assert len(_record(folder)["result"]["review"]["prompts"]) == 3 and "one --prompt per prompt" in out
    assert main(["resume", str(folder), "--prompt", "a red disc", "--prompt", "a blue square", "--quiet"]) == 0
    first = _record(folder)["result"]["rounds"][0]
    assert [c["prompt"] for c in first["candidates"]] == ["a red disc", "a blue square"]
    assert _record(folder)["result"]["reviews"][0]["after"] == {"prompts": ["a red disc", "a blue square"]}


def test_a_pause_with_json_keeps_stdout_json_and_says_the_rest_on_stderr(reference, tmp_path, capsys):
    folder = tmp_path / "run"
    assert main(["run", reference, *SANDBOX, "--review", "prompt", "--json", "--out", str(folder)]) == 3
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["review"]["round"] == 1 and not result["finished"] and result["folder"] == str(folder)
    assert "Paused for review: the prompts before round 1." in captured.err
    assert main(["run", "--resume", str(folder)]) == 3  # run --resume DIR says what is pending too
    assert "waits for an answer" in capsys.readouterr().err
