"""Evaluation at scale: models interleaved, renders batched across cases, a failing model cut off.

Stand-in backends with known costs (imagerepainter.testing.standin) and sandbox images; the
figures themselves (busy shares, images per second) are measured in benchmarks/eval_scale.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from imagerepainter.backends.base import GenerationRequest
from imagerepainter.bench.batching import RenderBatcher
from imagerepainter.bench.breaker import BREAKER_THRESHOLD, CircuitBreaker
from imagerepainter.bench.engine import CaseJob, CaseOutcome, failed_case
from imagerepainter.bench.manifest import Reference
from imagerepainter.bench.runner import evaluate
from imagerepainter.bench.scheduler import Lanes, schedule
from imagerepainter.images import image_sha256
from imagerepainter.sandbox import SandboxT2I, random_scene, render_scene
from imagerepainter.testing.standin import StandInT2I, busy_seconds
from tests.batches import wait_until_waiting

SETTINGS = {"max_rounds": 2, "variants": 2, "height": 48, "width": 48}


@pytest.fixture
def scenes(tmp_path) -> Path:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(4):
        render_scene(random_scene(i), 64, 64).save(folder / f"scene_{i}.png")
    return folder


def _run(data, out, models, **kw):
    kw.setdefault("metrics", ["sandbox"])
    kw.setdefault("settings", SETTINGS)
    return evaluate(data, mllm="sandbox", models=models, out=out, **kw)


def _requests(seeds, prompt="a red circle on the left, a blue square on the right"):
    return [GenerationRequest(prompt=prompt, seed=s, width=48, height=48) for s in seeds]


# ----------------------------------------------------------------------------- scheduling


def test_the_next_case_comes_from_the_model_with_the_fewest_cases_running():
    jobs = [type("Job", (), {"model": m, "n": i})() for i, m in enumerate("aaaabb")]
    lanes = Lanes(jobs)
    started = [lanes.take() for _ in range(4)]
    assert [j.model for j in started].count("b") == 2  # b gets its share although a's cases come first
    for job in started:
        lanes.done(job)
    assert [lanes.take().model for _ in range(2)] == ["a", "a"] and lanes.take() is None
    assert lanes.close("a") == []


def test_two_models_render_at_the_same_time(scenes, tmp_path):
    a, b = StandInT2I(a=0.05, b=0.0, name="a"), StandInT2I(a=0.05, b=0.0, name="b")
    report = _run(scenes, tmp_path / "out", {"a": a, "b": b}, modes=["single"], max_concurrency=4)
    assert report.failed == 0
    together = sum(
        max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a.intervals for s2, e2 in b.intervals
    )  # models took turns before: their renders never overlapped
    assert together > 0.5 * min(busy_seconds(a.intervals), busy_seconds(b.intervals))


def test_a_slow_model_does_not_hold_up_the_others(scenes, tmp_path):
    slow, fast = StandInT2I(a=0.4, b=0.0, name="slow"), StandInT2I(a=0.0, b=0.0, name="fast")
    finished: dict[str, list[float]] = {"slow": [], "fast": []}

    def progress(event):
        if event.case is not None:
            finished[event.case.model].append(time.perf_counter())

    _run(scenes, tmp_path / "out", {"slow": slow, "fast": fast}, modes=["single"], max_concurrency=4,
         on_progress=progress)  # fmt: skip
    assert max(finished["fast"]) < min(finished["slow"]) + 0.2  # fast's four cases did not wait for slow's


# ----------------------------------------------------------------------------- batching


def test_merged_renders_give_each_case_the_images_it_would_get_alone():
    alone = [image_sha256(g.image) for g in SandboxT2I().generate(_requests(range(6)))]
    batcher = RenderBatcher(SandboxT2I(), window=0.5, max_batch_size=6)
    got: dict[int, list[str]] = {}

    def case(i):
        with batcher.case():
            images = batcher.generate(_requests([2 * i, 2 * i + 1]))
        got[i] = [image_sha256(g.image) for g in images]

    batcher.window = 60.0  # a loaded machine must not close the batch before every case handed in
    with batcher.case():  # hold the batch open until all three cases are waiting
        threads = [threading.Thread(target=case, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        wait_until_waiting(batcher, 3)
    for t in threads:
        t.join()
    batcher.close()
    assert batcher.calls == 1 and batcher.images == 6  # one backend call for three cases
    assert [h for i in range(3) for h in got[i]] == alone


def test_the_stand_in_renders_within_the_cost_of_its_call():
    """A call costs ``a + b * batch`` seconds with its images made inside it, as a pipeline's are:
    the time recorded as busy is all the call takes."""
    model = StandInT2I(a=0.2, b=0.05, max_batch_size=4)
    prompt = "a red circle, a blue square"
    requests = [GenerationRequest(prompt=prompt, seed=i, width=512, height=512) for i in range(4)]
    before = time.perf_counter()
    images = model.generate(requests)
    took = time.perf_counter() - before
    ((start, end),) = model.intervals
    assert len(images) == 4 and images[0].image.size == (512, 512)
    assert end - start >= model.cost(4)
    assert took - (end - start) < 0.05  # rendering four 512 px images outside the call took about 0.1 s


def test_a_request_handed_in_during_a_call_does_not_wait_a_window_after_it():
    """The window is counted from when a request was handed in: one that waited through a call
    goes next at once, where a window counted from the device's freeing would idle it again."""
    model = StandInT2I(a=1.2, b=0.0, max_batch_size=4)
    batcher = RenderBatcher(model, window=1.0)

    def case(seed: int) -> None:
        with batcher.case():
            batcher.generate(_requests([seed]))

    with batcher.case():  # a case that never hands a render in: only the window closes a batch
        handed_in = time.perf_counter()
        first = threading.Thread(target=case, args=(1,))
        first.start()
        deadline = time.monotonic() + 30
        while not model.batch_sizes and time.monotonic() < deadline:  # the first call has started
            time.sleep(0.01)
        second = threading.Thread(target=case, args=(2,))
        second.start()
        first.join()
        second.join()
    batcher.close()
    (start_1, end_1), (start_2, _) = sorted(model.intervals)
    assert model.batch_sizes == [1, 1]
    assert start_1 - handed_in >= 0.9  # alone and not full: the first request waited its window
    assert start_2 - end_1 < 0.5  # the second had waited 1.2 s during the call: no second window


