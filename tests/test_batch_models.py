"""A batch over real (tiny, random-weight) models: each model is loaded once and the runs overlap
safely, giving the results of the same runs one by one."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from imagerepainter import Repainter
from imagerepainter.sandbox import random_scene, render_scene

pytestmark = pytest.mark.slow

SETTINGS: dict[str, Any] = {"max_rounds": 2, "patience": None, "height": 64, "width": 64, "num_inference_steps": 2}


def _count_loads(monkeypatch: pytest.MonkeyPatch, loads: Counter[tuple[str, str]], *classes: Any) -> None:
    """Count every ``from_pretrained`` of ``classes`` by (class, folder), then load as usual."""
    for cls in classes:
        original = cls.from_pretrained  # bound to cls

        def counting(_cls: Any, model: Any, *args: Any, _name: str = cls.__name__, _load: Any = original, **kw: Any):
            loads[(_name, os.fspath(model))] += 1
            return _load(model, *args, **kw)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(counting))


def test_a_batch_of_8_at_concurrency_4_loads_each_model_once_and_equals_8_runs_one_by_one(
    monkeypatch: pytest.MonkeyPatch, tiny_sd_dir: Path, tiny_clip_dir: Path, tiny_dinov2_dir: Path
) -> None:
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    loads: Counter[tuple[str, str]] = Counter()
    _count_loads(
        monkeypatch,
        loads,
        diffusers.AutoPipelineForText2Image,
        transformers.CLIPModel,
        transformers.Dinov2Model,
        transformers.AutoImageProcessor,
    )

    def repainter() -> Repainter:
        return Repainter(
            mllm="sandbox",
            t2i=f"diffusers:{tiny_sd_dir}",
            scorer=f"paper?clip_model={tiny_clip_dir}&dinov2_model={tiny_dinov2_dir}",
            **SETTINGS,
        )

    references = [render_scene(random_scene(70 + i), width=64, height=64, seed=i) for i in range(8)]
    rp = repainter()
    generate, lock, active, most = rp.t2i.generate, threading.Lock(), [0], [0]

    def tracked(requests: Any) -> Any:  # how many runs are rendering at once
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return generate(requests)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(rp.t2i, "generate", tracked)
    results = asyncio.run(rp.abatch(references, max_concurrency=4))
    assert 1 < most[0] <= 4  # the runs overlapped, at most 4 at a time
    assert loads == {
        ("AutoPipelineForText2Image", str(tiny_sd_dir)): 1,
        ("CLIPModel", str(tiny_clip_dir)): 1,
        ("AutoImageProcessor", str(tiny_clip_dir)): 1,
        ("Dinov2Model", str(tiny_dinov2_dir)): 1,
        ("AutoImageProcessor", str(tiny_dinov2_dir)): 1,
    }

    alone = repainter()  # other instances of the same models, used by one run at a time
    expected = [alone.run(r, progress=False) for r in references]

    def signature(result: Any) -> list[tuple[int, str, int, float | None]]:
        return [(c.round, c.prompt, c.seed, c.score) for c in result.candidates]

    assert [signature(r) for r in results] == [signature(r) for r in expected]
    assert all(r.finished and len(r.rounds) == 2 for r in results)
    assert len({tuple(signature(r)) for r in results}) == 8  # eight different runs, not one repeated
