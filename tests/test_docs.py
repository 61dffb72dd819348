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


def test_the_api_guides_examples_run_in_order(tmp_path, monkeypatch):
    """docs/api.md promises examples that run: each Python block, in order, in one namespace."""
    import re

    from imagerepainter.sandbox import random_scene, render_scene

    monkeypatch.chdir(tmp_path)
    render_scene(random_scene(4)).save(tmp_path / "photo.png")  # the file the Images example reads
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)
    assert len(blocks) >= 8
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)