def test_a_failed_merged_call_fails_every_case_in_it_with_its_own_error():
    batcher = RenderBatcher(StandInT2I(a=0.0, b=0.0, fail="HTTP 500"), window=0.5)
    errors: list[BaseException] = []

    def case():
        with batcher.case():
            try:
                batcher.generate(_requests([1]))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=case) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert len(errors) == 2 and all("HTTP 500" in str(e) for e in errors)
    assert batcher.calls <= 2 and errors[0] is not errors[1]


def test_single_mode_cases_share_pipeline_calls(scenes, tmp_path):
    model = StandInT2I(a=0.1, b=0.0, max_batch_size=4)
    report = _run(scenes, tmp_path / "out", {"m": model}, modes=["single"], max_concurrency=4)
    assert report.failed == 0 and model.images == 4
    assert len(model.batch_sizes) < 4 and max(model.batch_sizes) <= 4  # cases merged, never past the batch size
    unbatched = _run(scenes, tmp_path / "one", {"m": StandInT2I(a=0.0, b=0.0, max_batch_size=1)}, modes=["single"])
    for case, alone in zip(report.cases, unbatched.cases, strict=True):
        assert (report.out / case.best_image).read_bytes() == (unbatched.out / alone.best_image).read_bytes()


# ----------------------------------------------------------------------------- circuit breaker


def test_the_breaker_trips_after_the_documented_count_and_a_later_run_tries_again(scenes, tmp_path):
    out = tmp_path / "out"
    # the model worked for its first case, then its server kept answering 500: a passing outage is possible
    dead = StandInT2I(a=0.0, b=0.0, fail="HTTP 500: server error", fail_after=1)
    healthy = StandInT2I(a=0.0, b=0.0)
    report = _run(scenes, out, {"dead": dead, "healthy": healthy}, max_concurrency=1)
    by_status = {
        s: [c for c in report.cases if c.model == "dead" and c.status == s] for s in ("ok", "failed", "skipped")
    }
    assert len(by_status["ok"]) == 1 and len(by_status["failed"]) == BREAKER_THRESHOLD
    assert len(dead.batch_sizes) == 1 + BREAKER_THRESHOLD  # no call after the trip
    left = 8 - 1 - BREAKER_THRESHOLD
    assert len(by_status["skipped"]) == left and report.breaker_skipped == left
    assert all(f"after {BREAKER_THRESHOLD} consecutive failed cases" in c.error for c in by_status["skipped"])
    assert all(c.status == "ok" for c in report.cases if c.model == "healthy")
    board = report.write_reports()  # the leaderboard is written, with the failures listed
    assert any("dead" in p.read_text() for p in board.values() if p.suffix in (".md", ".json"))

    dead.fail = None
    again = _run(scenes, out, {"dead": dead, "healthy": healthy}, max_concurrency=1)
    assert again.computed == left and again.failed == 0  # the skipped cases, tried again
    retried = _run(scenes, out, {"dead": dead, "healthy": healthy}, retry_failed=True)
    assert retried.computed == BREAKER_THRESHOLD and all(c.status == "ok" for c in retried.cases)


