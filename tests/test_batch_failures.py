"""A batch keeps what it finished: failures in their place, or one error that names them and holds the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imagerepainter import Repainter
from imagerepainter.errors import BatchError, ConfigurationError, GenerationError, InvalidImageError
from imagerepainter.sandbox import SandboxT2I, random_scene, render_scene
from imagerepainter.testing import FakeMLLM


class _FailsOnWideImages(SandboxT2I):
    """Renders square references; fails (after the describe stage was paid for) on wide ones."""

    def generate(self, requests):
        if any(r.width > r.height for r in requests):
            raise RuntimeError("out of memory")
        return super().generate(requests)


def _references(tmp_path: Path) -> list[object]:
    """A path, a corrupt file (the middle one) and a PIL image."""
    good = tmp_path / "good.png"
    render_scene(random_scene(1), 64, 64).save(good)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good.read_bytes()[:60])
    return [good, bad, render_scene(random_scene(2), 64, 64)]


def _comparable(result) -> list[tuple]:
    return [(c.prompt, c.seed, c.score) for c in result.candidates]


def test_return_exceptions_gives_each_failure_in_its_place_and_keeps_the_others(tmp_path):
    references = _references(tmp_path)
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
    outcomes = rp.batch(references, return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["RepaintResult", "InvalidImageError", "RepaintResult"]
    alone = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
    assert _comparable(outcomes[0]) == _comparable(alone.run(references[0]))
    assert _comparable(outcomes[2]) == _comparable(alone.run(references[2]))
    assert "truncated" in str(outcomes[1])


def test_without_return_exceptions_the_error_names_the_input_and_holds_the_finished_results(tmp_path):
    references = _references(tmp_path)
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
    with pytest.raises(BatchError) as caught:
        rp.batch(references)
    error = caught.value
    assert error.failed == [1]
    assert "1 of 3 runs failed: reference 1 (" in str(error) and "truncated.png" in str(error)
    assert "return_exceptions=True" in str(error)
    assert isinstance(error.__cause__, InvalidImageError) and error.results[1] is error.__cause__
    assert all(error.results[i].finished for i in (0, 2))


def test_a_run_that_fails_half_way_keeps_its_paid_work_and_the_others_finish():
    square, wide = render_scene(random_scene(3), 64, 64), render_scene(random_scene(4), 96, 48)
    rp = Repainter(mllm="sandbox", t2i=_FailsOnWideImages(), scorer="sandbox", max_rounds=2)
    outcomes = asyncio.run(rp.abatch([wide, square, wide], return_exceptions=True, max_concurrency=2))
    failed = outcomes[0]
    assert isinstance(failed, GenerationError) and isinstance(outcomes[2], GenerationError)
    assert outcomes[1].finished and len(outcomes[1].rounds) == 2
    # the failed run's description was paid for: it is kept, and the run resumes from it
    assert failed.partial_result is not None and failed.partial_result.initial_prompt
    assert rp.status(failed.thread_id) == "interrupted"


@pytest.mark.parametrize("single", ["photo.png", Path("photo.png"), b"\x89PNG", "image"])
def test_one_reference_instead_of_a_list_is_refused_before_anything_runs(single):
    if single == "image":
        single = render_scene(random_scene(1), 32, 32)
    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i="sandbox", scorer="sandbox", max_rounds=1)
    with pytest.raises(ConfigurationError, match=r"batch\(\) takes a list of references, not one"):
        rp.batch(single)
    with pytest.raises(ConfigurationError, match=r"pass \[reference\]"):
        asyncio.run(rp.abatch(single, return_exceptions=True))
    assert mllm.calls == []


def test_a_bad_setting_is_refused_once_before_any_run():
    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i="sandbox", scorer="sandbox")
    with pytest.raises(ConfigurationError, match="max_rounds"):
        rp.batch([render_scene(random_scene(1), 32, 32)] * 2, max_rounds=0, return_exceptions=True)
    assert mllm.calls == []
