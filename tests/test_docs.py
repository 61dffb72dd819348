"""The documentation builds without warnings (API pages come from the docstrings)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("mkdocs") is None and not Path(sys.prefix, "bin", "mkdocs").exists(),
    reason='mkdocs is not installed: pip install -e ".[docs]"',
)
def test_mkdocs_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.prefix, "bin", "mkdocs"))
    out = subprocess.run(
        [mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "decide_stop" in api and "RepaintResult" in api
