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


def _python_blocks(page: str, section: str) -> list[str]:
    """The Python code blocks of one ``## section`` of a docs page."""
    import re

    text = (ROOT / "docs" / page).read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_embedding_guides_agent_recipe_is_the_example_that_runs():
    """docs/embedding.md shows as_tool() inside create_agent as code that runs offline: examples/agent_tool.py."""
    recipe = [block for block in _python_blocks("embedding.md", "As a tool") if "create_agent(" in block]
    assert len(recipe) == 1
    example = (ROOT / "examples" / "agent_tool.py").read_text()
    assert example.endswith("from __future__ import annotations\n\n" + recipe[0])  # tests/test_examples.py runs it


def test_the_serving_guide_installs_from_a_clone_and_uses_the_address_langgraph_dev_printed():
    text = (ROOT / "docs" / "embedding.md").read_text().split("## Serving with langgraph dev", 1)[1]
    assert 'pip install -e ".[serve]"' in text and "already in use" in text
    client = next(
        block for block in _python_blocks("embedding.md", "Serving with langgraph dev") if "get_sync_client" in block
    )
    assert 'get_sync_client(url=os.environ.get("LANGGRAPH_URL"' in client  # tests/test_serve_dev.py runs this block