def test_a_model_that_never_worked_trips_at_its_first_case_that_outlasted_its_retries(scenes, tmp_path):
    out = tmp_path / "out"
    dead, healthy = StandInT2I(a=0.0, b=0.0, fail="HTTP 500: server error"), StandInT2I(a=0.0, b=0.0)
    report = _run(scenes, out, {"dead": dead, "healthy": healthy}, max_concurrency=1)
    failed = [c for c in report.cases if c.model == "dead" and c.status == "failed"]
    assert len(failed) == 1 == len(dead.batch_sizes) and report.breaker_skipped == 7
    assert "before any of its cases succeeded" in report.stopped_models["dead"]
    assert "HTTP 500: server error" in report.stopped_models["dead"]  # the reason keeps the error itself
    assert all(c.status == "ok" for c in report.cases if c.model == "healthy")
    dead.fail = None
    again = _run(scenes, out, {"dead": dead, "healthy": healthy}, max_concurrency=1)
    assert again.computed == 7 and again.failed == 0  # a later run tries the model again


def test_a_failure_the_backend_does_not_retry_still_needs_the_documented_count(scenes, tmp_path):
    bad = StandInT2I(a=0.0, b=0.0, fail="HTTP 400: this model rejects the request", status=400)
    report = _run(scenes, tmp_path / "out", {"bad": bad, "ok": "sandbox"}, max_concurrency=1)
    assert len(bad.batch_sizes) == BREAKER_THRESHOLD and report.breaker_skipped == 8 - BREAKER_THRESHOLD
    assert f"after {BREAKER_THRESHOLD} consecutive failed cases" in report.stopped_models["bad"]


def _waiting_take(lanes):
    """Start ``lanes.take()`` on a thread; return the thread and the list its result lands in."""
    got: list = []
    thread = threading.Thread(target=lambda: got.append(lanes.take()), daemon=True)
    thread.start()
    return thread, got


def test_a_half_open_model_runs_one_case_at_a_time_and_leaves_its_threads_to_the_others():
    breaker = CircuitBreaker()
    jobs = [type("Job", (), {"model": m, "n": i})() for i, m in enumerate("aaaabb")]
    lanes = Lanes(jobs, probing=breaker.probing)
    a0, b0, a1 = lanes.take(), lanes.take(), lanes.take()
    assert [a0.model, b0.model, a1.model] == ["a", "b", "a"]
    breaker.record("a", error="RuntimeError: boom")  # a's last case failed: half-open
    assert lanes.take().model == "b"  # a has cases running, so b gets the thread although a has fewer left
    lanes.done(a0)
    thread, got = _waiting_take(lanes)  # only a has cases left and one of them is running: wait
    thread.join(0.2)
    assert thread.is_alive() and got == []
    lanes.done(a1)
    thread.join(5)
    assert got[0].model == "a"  # the probe
    breaker.record("a", error=None)  # it succeeded: the breaker closes, a runs side by side again
    assert lanes.take().model == "a"
    lanes_stop = Lanes(jobs[:2], probing=lambda m: True)
    lanes_stop.take()
    thread, got = _waiting_take(lanes_stop)
    lanes_stop.stop()  # the caller stopped: a waiting take gives up
    thread.join(5)
    assert got == [None]


def _job(model: str, n: int) -> CaseJob:
    ref = Reference(id=f"r{n}", path=Path("r.png"), sha256="0", category="c")
    return CaseJob(f"{model}-{n}", "d", ref, model, "stand-in", "single", 0, "sandbox")


def test_a_failing_model_holds_one_thread_once_its_first_case_failed():
    running, most = {"dead": 0, "ok": 0}, {"dead": 0, "ok": 0}
    lock = threading.Lock()

    def task(job: CaseJob) -> CaseOutcome:
        with lock:
            running[job.model] += 1
            most[job.model] = max(most[job.model], running[job.model])
        time.sleep(0.05)
        with lock:
            running[job.model] -= 1
        case = failed_case(job, "RuntimeError: the device fell over")  # not a failure its backend retries
        return CaseOutcome(case if job.model == "dead" else case.model_copy(update={"status": "ok", "error": None}))

    jobs = [_job(m, i) for i in range(8) for m in ("dead", "ok")]
    outcomes = list(schedule(task, jobs, max_concurrency=4, breaker=CircuitBreaker()))
    dead = [o.case.status for o in outcomes if o.case.model == "dead"]
    # two cases in flight from the start; after the first failed, one probe at a time: no case beyond the count
    assert (
        most["dead"] == 2
        and dead.count("failed") == BREAKER_THRESHOLD
        and dead.count("skipped") == 8 - BREAKER_THRESHOLD
    )
    assert [o.case.status for o in outcomes if o.case.model == "ok"] == ["ok"] * 8 and most["ok"] >= 2


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_failure_retrying_cannot_fix_trips_at_once(scenes, tmp_path, status):
    bad = StandInT2I(a=0.0, b=0.0, fail=f"HTTP {status}", status=status)
    report = _run(scenes, tmp_path / "out", {"bad": bad, "ok": "sandbox"}, max_concurrency=1)
    assert len(bad.batch_sizes) == 1 and report.failed == 1 and report.breaker_skipped == 7
    assert "retrying cannot fix" in report.stopped_models["bad"]


