"""Ctrl-C at any point of a command-line run prints one line, never a traceback, and the folder resumes.

Each child is a real ``imagerepainter run`` (the sandbox backends, a small reference) started the
way the console script starts it; one SIGINT lands at a random moment between the run folder's
creation and the end of the run (a run is timed first, on this machine, now).
``IMAGEREPAINTER_SOAK_RUNS`` sets how many (12 by default, about a minute; 100 for a soak run by
hand). The children are started with SIGINT ignored in this process, as a shell's background job
would start them: :func:`tests.signals.spawn` gives them Ctrl-C back.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from imagerepainter.cli.main import main
from imagerepainter.sandbox import random_scene, render_scene
from tests.signals import as_a_background_job, spawn

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("IMAGEREPAINTER_SOAK_RUNS", "12"))
CONSOLE_SCRIPT = "import sys; from imagerepainter.cli.main import main; sys.exit(main())"  # what pip's script runs
SETTINGS = ["--mllm", "sandbox", "--t2i", "sandbox", "--scorer", "sandbox", "--max-rounds", "3", "--quiet"]


def _interrupt_once(reference: Path, folder: Path, delay: float | None) -> tuple[int | None, str]:
    """Start a run, send SIGINT ``delay`` seconds after its folder appears (``None``: no signal, time the
    run instead); its exit code and stderr, or the seconds from the folder's creation to the exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", CONSOLE_SCRIPT, "run", str(reference), *SETTINGS, "--out", str(folder)]
    with as_a_background_job():
        proc = spawn(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not folder.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        appeared = time.monotonic()
        if delay is not None:
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)  # if it has ended meanwhile, nothing is sent
        _, err = proc.communicate(timeout=60)
        if delay is None:
            return proc.returncode, f"{time.monotonic() - appeared:.3f}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return proc.returncode, err


def _status(folder: Path) -> str | None:
    record = folder / "run.json"
    return json.loads(record.read_text())["status"] if record.exists() else None


def _problem(code: int | None, err: str, folder: Path) -> str | None:
    """What went wrong with one interrupted run, or ``None``.

    Three outcomes are right: the run finished first (exit 0; or the signal landed while the
    finished process was exiting, which the shell reports as a Ctrl-C: -SIGINT, nothing printed);
    the run stopped before anything was paid for (exit 130, ``interrupted``, no folder left); or
    it stopped with work done (exit 130, the line naming ``resume``, and ``resume`` finishes it).
    """
    if code in (0, -signal.SIGINT) and not err and _status(folder) == "finished":
        return None
    if code != 130:
        return f"exit {code}, run.json says {_status(folder)}: {err!r}"
    if err == "interrupted\n":
        return None if not folder.exists() else "said nothing was kept, but left the folder"
    if err != f"interrupted; continue with: imagerepainter resume {folder}\n":
        return f"printed more than the one line: {err!r}"
    if _status(folder) not in ("interrupted", "finished"):  # finished: the signal landed as the run closed
        return f"exit 130, but run.json says {_status(folder)}"
    if main(["resume", str(folder), "--quiet"]) != 0 or _status(folder) != "finished":
        return "resume did not finish the run"
    return None


def test_ctrl_c_at_random_points_prints_one_line_and_the_folder_resumes(tmp_path, capsys):
    reference = tmp_path / "ref.png"
    render_scene(random_scene(3), 64, 64, seed=3).save(reference)
    code, seconds = _interrupt_once(reference, tmp_path / "timed", None)
    assert code == 0
    window = 0.8 * float(seconds)  # most of a run on this machine, now: the signals land anywhere in it
    rng = random.Random(int(os.environ.get("IMAGEREPAINTER_SOAK_SEED", "17")))
    problems, interrupted = [], 0
    for i in range(RUNS):
        folder = tmp_path / f"run{i}"
        delay = rng.uniform(0.0, window)
        code, err = _interrupt_once(reference, folder, delay)
        interrupted += code == 130
        if problem := _problem(code, err, folder):
            problems.append(f"run {i} (SIGINT {delay:.3f} s after the folder appeared): {problem}")
    capsys.readouterr()
    assert not problems, f"{len(problems)} of {RUNS} Ctrl-Cs went wrong:\n" + "\n".join(problems)
    assert interrupted >= RUNS // 3, f"only {interrupted} of {RUNS} signals landed during a run"
    print(f"{RUNS} Ctrl-Cs, {interrupted} during a run, no traceback")  # shown with -s


def test_a_child_started_from_a_background_job_still_stops_on_ctrl_c():
    with as_a_background_job():
        child = "import time; print('ready', flush=True); time.sleep(60)"
        proc = spawn([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) != 0  # KeyboardInterrupt: it did not sleep on
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
