"""``imagerepainter eval`` and ``imagerepainter leaderboard`` end to end, on EvalRef-100 with sandbox models."""

from __future__ import annotations

import sqlite3

import pytest

from imagerepainter.bench.cli import CounterLine
from imagerepainter.bench.runner import ProgressEvent
from imagerepainter.cli import main

FAST = ["--metrics", "sandbox", "--max-rounds", "2", "--variants", "2", "--height", "64", "--width", "64"]


def _count(out, where="1=1"):
    with sqlite3.connect(out / "results.sqlite") as db:
        return db.execute(f"SELECT COUNT(*) FROM cases WHERE {where}").fetchone()[0]


def test_eval_on_evalref_then_resume_then_add_a_model(evalref_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    base = ["eval", str(evalref_dir), "--mllm", "sandbox", "--limit", "2", *FAST, "--out", str(out)]
    assert main([*base, "--t2i", "a=sandbox", "--t2i", "b=sandbox?jitter=0.05", "--category", "portrait"]) == 0
    err = capsys.readouterr().err
    assert "licence CC-BY-NC 4.0" in err and "8 cases computed (0 failed)" in err and "2 descriptions computed" in err
    assert _count(out) == 8 and _count(out, "status = 'ok'") == 8
    with sqlite3.connect(out / "results.sqlite") as db:
        refs = {r[0] for r in db.execute("SELECT reference_id FROM cases")}
    assert refs == {"portrait_1.png", "portrait_10.png"}  # the category, then the limit

    assert main([*base, "--t2i", "a=sandbox", "--t2i", "b=sandbox?jitter=0.05", "--category", "portrait"]) == 0
    assert "0 cases computed (0 failed), 8 already done" in capsys.readouterr().err

    more = ["--t2i", "a=sandbox", "--t2i", "b=sandbox?jitter=0.05", "--t2i", "c=sandbox?noise=6"]
    assert main([*base, *more, "--category", "portrait", "--mode", "single", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "2 cases computed (0 failed), 4 already done; 0 descriptions computed, 2 reused" in err

    reports = {name: out / f"leaderboard.{name}" for name in ("csv", "md", "html")}
    assert all(path.is_file() for path in reports.values())
    page = reports["html"].read_text()  # the image grid shows each reference beside the models' best
    assert "image unavailable" not in page and page.count("data:image/") >= 2 * 3
    reports["csv"].unlink()
    assert main(["leaderboard", str(out)]) == 0  # rebuilt from results.sqlite alone
    rows = reports["csv"].read_text().splitlines()
    assert rows[0].startswith("model,mode,group,n,mean,std,ci_low,ci_high")
    groups = {tuple(r.split(",")[:3]) for r in rows[1:]}
    assert {("c", "single", "all"), ("a", "repaint", "category:portrait")} <= groups


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--t2i", "nameless"], "--t2i takes NAME=SPEC"),
        (["--t2i", "a=sandbox", "--t2i", "a=sandbox"], "given twice"),
        (["--t2i", "a=nosuchbackend"], "Unknown text-to-image backend"),
        (["--t2i", "a=sandbox", "--mode", "single,twice"], "modes must be among"),
        (["--t2i", "a=sandbox", "--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--t2i", "a=sandbox", "--category", "cartoons"], "has category 'cartoons'"),
    ],
)
def test_eval_errors_are_one_line_and_exit_2(evalref_dir, tmp_path, capsys, args, message):
    code = main(
        ["eval", str(evalref_dir), "--mllm", "sandbox", *FAST, "--limit", "1", "--out", str(tmp_path / "o"), *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and message in err[-1]


def test_eval_of_a_missing_dataset_and_leaderboard_of_an_empty_folder(tmp_path, capsys):
    assert (
        main(["eval", str(tmp_path / "nope"), "--mllm", "sandbox", "--t2i", "a=sandbox", "--out", str(tmp_path)]) == 2
    )
    assert "is not a folder, a JSONL manifest or a named set" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "holds no results.sqlite" in capsys.readouterr().err


def test_counter_line_without_tqdm_shows_counts_and_eta(capsys):
    import io

    stream = io.StringIO()
    line = CounterLine(stream)
    line(ProgressEvent(done=0, total=4, skipped=2, failed=0))
    line(ProgressEvent(done=1, total=4, skipped=2, failed=1))
    text = stream.getvalue().splitlines()
    assert text[0].startswith("cases 0/4 (2 already done, 0 failed)") and text[0].endswith("ETA ?")
    assert text[1].startswith("cases 1/4 (2 already done, 1 failed)") and "ETA " in text[1] and "ETA ?" not in text[1]


def test_per_category_gives_a_leaderboard_row_per_category(evalref_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", str(evalref_dir), "--mllm", "sandbox", "--t2i", "a=sandbox", "--mode", "single", *FAST]
    assert main([*args, "--per-category", "1", "--out", str(out), "--quiet"]) == 0
    assert "4 cases computed (0 failed)" in capsys.readouterr().err
    groups = {line.split(",")[2] for line in (out / "leaderboard.csv").read_text().splitlines()[1:]}
    assert {f"category:{c}" for c in ("complex", "object", "portrait", "scene")} <= groups