@pytest.mark.slow
def test_a_model_that_fails_to_load_is_cut_off_and_the_others_go_on(scenes, tmp_path):
    pytest.importorskip("diffusers")
    empty = tmp_path / "no-weights"
    empty.mkdir()
    report = _run(scenes, tmp_path / "out", {"broken": f"diffusers:{empty}", "ok": "sandbox"})
    broken = [c for c in report.cases if c.model == "broken"]
    failed = [c.status for c in broken].count("failed")  # the cases in flight when it failed: 1 or 2
    assert failed in (1, 2) and failed + report.breaker_skipped == 8
    assert all("could not be loaded" in c.error for c in broken)
    assert all(c.status == "ok" for c in report.cases if c.model == "ok")


BATCH_TOLERANCE = 2
"""Most a pixel (0-255) of a tiny diffusers image rendered in a merged batch may differ from the same
request rendered alone, on the CPU in float32 (measured: at most 1, mean 7e-5; most images identical)."""


@pytest.mark.slow
def test_tiny_diffusers_renders_merged_across_cases_equal_the_unbatched_ones(tiny_sd_dir):
    np = pytest.importorskip("numpy")
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    prompts = ["a red cat", "a blue dog on grass", "a small house", "two birds in the sky"]
    requests = [GenerationRequest(prompt=p, seed=s, width=64, height=64, num_inference_steps=2)
                for s, p in enumerate(prompts * 2)]  # fmt: skip
    alone = [np.asarray(g.image, dtype=np.int16) for g in DiffusersT2I.from_pretrained(str(tiny_sd_dir), batch_size=1)
             .generate(requests)]  # fmt: skip
    batcher = RenderBatcher(DiffusersT2I.from_pretrained(str(tiny_sd_dir), batch_size=8), window=2.0)
    got: dict[int, list] = {}

    def case(i):
        with batcher.case():
            got[i] = [np.asarray(g.image, dtype=np.int16) for g in batcher.generate(requests[2 * i : 2 * i + 2])]

    threads = [threading.Thread(target=case, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert batcher.calls < 4  # merged
    merged = [image for i in range(4) for image in got[i]]
    assert max(int(np.abs(a - b).max()) for a, b in zip(alone, merged, strict=True)) <= BATCH_TOLERANCE


def test_best_images_are_encoded_where_they_are_stored_not_on_the_cases_threads(tmp_path, monkeypatch):
    import imagerepainter.bench.engine as engine
    from imagerepainter.images import load_image

    threads: list[str] = []
    encode = engine.encode_png

    def recording(image, **kw):
        threads.append(threading.current_thread().name)
        return encode(image, **kw)

    monkeypatch.setattr(engine, "encode_png", recording)
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i in range(2):
        render_scene(random_scene(i), 64, 64).save(scenes / f"scene_{i}.png")
    report = _run(scenes, tmp_path / "out", {"m": "sandbox"}, modes=["single", "repaint"], max_concurrency=2)
    assert report.computed == 4 and threads == [threading.main_thread().name] * 4  # the thread that stores them
    case = report.cases[0]
    stored = load_image(report.out / case.best_image)
    assert stored.size == (SETTINGS["width"], SETTINGS["height"])  # the best image, written before its row


def test_an_outcome_sent_from_a_worker_carries_its_best_image_encoded() -> None:
    image = render_scene(random_scene(3), 48, 48)
    outcome = CaseOutcome(failed_case(_job("m", 1), "n/a"), best_image=image)
    sent = outcome.encoded()
    assert sent.best_image is None and sent.best_png == outcome.png()
    from imagerepainter.images import load_image

    assert image_sha256(load_image(sent.best_png)) == image_sha256(image)  # lossless
    assert sent.encoded() is sent and CaseOutcome(sent.case).png() is None
