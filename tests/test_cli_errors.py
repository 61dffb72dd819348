"""The command line's edges: folder claiming, checks before anything is created, one-line errors.

Every run here uses the sandbox backends and stops after a round or two, so each test takes
about a second; the few subprocess tests exist because the behaviour is per process (signals,
processes racing for a folder, a read that would block).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from imagerepainter import Repainter
from imagerepainter.backends import registry
from imagerepainter.cli.main import main
from imagerepainter.errors import ConfigurationError
from imagerepainter.runs.folder import BackendSpecs, RunFolder
from imagerepainter.sandbox import SandboxMLLM, SandboxScorer, random_scene, render_scene
from tests.signals import spawn

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = ["--mllm", "sandbox", "--t2i", "sandbox"]
SPECS = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _child(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )


# ----------------------------------------------------------------------------- claiming a folder

# Each child freezes the clock the default folder name comes from, then waits until all are
# ready, so they pick the same name at the same moment.
_RACER = """
import sys, time
from pathlib import Path
from datetime import datetime
import imagerepainter.cli.main as cli

class Frozen(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 1, 2, 3, 4, 5)

cli.datetime = Frozen
import imagerepainter.runs.folder, imagerepainter.repainter, langgraph.checkpoint.sqlite  # warm imports
Path(f"ready-{sys.argv[2]}").touch()
while len(list(Path().glob("ready-*"))) < int(sys.argv[3]):
    time.sleep(0.005)
sys.exit(cli.main(["run", sys.argv[1], "--mllm", "sandbox", "--t2i", "sandbox", "--quiet", "--max-rounds", "1",
                   "--seed", sys.argv[2]]))
