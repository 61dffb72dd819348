"""Every example runs offline and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    args = [str(tmp_path / "out")] if path.stem == "quickstart" else []
    out = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    if path.stem == "quickstart":
        assert (tmp_path / "out" / "result.json").exists()
    if path.stem == "agent_tool":  # the agent called the tool and read its answer; the result came as the artifact
        assert "The tool said: Regenerated in 3 rounds" in out.stdout and "artifact: 3 rounds" in out.stdout
