"""``imagerepainter judge`` as a process (URL first, Ctrl-C) and ``judgments import|export`` round trips."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from imagerepainter.cli.main import main
from imagerepainter.human import JudgmentStore
from imagerepainter.human.server import JudgingStudy
from tests import human_eval

evaluation, folder = human_eval.evaluation, human_eval.folder  # the shared fixtures

ROOT = Path(__file__).resolve().parents[1]
CHILD = (
    "import signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell may have ignored it\n"
    "from imagerepainter.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _first_line(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout), "judge printed nothing"
    return proc.stdout.readline().strip()


def test_judge_prints_the_url_first_and_stops_cleanly_on_ctrl_c(folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, "judge", str(folder), "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = _first_line(proc)
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        base, token = url.split("/?token=")
        with urllib.request.urlopen(f"{base}/api/next?token={token}&rater=ann", timeout=10) as r:
            shown = json.loads(r.read())
        body = json.dumps({"pair_id": shown["pair_id"], "rater": "ann", "choice": "right", "seconds": 2}).encode()
        request = urllib.request.Request(f"{base}/api/judgment?token={token}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.loads(r.read())["stored"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and "1 judgments in" in err and err.strip().endswith("interrupted")
    assert token not in err and out == ""  # the token is printed once, on the URL line
    (stored,) = JudgmentStore(folder).judgments()
    assert stored.pair_id == shown["pair_id"] and stored.rater == "ann"


def _judge_some(folder: Path) -> None:
    study = JudgingStudy(folder)
    for rater, choices in (("ann", ["left", "tie", "right"]), ("bob", ["right", "right"])):
        for choice in choices:
            pair = study.next_for(rater, token="t")["pair_id"]
            study.record({"pair_id": pair, "rater": rater, "choice": choice, "seconds": 1.5})


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_then_import_gives_the_same_judgments(folder: Path, tmp_path: Path, suffix: str, capsys) -> None:
    _judge_some(folder)
    file = tmp_path / f"judgments{suffix}"
    assert main(["judgments", "export", str(folder), str(file)]) == 0
    assert f"5 judgments written to {file}" in capsys.readouterr().out
    other = Path(shutil.copytree(folder, tmp_path / "other", ignore=shutil.ignore_patterns("judgments.sqlite")))
    assert main(["judgments", "import", str(other), str(file)]) == 0
    assert "5 judgments imported" in capsys.readouterr().out
    assert JudgmentStore(other).judgments() == JudgmentStore(folder).judgments()


def test_a_bad_import_is_refused_whole_and_says_why(folder: Path, tmp_path: Path, capsys) -> None:
    _judge_some(folder)
    file = tmp_path / "j.csv"
    assert main(["judgments", "export", str(folder), str(file)]) == 0
    lines = file.read_text().splitlines()
    lines[-1] = lines[-1].replace("images/", "../elsewhere/", 1)
    file.write_text("\n".join(lines) + "\n")
    other = Path(shutil.copytree(folder, tmp_path / "other", ignore=shutil.ignore_patterns("judgments.sqlite")))
    assert main(["judgments", "import", str(other), str(file)]) == 2
    err = capsys.readouterr().err
    assert "judgment 5:" in err and "is not a best image" in err and "nothing was imported" in err
    assert JudgmentStore(other).judgments() == []
    file.write_text("reference_id,image_a,image_b,choice\nr,x,y,left\n")
    assert main(["judgments", "import", str(other), str(file)]) == 2
    assert "j.csv:2: choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["judge", "{empty}"], "holds no results.sqlite"),
        (["judge", "{eval}", "--repeat-share", "2"], "within 0 and 1"),
        (["judgments", "export", "{eval}", "{tmp}/x.csv"], "holds no judgments.sqlite yet"),
        (["judgments", "import", "{empty}", "{tmp}/x.csv"], "holds no results.sqlite"),
        (["judgments", "export", "{judged}", "{tmp}/x.txt"], "as .csv or .jsonl"),
    ],
)
def test_judging_commands_fail_in_one_line_with_exit_2(folder, tmp_path, capsys, argv, message) -> None:
    judged = Path(shutil.copytree(folder, tmp_path / "judged"))
    _judge_some(judged)
    names = {"empty": tmp_path / "empty", "eval": folder, "tmp": tmp_path, "judged": judged}
    (tmp_path / "empty").mkdir()
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