"""


def test_runs_started_at_the_same_moment_each_claim_their_own_default_folder(tmp_path, evalref_dir):
    n = 4
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reference = str(evalref_dir / "scene_1.png")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, reference, str(seed), str(n)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(1, n + 1)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * n, [err for _, err in outs]
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert folders == ["scene_1-20260102-030405", *(f"scene_1-20260102-030405-{i}" for i in range(2, n + 1))]
    seeds = set()
    for name in folders:  # every result is there, complete, in its own folder
        record = json.loads((tmp_path / "runs" / name / "run.json").read_text())
        assert record["status"] == "finished" and (tmp_path / "runs" / name / "reference.png").is_file()
        seeds.add(record["overrides"]["seed"])
        assert not list((tmp_path / "runs" / name).glob("*.tmp"))
    assert seeds == set(range(1, n + 1))
    printed = {line.split(": ", 1)[1] for out, _ in outs for line in out.splitlines() if line.startswith("Run folder")}
    assert printed == {str(Path("runs") / name) for name in folders}  # each process reports its own folder


def test_an_out_folder_claimed_by_another_run_in_the_meantime_is_refused(tmp_path, monkeypatch):
    """Simulate the race: another run writes run.json while this one is writing its reference."""
    folder = tmp_path / "out"
    theirs = '{"status": "running", "thread_id": "theirs"}'
    real_save = type(render_scene(random_scene(1))).save

    def save_then_lose_the_race(self: Any, fp: Any, *args: Any, **kwargs: Any) -> None:
        real_save(self, fp, *args, **kwargs)
        if str(fp).endswith(".tmp") and not (folder / "run.json").exists():
            (folder / "run.json").write_text(theirs)

    monkeypatch.setattr("PIL.Image.Image.save", save_then_lose_the_race)
    with pytest.raises(ConfigurationError, match="Another run claimed the run folder"):
        RunFolder(folder).run(SPECS, render_scene(random_scene(1)), overrides={"max_rounds": 1})
    assert (folder / "run.json").read_text() == theirs  # the winner's record is untouched
    assert [p.name for p in folder.iterdir()] == ["run.json"]  # and the loser's temporary files are gone


def test_a_default_folder_that_is_taken_gets_the_next_free_name(tmp_path, monkeypatch, capsys):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr("imagerepainter.cli.main.datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    (tmp_path / "runs" / "ref-20260102-030405-2").mkdir(parents=True)  # a stray empty folder is skipped too
    for _ in range(2):
        assert main(["run", "ref.png", *SANDBOX, "--quiet", "--max-rounds", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "ref-20260102-030405",
        "ref-20260102-030405-2",
        "ref-20260102-030405-3",
    ]
    assert not any((tmp_path / "runs" / "ref-20260102-030405-2").iterdir())
    out = capsys.readouterr().out
    assert "runs/ref-20260102-030405\n" in out and "runs/ref-20260102-030405-3\n" in out


# ----------------------------------------------------------------------------- checks before creating


@pytest.mark.parametrize(
    "flags",
    [
        ["--variants", "0"],
        ["--max-rounds", "0"],
        ["--height", "100000"],
        ["--prompt", ""],
        ["--prompt", "   "],
        ["--max-reference-pixels", "100"],
    ],
)
def test_invalid_settings_are_refused_before_anything_is_created(tmp_path, capsys, flags):
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    assert main(["run", str(tmp_path / "ref.png"), *SANDBOX, "--out", str(tmp_path / "o"), *flags]) == 2
    _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()
    if flags[0] != "--max-reference-pixels":  # a run option only
        assert main(["demo", "--out", str(tmp_path / "d"), *flags]) == 2
        _one_line_error(capsys.readouterr().err)
        assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "ref.png", "--seed", "-5"],
        ["demo", "--seed", "4294967296"],
        ["demo", "--seed", "-1"],
        ["run", "ref.png", "--target-score", "nan"],
        ["demo", "--target-score", "inf"],
        ["run", "ref.png", "--out", ""],
        ["serve-sandbox", "--port", "99999"],
        ["serve-sandbox", "--port", "-1"],
    ],
)
def test_out_of_range_arguments_are_usage_errors(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    with pytest.raises(SystemExit) as exc:
        main([*argv, *(SANDBOX if argv[0] == "run" else [])])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: imagerepainter {argv[0]}" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_run_that_fails_before_anything_was_paid_for_leaves_nothing_behind(tmp_path):
    class UnloadableScorer(SandboxScorer):
        def load(self) -> None:
            raise ConfigurationError("the scorer's model is not on this machine")

    calls: list[str] = []

    class CountingMLLM(SandboxMLLM):
        def structured(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("call")
            return super().structured(*args, **kwargs)

    def build(**kwargs: Any) -> Repainter:
        return Repainter(**{**kwargs, "scorer": UnloadableScorer(), "mllm": CountingMLLM()})

    reference = render_scene(random_scene(2))
    new, empty = tmp_path / "new", tmp_path / "empty"
    empty.mkdir()
    for folder in (new, empty):
        with pytest.raises(ConfigurationError, match="not on this machine"):
            RunFolder(folder).run(SPECS, reference, build=build)
    assert not calls
    assert not new.exists()  # created by the run: removed
    assert empty.is_dir() and not any(empty.iterdir())  # given empty: emptied again
    result = RunFolder(empty).run(SPECS, reference, overrides={"max_rounds": 1})  # the same folder works now
    assert result.rounds


def test_a_run_that_fails_after_paid_calls_keeps_its_folder(tmp_path):
    def broken_renderer(**kwargs: Any) -> Repainter:
        def render(prompt: str, *, seed: int, **_: Any) -> Any:
            raise RuntimeError("the GPU fell over")

        return Repainter(**{**kwargs, "t2i": render})

    folder = tmp_path / "paid"
    with pytest.raises(Exception, match="GPU fell over"):
        RunFolder(folder).run(SPECS, render_scene(random_scene(2)), build=broken_renderer)
    record = json.loads((folder / "run.json").read_text())  # the description was paid for: kept
    assert record["status"] == "failed" and record["result"]["usage"]["mllm_calls"] > 0


@pytest.mark.parametrize("kind", ["file", "below a file", "unwritable"])
def test_out_paths_that_cannot_be_run_folders_are_one_line_errors(tmp_path, capsys, kind):
    (tmp_path / "afile").write_text("x")
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    out = {"file": tmp_path / "afile", "below a file": tmp_path / "afile" / "sub", "unwritable": Path("/proc/nope")}
    assert main(["run", str(tmp_path / "ref.png"), *SANDBOX, "--out", str(out[kind])]) == 2
    assert str(out[kind]) in _one_line_error(capsys.readouterr().err)
    assert (tmp_path / "afile").read_text() == "x"


def test_references_that_are_not_regular_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    for reference in (tmp_path / "fifo.png", Path("/dev/zero")):
        out = _child("-m", "imagerepainter.cli.main", "run", str(reference), *SANDBOX, "--out", "o", cwd=tmp_path)
        assert out.returncode == 2 and "not a regular file" in _one_line_error(out.stderr)
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"status": "running"}'])
def test_resume_of_an_unreadable_run_json_is_a_one_line_error(tmp_path, capsys, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(content)
    assert main(["resume", str(tmp_path / "run")]) == 2
    assert "not a readable run folder" in _one_line_error(capsys.readouterr().err)


def test_resume_of_a_run_that_stopped_before_it_started_says_so(tmp_path, capsys):
    folder = tmp_path / "early"
    folder.mkdir()
    render_scene(random_scene(1)).save(folder / "reference.png.0123abcd.tmp", format="PNG")  # killed here
    assert main(["resume", str(folder)]) == 2
    assert "stopped before it started" in _one_line_error(capsys.readouterr().err)
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    assert main(["run", str(tmp_path / "ref.png"), *SANDBOX, "--out", str(folder), "--quiet", "--max-rounds", "1"]) == 0


def test_run_with_resume_refuses_flags_it_would_ignore(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet", "--max-rounds", "1"]) == 0
    with pytest.raises(SystemExit) as exc:
        main(["run", str(tmp_path / "ref.png"), "--resume", str(tmp_path / "d"), "--seed", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: imagerepainter run" in err and "REFERENCE, --seed" in err
    assert main(["run", "--resume", str(tmp_path / "d"), "--quiet", "--json"]) == 0  # what makes sense still works
    assert json.loads(capsys.readouterr().out)["folder"] == str(tmp_path / "d")


def test_run_without_a_reference_shows_the_run_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", *SANDBOX])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: imagerepainter run") and "run needs a REFERENCE" in err


# ----------------------------------------------------------------------------- messages, signals


def test_interrupt_and_failure_messages_name_the_run_folder(tmp_path, monkeypatch, capsys):
    from imagerepainter.cli import main as cli
    from imagerepainter.errors import GenerationError

    for raised, code, status in ((KeyboardInterrupt(), 130, "interrupted"), (GenerationError("boom"), 1, "failed")):
        folder = tmp_path / f"folder {status}"  # a space: the printed command must still paste

        def stop(self: Any, event: Any, raised: BaseException = raised) -> None:
            if event.kind == "round":
                raise raised

        monkeypatch.setattr(cli.Progress, "__call__", stop)
        assert main(["demo", "--seed", "5", "--out", str(folder)]) == code
        err = capsys.readouterr().err
        assert f"imagerepainter resume '{folder}'" in err and "<run folder>" not in err
        assert json.loads((folder / "run.json").read_text())["status"] == status


_SLOW_CHILD = """
import sys, time
from imagerepainter.cli.main import main
from imagerepainter.sandbox import SandboxT2I

