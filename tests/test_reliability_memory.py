"""A long-lived Repainter stays the same size run after run, and leaves no thread behind.

The default in-memory image store lets a finished run go (its result keeps the images it
shows), the run's checkpoints and history are dropped, and the worker threads end when no run
is running, without waiting for the garbage collector.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagerepainter import Repainter
from imagerepainter.images import MemoryImageStore
from imagerepainter.sandbox import random_scene, render_scene

SIZE = 512
"""Rendered and reference size: a realistic one, where a leak of images shows at once."""


def _reference(i: int, size: int = SIZE):  # type: ignore[no-untyped-def]
    return render_scene(random_scene(1000 + i), size, size)


def _held(rp: Repainter) -> int:
    """How many images the Repainter's own store holds."""
    assert isinstance(rp.store, MemoryImageStore)
    return len(rp.store)


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("imagerepainter")}


def _wait_for_no_workers(timeout: float = 5.0) -> set[threading.Thread]:
    deadline = time.monotonic() + timeout
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.02)
    return _workers()


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Run with the garbage collector off: what is released must be released without it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.slow  # 100 runs at 512 px: about 25 s on one core
def test_hundred_runs_on_one_repainter_keep_memory_flat() -> None:
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2, width=SIZE, height=SIZE)
    assert isinstance(rp.store, MemoryImageStore)
    traced: list[int] = []
    tracemalloc.start()
    try:
        for i in range(100):
            result = rp.run(_reference(i))
            assert result.finished and rp.store.nbytes == 0 and _held(rp) == 0  # the store let the run go
            assert result.best is not None and result.best.image.size == (SIZE, SIZE)  # the result kept its images
            del result
            if i in (39, 99):  # after warm-up (bounded caches fill over ~40 runs), and at the end
                gc.collect()
                traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    warm, end = traced
    assert end <= warm * 1.10, f"traced memory grew from {warm:,} to {end:,} bytes over 60 runs"


def test_a_result_keeps_its_images_after_the_store_lets_the_run_go() -> None:
    reference = _reference(0, 128)
    with Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2) as rp:
        result = rp.run(reference)
        assert _held(rp) == 0
        assert result.reference_image.tobytes() == reference.convert("RGB").tobytes()
        shown = {c.image_ref["sha256"] for c in result.candidates}
        assert len(shown) == len(result.candidates) >= 2
        assert all(c.image.size == (c.image_ref["width"], c.image_ref["height"]) for c in result.candidates)
        assert result.best is not None and result.best.image.tobytes() == result.candidates[-1].image.tobytes()


def test_concurrent_runs_of_one_reference_share_images_until_each_ends() -> None:
    """The same reference (and the same deterministic renders) in three concurrent runs: a run that
    ends first must not take images the others still use."""
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)
    reference = _reference(1, 128)
    results = asyncio.run(rp.abatch([reference] * 3, max_concurrency=3))
    assert all(r.finished for r in results) and _held(rp) == 0
    assert len({r.best.image.tobytes() for r in results if r.best}) == 1


def test_a_store_you_pass_keeps_every_run() -> None:
    store = MemoryImageStore()
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2, store=store)
    first = rp.run(_reference(2, 64))
    rp.run(_reference(3, 64))
    assert len(store) >= 2 * 2 and all(store.get(c.image_ref) for c in first.candidates)


def test_a_failed_run_keeps_its_images_for_resume() -> None:
    """Only a finished run lets its images go: a run stopped by a failure resumes from them."""
    from imagerepainter.backends.base import GeneratedImage, GenerationRequest
    from imagerepainter.errors import GenerationError
    from imagerepainter.testing import FakeMLLM, FakeT2I

    class FailingOnce(FakeT2I):
        failed = False

        def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:  # type: ignore[override]
            if self.batches == 1 and not self.failed:  # round 2's first batch, once
                self.failed = True
                raise GenerationError("the GPU fell off", backend=self.name)
            return super().generate(requests)

    rp = Repainter(mllm=FakeMLLM(), t2i=FailingOnce(max_batch_size=8), scorer="ssim", max_rounds=3)
    with pytest.raises(GenerationError) as caught:
        rp.run(_reference(4, 32), thread_id="t")
    assert caught.value.partial_result is not None and len(caught.value.partial_result.rounds) == 1
    assert _held(rp) >= 2  # the reference and round 1's images stay for the resume
    result = rp.resume("t")
    assert result.finished and len(result.rounds) >= 2 and _held(rp) == 0
    assert result.rounds[0].candidates[0].image.tobytes() == caught.value.partial_result.candidates[0].image.tobytes()


def test_no_worker_thread_outlives_a_run_without_garbage_collection(no_gc: None) -> None:
    assert not _wait_for_no_workers()
    for i in range(5):  # a Repainter built per run and dropped without close()
        rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
        rp.run(_reference(i, 64))
        del rp
    assert not _wait_for_no_workers(), "worker threads outlived their runs"


def test_a_repainter_reused_after_its_threads_ended_starts_new_ones() -> None:
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
    first = rp.run(_reference(5, 64))
    assert not _wait_for_no_workers()
    second = rp.run(_reference(5, 64))
    assert first.best is not None and second.best is not None
    assert first.best.image.tobytes() == second.best.image.tobytes()
    rp.close()
    third = rp.run(_reference(5, 64))  # closing lets the threads go; the Repainter still works
    assert third.best is not None and third.best.score == first.best.score


def test_a_directory_store_lets_its_encoder_thread_go_when_compacted(tmp_path: Path) -> None:
    """Run folders compact their store when a run stops: a process that opens many keeps no thread per folder."""
    from imagerepainter.images import DirectoryImageStore

    def encoders() -> int:
        return sum(t.name.startswith("imagerepainter-png") for t in threading.enumerate())

    before = encoders()
    for i in range(5):
        store = DirectoryImageStore(tmp_path / f"images-{i}")
        ref = store.put(_reference(i, 32))
        store.compact()
        assert store.path(ref).exists()
    deadline = time.monotonic() + 5
    while encoders() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert encoders() == before
    store.put(_reference(9, 32))  # a compacted store still takes images
    store.compact()
