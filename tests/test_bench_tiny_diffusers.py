"""A real (tiny, random-weight) diffusers pipeline evaluated beside a sandbox model."""

from __future__ import annotations

import pytest

from imagerepainter.sandbox import random_scene, render_scene

pytestmark = pytest.mark.slow


def test_tiny_diffusers_pipeline_in_an_evaluation(tiny_sd_dir, tmp_path):
    from imagerepainter.bench.runner import evaluate

    data = tmp_path / "scenes"
    data.mkdir()
    for i in range(2):
        render_scene(random_scene(i), 64, 64).save(data / f"scene_{i}.png")
    models = {"tiny": f"diffusers:{tiny_sd_dir}", "sandbox": "sandbox"}
    settings = {"max_rounds": 2, "variants": 2, "height": 64, "width": 64, "num_inference_steps": 2}
    report = evaluate(
        data, mllm="sandbox", models=models, metrics=["sandbox", "psnr"], settings=settings, out=tmp_path / "o"
    )
    assert report.computed == 8 and report.failed == 0, [c.error for c in report.cases]
    tiny = [c for c in report.cases if c.model == "tiny"]
    assert {c.model_spec for c in tiny} == {f"diffusers:{tiny_sd_dir}"}
    assert all(set(c.metrics) == {"sandbox", "psnr"} and c.higher_is_better["psnr"] for c in tiny)
    assert all((report.out / c.best_image).is_file() for c in tiny)
    # the same references, seeds and prompts, different renderers: different images
    sandbox = {(c.reference_id, c.mode): c for c in report.cases if c.model == "sandbox"}
    assert all(c.metrics != sandbox[(c.reference_id, c.mode)].metrics for c in tiny)