render = SandboxT2I.generate
SandboxT2I.generate = lambda self, requests: (time.sleep(0.3), render(self, requests))[1]
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_marks_the_run_interrupted_and_exits_143(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", _SLOW_CHILD, "demo", "--seed", "3", "--out", "d", "--quiet"]
    proc = spawn(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "d" / "run.json").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # mid-run: a round renders for 0.3 s or more
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM; continue with: imagerepainter resume d" in err and "Traceback" not in err
    assert json.loads((tmp_path / "d" / "run.json").read_text())["status"] == "interrupted"
    assert main(["resume", str(tmp_path / "d"), "--quiet"]) == 0
    assert json.loads((tmp_path / "d" / "run.json").read_text())["status"] == "finished"


def test_serve_sandbox_on_a_port_in_use_says_so(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve-sandbox", "--port", str(taken.getsockname()[1])]) == 2
    assert "already in use" in _one_line_error(capsys.readouterr().err)


# ----------------------------------------------------------------------------- base URL, demo record


@pytest.fixture
def fake_openai_mllm() -> Any:
    """Replace the 'openai' MLLM provider by one that records its options and answers as the sandbox."""
    received: dict[str, Any] = {}

    def fake_openai(model: str | None, *, base_url: str | None = None) -> SandboxMLLM:
        received.update(base_url=base_url)
        return SandboxMLLM()

    previous = registry.register_entry(registry.BackendEntry("mllm", "openai", fake_openai))
    try:
        yield received
    finally:
        assert previous is not None
        registry.register_entry(previous)


def test_base_url_reaches_the_backend_intact_and_is_recorded(tmp_path, fake_openai_mllm):
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    url = "http://127.0.0.1:8765/v1?x=1&y=a+b%20c"
    argv = ["run", str(tmp_path / "ref.png"), "--mllm", "openai:sandbox", "--base-url", url, "--t2i", "sandbox"]
    assert main([*argv, "--scorer", "sandbox", "--out", str(tmp_path / "o"), "--quiet", "--max-rounds", "1"]) == 0
    assert fake_openai_mllm == {"base_url": url}  # not cut at "&", no stray option "y"
    spec = json.loads((tmp_path / "o" / "run.json").read_text())["specs"]["mllm"]
    assert registry.parse_spec(spec)[2] == {"base_url": url}  # resume rebuilds the same backend


@pytest.mark.parametrize(
    "url",
    ["http://user:hunter2pw@127.0.0.1:8765/v1", "http://127.0.0.1:8765/v1?key=hunter2pw", "https://h/v1?api_key=x1"],
)
def test_credentials_in_the_base_url_are_refused_and_never_saved(tmp_path, capsys, url):
    render_scene(random_scene(1)).save(tmp_path / "ref.png")
    argv = ["run", str(tmp_path / "ref.png"), "--mllm", "openai:gpt-4o", "--base-url", url, "--t2i", "sandbox"]
    assert main([*argv, "--scorer", "sandbox", "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "OPENAI_API_KEY" in line and "hunter2pw" not in line
    assert not (tmp_path / "o").exists()


def test_the_demo_records_its_hidden_scene(tmp_path):
    assert main(["demo", "--seed", "7", "--out", str(tmp_path / "d"), "--quiet", "--max-rounds", "1"]) == 0
    record = json.loads((tmp_path / "d" / "run.json").read_text())
    assert record["demo"] == {"seed": 7, "scene": random_scene(7).to_prompt()}


# ----------------------------------------------------------------------------- docs generator


def test_gen_cli_docs_checks_without_writing(tmp_path):
    page = ROOT / "docs" / "cli.md"
    before = page.read_text()
    assert _child("scripts/gen_cli_docs.py", "--help", cwd=ROOT).returncode == 0
    assert page.read_text() == before  # --help no longer rewrites the page
    assert _child("scripts/gen_cli_docs.py", "--check", cwd=ROOT).returncode == 0, "run scripts/gen_cli_docs.py"
    stale = tmp_path / "cli.md"
    stale.write_text(before + "\nedited by hand\n")
    out = _child("scripts/gen_cli_docs.py", "--check", "--target", str(stale), cwd=ROOT)
    assert out.returncode == 1 and "out of date" in out.stderr
    assert stale.read_text() == before + "\nedited by hand\n"
