"""The Ray executor writes the same database rows as the local one (on a small local Ray instance)."""

from __future__ import annotations

import pytest

from imagerepainter.sandbox import random_scene, render_scene

ray = pytest.importorskip("ray", reason='ray is not installed: pip install "imagerepainter[ray]"')

pytestmark = pytest.mark.slow

SETTINGS = {"max_rounds": 2, "variants": 2, "height": 64, "width": 64}
MODELS = {"a": "sandbox", "b": "sandbox?jitter=0.02"}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _comparable(cases):
    keep = ("status", "metrics", "best_prompt", "rounds", "images", "mllm_calls", "input_tokens", "stop_reason", "seed")
    return {c.case_id: {k: getattr(c, k) for k in keep} | {"scores": c.extra["scores_per_round"]} for c in cases}


def test_ray_executor_gives_the_same_rows_as_the_local_one(local_ray, tmp_path):
    from imagerepainter.bench.ray_executor import RayExecutor
    from imagerepainter.bench.runner import evaluate

    data = tmp_path / "scenes"
    data.mkdir()
    for i in range(2):
        render_scene(random_scene(i), 96, 96).save(data / f"scene_{i}.png")
    kw = {"mllm": "sandbox", "models": MODELS, "metrics": ["sandbox"], "settings": SETTINGS}
    local = evaluate(data, out=tmp_path / "local", **kw)
    remote = evaluate(data, out=tmp_path / "ray", executor=RayExecutor(num_actors=2), **kw)
    assert remote.computed == 8 and remote.failed == 0 and remote.descriptions_computed == 2
    assert _comparable(remote.cases) == _comparable(local.cases)
    for case in remote.cases:  # the best images came back into the output folder
        assert (remote.out / case.best_image).read_bytes() == (local.out / case.best_image).read_bytes()
    again = evaluate(data, out=tmp_path / "ray", executor=RayExecutor(num_actors=2), **kw)
    assert again.computed == 0  # resumable like a local run
