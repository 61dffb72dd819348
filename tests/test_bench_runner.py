"""The benchmark runner's guarantees: one description per reference, resume, idempotence, add a model,
per-case failures, retry, same seeds for every model, a protected T2I device. Sandbox backends only."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from imagerepainter.backends.base import T2ICapabilities
from imagerepainter.bench.datasets import file_sha256
from imagerepainter.bench.runner import evaluate
from imagerepainter.bench.store import ResultsStore
from imagerepainter.errors import ConfigurationError
from imagerepainter.sandbox import SandboxMLLM, SandboxT2I, random_scene, render_scene

SETTINGS = {"max_rounds": 2, "variants": 2, "height": 64, "width": 64}


class CountingMLLM(SandboxMLLM):
    """The sandbox MLLM, counting its answers by schema (thread-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def structured(self, messages, schema):
        with self._lock:
            self.calls[schema.__name__] += 1
        return super().structured(messages, schema)


class RecordingT2I(SandboxT2I):
    """The sandbox renderer, recording seeds and the most renders in flight at once."""

    def __init__(self, name: str = "recording", *, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__()
        self.name, self.delay, self.fail = name, delay, fail
        self.seeds: list[int] = []
        self.active = self.most_active = 0
        self._lock = threading.Lock()

    def generate(self, requests):
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.delay)
            if self.fail:
                raise RuntimeError("the device fell over")
            self.seeds.extend(r.seed for r in requests)
            return super().generate(requests)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture
def scenes(tmp_path) -> Path:
    folder = tmp_path / "scenes"
    for i in range(3):
        (folder / ("a" if i < 2 else "b")).mkdir(parents=True, exist_ok=True)
        render_scene(random_scene(i), 96, 96).save(folder / ("a" if i < 2 else "b") / f"scene_{i}.png")
    return folder


def _run(data, out, mllm, models, **kw):
    kw.setdefault("metrics", ["sandbox"])
    kw.setdefault("settings", SETTINGS)
    return evaluate(data, mllm=mllm, models=models, out=out, **kw)


def test_one_description_per_reference_whatever_the_models_and_modes(scenes, tmp_path):
    mllm = CountingMLLM()
    models = {"m1": "sandbox", "m2": "sandbox?jitter=0.02", "m3": "sandbox?noise=4"}
    report = _run(scenes, tmp_path / "out", mllm, models)
    assert report.computed == 3 * 3 * 2 and report.failed == 0
    assert mllm.calls["GlobalDescription"] == 3  # three references, three descriptions
    assert mllm.calls["PromptRewrite"] == 3
    assert (report.descriptions_computed, report.descriptions_reused) == (3, 0)
    # every model and mode started from the same prompt for a reference
    first = {}
    for case in report.cases:
        first.setdefault(case.reference_id, set()).add(case.extra["initial_prompt"])
    assert all(len(prompts) == 1 for prompts in first.values())
    # single: one image, no MLLM call of its own; repaint: the loop made its own calls
    single = [c for c in report.cases if c.mode == "single"]
    repaint = [c for c in report.cases if c.mode == "repaint"]
    assert {(c.images, c.mllm_calls, c.rounds) for c in single} == {(1, 0, 1)}
    assert all(c.mllm_calls > 0 and c.images > 1 for c in repaint)
    assert all(c.best_prompt and c.stop_reason and c.seconds > 0 and "sandbox" in c.metrics for c in report.cases)
    for case in report.cases:  # the best image is saved and named in the row
        assert (report.out / case.best_image).is_file()
    # repaint keeps the single image as round 1's first candidate: it can only do as well or better
    by_key = {(c.model, c.reference_id, c.mode): c.metrics["sandbox"] for c in report.cases}
    assert all(by_key[(m, r, "repaint")] >= by_key[(m, r, "single")] - 1e-9 for m, r, _ in by_key)


def test_run_again_does_nothing_and_an_added_model_runs_alone(scenes, tmp_path):
    out = tmp_path / "out"
    mllm = CountingMLLM()
    first = _run(scenes, out, mllm, {"m1": "sandbox"})
    rows_before = _rows(out)
    mllm.calls.clear()

    again = _run(scenes, out, mllm, {"m1": "sandbox"})
    assert (again.computed, again.skipped) == (0, 6) and sum(mllm.calls.values()) == 0
    assert _rows(out) == rows_before  # not even rewritten
    assert [c.model_dump() for c in again.cases] == [c.model_dump() for c in first.cases]

    new = RecordingT2I("m2")
    added = _run(scenes, out, mllm, {"m1": "sandbox", "m2": new})
    assert (added.computed, added.skipped) == (6, 6)
    assert {c.model for c in added.cases} == {"m1", "m2"} and len(added.cases) == 12
    assert mllm.calls["GlobalDescription"] == 0  # the stored descriptions were reused
    assert added.descriptions_reused == 3
    assert {k: v for k, v in _rows(out).items() if k in rows_before} == rows_before


def test_every_model_sees_the_same_seeds(scenes, tmp_path):
    a, b = RecordingT2I("a"), RecordingT2I("b")
    _run(scenes, tmp_path / "out", CountingMLLM(), {"a": a, "b": b}, seed=7, max_concurrency=1)
    assert a.seeds and sorted(a.seeds) == sorted(b.seeds) and 7 in a.seeds


def test_one_render_at_a_time_per_model_while_cases_overlap(scenes, tmp_path):
    slow = RecordingT2I("slow", delay=0.05)
    report = _run(scenes, tmp_path / "out", CountingMLLM(), {"slow": slow}, max_concurrency=4)
    assert report.failed == 0 and slow.most_active == 1
    free = RecordingT2I("free", delay=0.05)  # with more slots (and no batching), the same cases do render at once
    free.capabilities = T2ICapabilities(max_batch_size=1)
    _run(scenes, tmp_path / "out2", CountingMLLM(), {"free": free}, max_concurrency=4, device_slots=4)
    assert free.most_active > 1


def test_failed_cases_are_recorded_and_retried_alone(scenes, tmp_path):
    out = tmp_path / "out"
    flaky, steady = RecordingT2I("flaky", fail=True), RecordingT2I("steady")
    report = _run(scenes, out, CountingMLLM(), {"flaky": flaky, "steady": steady})
    # the breaker stops flaky after 3 failed cases (a 4th may have been in flight); the rest are skipped
    assert report.computed == 12 and report.failed in (3, 4) and report.failed + report.breaker_skipped == 6
    failed = [c for c in report.cases if c.status == "failed"]
    skipped = [c for c in report.cases if c.status == "skipped"]
    assert {c.model for c in failed + skipped} == {"flaky"} and set(report.stopped_models) == {"flaky"}
    assert all("the device fell over" in c.error and c.metrics == {} for c in failed + skipped)
    assert all("3 consecutive failed cases" in c.error for c in skipped)

    flaky.fail = False
    steady.seeds.clear()
    again = _run(scenes, out, CountingMLLM(), {"flaky": flaky, "steady": steady})  # a later run retries the skipped
    assert (again.computed, again.failed) == (report.breaker_skipped, 0)
    retried = _run(scenes, out, CountingMLLM(), {"flaky": flaky, "steady": steady}, retry_failed=True)
    assert (retried.computed, retried.failed, retried.skipped) == (report.failed, 0, 12 - report.failed)
    assert steady.seeds == []  # the finished model was not touched
    assert all(c.status == "ok" for c in retried.cases)


def test_bad_references_fail_per_case_and_the_rest_go_on(tmp_path):
    root = tmp_path / "set"
    root.mkdir()
    render_scene(random_scene(1), 96, 96).save(root / "good.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    render_scene(random_scene(2), 96, 96).save(root / "changed.png")
    render_scene(random_scene(3), 96, 96).save(tmp_path / "outside.png")
    lines = [
        {"path": "good.png", "sha256": file_sha256(root / "good.png")},
        {"path": "corrupt.png"},
        {"path": "changed.png", "sha256": "f" * 64},
        {"path": "missing.png"},
        {"path": "../outside.png"},
    ]
    (root / "refs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = _run(root / "refs.jsonl", tmp_path / "out", CountingMLLM(), {"m": "sandbox"}, modes=["single"])
    errors = {c.reference_id: c.error for c in report.cases}
    assert report.computed == 5 and report.failed == 4
    assert errors["good.png"] is None
    assert "InvalidImageError" in errors["corrupt.png"]
    assert "the manifest says ffffffffffff" in errors["changed.png"]
    assert "missing" in errors["missing.png"]
    assert "leaves the manifest's folder" in errors["../outside.png"]


def test_bad_arguments_are_refused_before_anything_runs(scenes, tmp_path):
    mllm = CountingMLLM()
    bad = [
        {"models": {}},
        {"models": {"a b": "sandbox"}},
        {"modes": ["twice"]},
        {"metrics": []},
        {"settings": {"max_rounds": 0}},
        {"settings": {"seed": 3}},
        {"categories": ["nope"]},
        {"models": {"m": "sandbox?jiter=1"}},
    ]
    for kwargs in bad:
        with pytest.raises(ConfigurationError):
            _run(scenes, tmp_path / "out", mllm, **({"models": {"m": "sandbox"}} | kwargs))
    assert sum(mllm.calls.values()) == 0


def test_limit_and_categories_select_references(scenes, tmp_path):
    report = _run(scenes, tmp_path / "out", CountingMLLM(), {"m": "sandbox"}, categories=["a"], limit=1)
    assert {(c.reference_id, c.category) for c in report.cases} == {("a/scene_0.png", "a")}


def test_progress_counts_every_case(scenes, tmp_path):
    events = []
    _run(scenes, tmp_path / "out", CountingMLLM(), {"m": "sandbox"}, on_progress=events.append)
    assert [(e.done, e.total) for e in events] == [(i, 6) for i in range(7)]
    assert events[0].case is None and all(e.case is not None for e in events[1:])


def _rows(out: Path) -> dict[str, tuple]:
    with sqlite3.connect(out / "results.sqlite") as db:
        return {row[0]: row[1:] for row in db.execute("SELECT case_id, record, updated FROM cases")}


def test_store_refuses_a_file_that_is_not_a_results_database(tmp_path):
    (tmp_path / "results.sqlite").write_text("not a database")
    with pytest.raises(ConfigurationError, match="not a results database"):
        ResultsStore(tmp_path)


def test_each_model_is_resolved_once_and_shared_by_its_cases(scenes, tmp_path, monkeypatch):
    from imagerepainter.backends import registry

    resolved = []
    real = registry.resolve_t2i
    monkeypatch.setattr(registry, "resolve_t2i", lambda spec: resolved.append(spec) or real(spec))
    report = _run(scenes, tmp_path / "out", CountingMLLM(), {"m1": "sandbox", "m2": "sandbox?noise=3"})
    specs = sorted(s for s in resolved if isinstance(s, str))  # (Repainter also sees the resolved objects)
    assert report.computed == 12 and specs == ["sandbox", "sandbox?noise=3"]


def test_a_model_keeps_no_image_once_its_cases_are_done(scenes, tmp_path):
    from imagerepainter.bench.describer import Describer
    from imagerepainter.bench.engine import CaseJob, Workbench, WorkerSpec
    from imagerepainter.bench.executors import prepare_case
    from imagerepainter.config import RepainterConfig

    config = RepainterConfig().with_overrides(**SETTINGS)
    spec = WorkerSpec(mllm="sandbox", models={"m": "sandbox"}, scorer="sandbox", metrics=["sandbox"],
                      config=config.model_dump(mode="json"))  # fmt: skip
    bench = Workbench(spec)
    describer = Describer(mllm=bench.mllm, mllm_key="sandbox", config=config, store=ResultsStore(tmp_path))
    data = __import__("imagerepainter.bench.datasets", fromlist=["load_dataset"]).load_dataset(scenes)
    outcomes = []
    for ref in data:
        for mode in ("single", "repaint"):
            job = CaseJob(f"{ref.id}-{mode}", "d", ref, "m", "sandbox", mode, 0, "sandbox")
            outcomes.append(bench.run_case(job, *prepare_case(job, describer)))
    assert all(o.case.status == "ok" and o.png() for o in outcomes)
    assert len(bench.engine("m").store) == 0 and len(describer._describing_repainter().store) == 0


def test_specs_holding_credentials_are_refused_and_never_stored(scenes, tmp_path):
    bad = [
        {"mllm": "openai:gpt-4o?base_url=http://user:hunter22@host/v1"},
        {"mllm": "openai:gpt-4o?base_url=http://host/v1?key=abc"},
        {"models": {"m": "openai:gpt-image-1?base_url=http://u:p@host"}},
    ]
    for kwargs in bad:
        kw = {"mllm": "sandbox", "models": {"m": "sandbox"}} | kwargs
        with pytest.raises(ConfigurationError, match=r"results\.sqlite") as info:
            evaluate(scenes, out=tmp_path / "out", metrics=["sandbox"], **kw)
        assert "hunter22" not in str(info.value) and "abc" not in str(info.value)
    assert not (tmp_path / "out").exists()


class FailsInRoundTwo(SandboxT2I):
    """Renders round 1 (seeds below 1000), then fails: round 2's seeds start at 1000."""

    name = "round-two"

    def generate(self, requests):
        if any(r.seed >= 1000 for r in requests):
            raise RuntimeError("out of memory in round 2")
        return super().generate(requests)


def test_a_case_failing_mid_loop_records_what_it_spent(scenes, tmp_path):
    report = _run(scenes, tmp_path / "out", CountingMLLM(), {"m": FailsInRoundTwo()}, limit=1)
    by_mode = {c.mode: c for c in report.cases}
    assert by_mode["single"].status == "ok"
    failed = by_mode["repaint"]
    assert failed.status == "failed" and "out of memory in round 2" in failed.error
    assert failed.rounds == 1 and failed.images >= 1 and failed.mllm_calls >= 1
    assert failed.input_tokens > 0 and failed.metrics == {}


class SlowCritic(SandboxMLLM):
    """The sandbox MLLM, slowed down, counting the critiques in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.active = self.most_active = 0
        self._lock = threading.Lock()

    def structured(self, messages, schema):
        critique = schema.__name__.startswith("Critique")
        if critique:
            with self._lock:
                self.active += 1
                self.most_active = max(self.most_active, self.active)
        try:
            if critique:
                time.sleep(0.05)
            return super().structured(messages, schema)
        finally:
            if critique:
                with self._lock:
                    self.active -= 1


def test_mllm_calls_of_different_cases_overlap(scenes, tmp_path):
    mllm = SlowCritic()  # a case critiques one image at a time: overlap comes from other cases
    report = _run(scenes, tmp_path / "out", mllm, {"m": "sandbox"}, modes=["repaint"], max_concurrency=3)
    assert report.failed == 0 and mllm.most_active > 1


def test_a_judge_metrics_calls_count_in_the_case(scenes, tmp_path):
    report = evaluate(
        scenes,
        mllm="sandbox",
        models={"m": "sandbox"},
        modes=["single"],
        metrics=["sandbox", "judge?repeats=2"],
        out=tmp_path / "out",
        settings={"height": 64, "width": 64},
    )
    assert report.failed == 0
    for case in report.cases:  # single mode makes no loop call of its own: the two ratings are the calls
        judge = case.extra["metric_details"]["judge"]
        assert case.mllm_calls == len(judge["ratings"]) == 2
        assert case.input_tokens == judge["input_tokens"]
