"""The console script: a Ctrl-C while the command's modules still load ends with one line and exit 130."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.signals import spawn

# The child says when the entry point is in place, then loads the command (a few hundred ms).
_CHILD = (
    "import sys; from imagerepainter.cli.console import main; print('ready', flush=True); "
    "raise SystemExit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_ctrl_c_while_the_command_loads_prints_one_line(delay: float) -> None:
    child = spawn([sys.executable, "-c", _CHILD, "backends"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(delay)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert "Traceback" not in err, err
    if child.returncode == 0:  # the command finished before the signal arrived: nothing to check
        pytest.skip("the command finished before the signal")
    assert child.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted"), err


def test_the_console_script_is_the_guarded_entry_point() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "imagerepainter"]
    assert script.value == "imagerepainter.cli.console:main"
