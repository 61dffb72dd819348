"""Packaging promises: a light import, errors that name the missing extra, README and CI in step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from imagerepainter import Repainter
from imagerepainter.results import RepaintResult
from imagerepainter.testing import FakeMLLM, FakeT2I, ScriptedScorer

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_is_light_and_fast():
    out = _python(
        "import time, sys; t = time.perf_counter(); import imagerepainter; dt = time.perf_counter() - t; "
        "import json; print(json.dumps({'seconds': dt, 'heavy': [m for m in ('torch', 'diffusers', 'transformers', "
        "'torchmetrics', 'langchain_openai', 'openai', 'langgraph') if m in sys.modules]}))"
    )
    report = json.loads(out)
    assert report["heavy"] == []
    assert report["seconds"] < 0.5


def test_a_missing_extra_names_the_pip_install():
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('diffusers', 'langchain_openai'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from imagerepainter.backends import resolve_t2i, resolve_mllm\n"
        "from imagerepainter.errors import MissingDependencyError\n"
        "for fn, spec in ((resolve_t2i, 'diffusers:stabilityai/sdxl-turbo'), (resolve_mllm, 'openai:gpt-4o')):\n"
        "    try:\n"
        "        fn(spec)\n"
        "    except MissingDependencyError as exc:\n"
        "        print(exc)\n"
    )
    lines = _python(blocker).strip().splitlines()
    assert 'pip install "imagerepainter[diffusers]"' in lines[0]
    assert 'pip install "imagerepainter[openai]"' in lines[1]


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    command = section.split("```bash", 1)[1].split("```", 1)[0].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert command in ci.splitlines()


def test_result_saves_and_reloads(tmp_path):
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([i / 10 for i in range(9)]), max_rounds=3)
    result = rp.run(Image.new("RGB", (32, 32), "white"))
    result.save(tmp_path / "run")
    again = RepaintResult.load(tmp_path / "run")
    assert again.model_dump(mode="json") == result.model_dump(mode="json")
    assert np.array_equal(np.asarray(again.best.image), np.asarray(result.best.image))
    assert again.config == result.config and again.stop_reason == result.stop_reason


def _photograph_like(seed: int) -> Image.Image:
    """Soft gradients, blurred blobs and sensor-like noise: what a photograph has and a sandbox scene lacks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256] / 255.0
    pixels = np.stack([x, y, (x + y) / 2], -1) * rng.uniform(80, 200, 3) + rng.uniform(0, 50, 3)
    for _ in range(6):
        cy, cx, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        weight = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))[..., None]
        pixels = pixels * (1 - weight) + weight * rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 18, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))


def test_readme_says_sandbox_scores_on_photographs_are_a_smoke_test_and_they_are():
    """The README's "any photograph works too" warns that the sandbox draws flat shapes; the scores show why."""
    from imagerepainter.sandbox import random_scene, render_scene

    readme = (ROOT / "README.md").read_text()
    after = readme.split("Any photograph works too", 1)[1].split("## ", 1)[0]
    assert "flat shapes" in after and "smoke test" in after
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=4)
    photographs = [rp.run(_photograph_like(seed)).best.score for seed in range(3)]
    scenes = [rp.run(render_scene(random_scene(seed), seed=10_000 + seed)).best.score for seed in range(3)]
    assert max(photographs) < 0.7 and min(scenes) > 0.9  # the ranges the README gives
