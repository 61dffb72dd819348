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


def test_max_concurrency_is_honoured_without_a_gpu(local_ray):
    from imagerepainter.bench.engine import WorkerSpec
    from imagerepainter.bench.ray_executor import RayExecutor

    spec = WorkerSpec(mllm="sandbox", models=MODELS, scorer="sandbox", metrics=["sandbox"], config={})
    actors, per_actor = RayExecutor(max_concurrency=6)._actors(ray, spec)
    try:  # one CPU actor (the cluster has no GPU) running all six cases at once, not two
        assert (len(actors), per_actor) == (1, 6)
    finally:
        for actor in actors:
            ray.kill(actor)


def test_a_model_that_fails_to_load_behaves_as_in_a_local_run(local_ray, tmp_path):
    pytest.importorskip("diffusers")
    from imagerepainter.bench.ray_executor import RayExecutor
    from imagerepainter.bench.runner import evaluate

    data = tmp_path / "scenes"
    data.mkdir()
    for i in range(2):
        render_scene(random_scene(i), 96, 96).save(data / f"scene_{i}.png")
    (tmp_path / "empty").mkdir()
    models = {"broken": f"diffusers:{tmp_path / 'empty'}", "a": "sandbox"}
    kw = {"mllm": "sandbox", "models": models, "metrics": ["sandbox"], "settings": SETTINGS, "max_concurrency": 1}
    local = evaluate(data, out=tmp_path / "local", **kw)
    remote = evaluate(data, out=tmp_path / "ray", executor=RayExecutor(max_concurrency=1), **kw)
    for report in (local, remote):
        assert [(c.model, c.status) for c in report.cases if c.model == "broken"].count(("broken", "failed")) == 1
        assert report.breaker_skipped == 3 and set(report.stopped_models) == {"broken"}
        assert all(c.status == "ok" for c in report.cases if c.model == "a")
    assert {c.case_id: (c.status, c.error) for c in remote.cases} == {
        c.case_id: (c.status, c.error) for c in local.cases
    }


_FRESH_RAY = """
import sys
from imagerepainter.bench.ray_executor import RayExecutor
from imagerepainter.bench.runner import evaluate
report = evaluate(sys.argv[1], mllm="sandbox", models={"a": "sandbox"}, metrics=["sandbox"], out=sys.argv[2],
                  modes=["single"], executor=RayExecutor(init_options={"num_cpus": 1}))
assert report.failed == 0 and report.start_seconds > 0, report
print("start", report.start_seconds)
"""


def test_a_ray_started_for_the_evaluation_warns_of_nothing_and_writes_no_token_at_home(tmp_path):
    import os
    import subprocess
    import sys

    data = tmp_path / "scenes"
    data.mkdir()
    render_scene(random_scene(0), 64, 64).save(data / "scene_0.png")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", _FRESH_RAY, str(data), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "start" in done.stdout
    assert "token authentication" not in (done.stdout + done.stderr).lower()
    assert not (home / ".ray").exists()
