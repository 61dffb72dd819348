"""The loop end to end with in-process fakes: calls made, selection, stopping, streaming, resume."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image
from typing_extensions import TypedDict

from imagerepainter import Repainter
from imagerepainter.errors import (
    BackendError,
    CapabilityError,
    ConfigurationError,
    InvalidImageError,
    MLLMError,
    ThreadInUseError,
    UnknownBackendError,
)
from imagerepainter.testing import FakeMLLM, FakeT2I, ScriptedScorer
from tests.bench_modules import example_module
from tests.expected import PAPER_CALLS_TWO_OBJECTS
from tests.parents import loop_in_a_parent

REF = Image.new("RGB", (32, 32), "white")
SCORES_9 = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def _calls(mllm: FakeMLLM) -> Counter:
    return Counter(c.schema for c in mllm.calls)


def test_paper_preset_makes_exactly_the_papers_calls():
    mllm, t2i = FakeMLLM(), FakeT2I()
    scorer = ScriptedScorer([0.1, 0.2, 0.3] * 3)
    result = Repainter(mllm=mllm, t2i=t2i, scorer=scorer, preset="paper").run(REF)
    assert _calls(mllm) == PAPER_CALLS_TWO_OBJECTS
    assert len(t2i.requests) == 9 and t2i.batches == 3  # 3 rounds x 3 variants, one batch per round
    assert result.stop_reason == "max_rounds" and len(result.rounds) == 3
    assert scorer.prepared == 1 and scorer.batches == [3, 3, 3]
    # the paper renders only paraphrases: the rewritten prompt itself is never a candidate
    assert result.initial_prompt not in [c.prompt for c in result.rounds[0].candidates]
    # critique without history; critique and revise are separate
    assert all("History:" not in c.text for c in mllm.calls if c.schema == "Critique")
    assert all(c.images == 2 for c in mllm.calls if c.schema == "Critique")
    # the revised prompt starts the next round
    assert result.rounds[1].prompt == result.rounds[0].critique.revised_prompt
    assert result.usage["images"] == 9 and result.usage["mllm_calls"] == sum(_calls(mllm).values())


def test_default_preset_combines_critique_revision_and_variants():
    mllm, t2i = FakeMLLM(), FakeT2I()
    result = Repainter(
        adaptive_variants=False,
        mllm=mllm,
        t2i=t2i,
        scorer=ScriptedScorer([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
    ).run(REF, max_rounds=3)
    calls = _calls(mllm)
    assert calls["PromptVariants"] == 1  # only round 1; later rounds get variants with the critique
    assert calls["CritiqueAndRevision"] == 2 and calls["RevisedPrompt"] == 0 and calls["Critique"] == 0
    first = result.rounds[0]
    assert first.candidates[0].prompt == result.initial_prompt  # the prompt itself is a candidate
    second = result.rounds[1]
    assert second.candidates[0].prompt == first.critique.revised_prompt
    later = [c.text for c in mllm.calls if c.schema == "CritiqueAndRevision"]
    assert "History:" not in later[0] and "History:" in later[1] and "round 1" in later[1]


def test_after_a_worse_round_the_best_so_far_is_critiqued_and_each_round_keeps_its_critique():
    mllm = FakeMLLM()
    scores = [0.5, 0.6, 0.4, 0.1, 0.2, 0.3, 0.7, 0.2, 0.2]  # round 2 (0.1-0.3) does worse than round 1
    result = Repainter(adaptive_variants=False, mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer(scores)).run(
        REF, max_rounds=3, patience=None
    )
    first, second = result.rounds[0], result.rounds[1]
    assert first.critique.critiqued_round == 1 and second.critique.critiqued_round == 1  # round 1's image again
    assert second.critique.candidate == first.best_index
    assert first.critique is not second.critique  # round 1's own critique was not replaced
    asks = [c.text for c in mllm.calls if c.schema == "CritiqueAndRevision"]
    # the critique after round 2 shows round 1's prompt as the current one and round 2 as a tried attempt
    assert "- round 2: prompt: " in asks[1] and "- round 1:" not in asks[1]
    assert second.candidates[0].prompt in asks[1]


@pytest.mark.parametrize(
    ("preset", "budget", "used", "stop"),
    [
        ("paper", {"max_mllm_calls": 12}, ("mllm_calls", 11), "budget_mllm_calls"),  # 8 + 3; another round needs 3
        ("default", {"max_mllm_calls": 9, "max_objects": 2}, ("mllm_calls", 9), "budget_mllm_calls"),  # 8 + 1
        ("default", {"max_images": 8}, ("images", 6), "budget_images"),
    ],
)
def test_budgets_are_caps(preset, budget, used, stop):
    mllm = FakeMLLM()
    result = Repainter(
        adaptive_variants=False,
        mllm=mllm,
        t2i=FakeT2I(),
        scorer=ScriptedScorer([i / 100 for i in range(30)]),
        preset=preset,
    ).run(REF, max_rounds=10, **budget)
    key, expected = used
    assert result.stop_reason == stop and result.usage[key] == expected
    assert len(mllm.calls) <= budget.get("max_mllm_calls", 99)


def test_a_budget_that_cannot_fit_one_round_is_refused_before_any_call():
    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer([]))
    with pytest.raises(ConfigurationError, match="max_mllm_calls=3"):
        rp.run(REF, max_mllm_calls=3)
    assert mllm.calls == []


def test_settings_the_t2i_backend_would_refuse_are_refused_before_any_call():
    class Multiple8(FakeT2I):
        def check_settings(self, settings):
            if settings.height is not None and settings.height % 8:
                raise ConfigurationError(f"height={settings.height} is not a multiple of 8")

    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i=Multiple8(), scorer=ScriptedScorer([0.3] * 9), max_rounds=1)
    with pytest.raises(ConfigurationError, match="height=63"):
        rp.run(REF, height=63)
    assert mllm.calls == []
    assert rp.run(REF, height=64).stop_reason == "max_rounds"


def test_best_is_the_global_maximum_not_the_last_round():
    scores = [0.2, 0.9, 0.1, 0.3, 0.4, 0.35, 0.5, 0.45, 0.3]
    result = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer(scores), preset="paper").run(REF)
    assert result.best.score == 0.9 and result.best.round == 1 and result.best.index == 1
    assert result.rounds[-1].best.score == 0.5
    assert result.scores == [0.9, 0.9, 0.9]
    assert result.best.seed == result.rounds[0].candidates[1].seed


def test_lower_is_better_scorer():
    scores = [5.0, 3.0, 4.0, 9.0, 9.0, 9.0]
    result = Repainter(
        mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer(scores, higher_is_better=False), max_rounds=2
    ).run(REF)
    assert result.best.score == 3.0


def test_plateau_stops_early():
    scores = [0.5, 0.4, 0.3] + [0.5, 0.49, 0.3] * 5
    result = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer(scores), patience=2).run(REF)
    assert result.stop_reason == "plateau" and len(result.rounds) == 3


def test_judged_match_stops_when_asked():
    mllm = FakeMLLM(
        script={
            "CritiqueAndRevision": lambda text, images: {
                "style": "",
                "composition": "",
                "content": "",
                "edits": [],
                "is_match": True,
                "revised_prompt": "same",
                "variants": ["a", "b"],
            }
        }
    )
    result = Repainter(mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 30), stop_on_match=True).run(REF)
    assert result.stop_reason == "judged_match" and len(result.rounds) == 1


def test_blocked_images_are_recorded_but_never_scored():
    t2i = FakeT2I(block=lambda r: r.seed % 3 == 0)
    scorer = ScriptedScorer([0.7] * 30)
    result = Repainter(mllm=FakeMLLM(), t2i=t2i, scorer=scorer, max_rounds=2).run(REF)
    blocked = [c for c in result.candidates if c.blocked]
    assert blocked and all(c.score is None for c in blocked)
    assert not result.best.blocked
    assert result.usage["blocked_images"] == len(blocked)
    assert sum(scorer.batches) == len(result.candidates) - len(blocked)


def test_start_from_a_prompt_skips_the_description():
    mllm = FakeMLLM()
    result = Repainter(mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 30), max_rounds=1).run(
        REF, prompt="a white square"
    )
    assert "GlobalDescription" not in _calls(mllm)
    assert result.initial_prompt == "a white square" and result.understanding is None
    assert result.rounds[0].candidates[0].prompt == "a white square"


def test_description_calls_run_concurrently():
    barrier = threading.Barrier(3, timeout=5)  # broken (error) if the three calls were sequential

    def wait_then(answer):
        def respond(text, images):
            barrier.wait()
            return answer

        return respond

    mllm = FakeMLLM(
        script={
            "GlobalDescription": wait_then({"description": "d"}),
            "GlobalFeatures": wait_then({"style": "s", "lighting": "l", "color_palette": "c", "composition": "x"}),
            "ObjectList": wait_then({"objects": []}),
        }
    )
    result = Repainter(mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 10), max_rounds=1).run(REF)
    assert result.understanding["global_description"] == "d"


def test_stream_yields_round_events_and_the_result():
    rp = Repainter(
        adaptive_variants=False,
        mllm=FakeMLLM(),
        t2i=FakeT2I(),
        scorer=ScriptedScorer([0.1, 0.2, 0.3] * 4),
        max_rounds=2,
    )
    events = list(rp.stream(REF))
    rounds = [e for e in events if e.kind == "round"]
    assert [e.round for e in rounds] == [1, 2]
    assert rounds[0].data["scores"] == [0.1, 0.2, 0.3] and rounds[0].data["best_score"] == 0.3
    assert rounds[-1].data["stop_reason"] == "max_rounds"
    assert {"describe", "generate", "score"} <= {e.data.get("node") for e in events if e.kind == "node"}
    assert events[-1].kind == "result" and events[-1].result.stop_reason == "max_rounds"


def test_arun_and_astream():
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.4] * 30), max_rounds=2)
    result = asyncio.run(rp.arun(REF))
    assert len(result.rounds) == 2

    async def collect():
        return [e async for e in rp.astream(REF)]

    assert asyncio.run(collect())[-1].result is not None


def test_failure_keeps_finished_rounds_and_resume_does_not_redo_them():
    failures = iter([True])

    def flaky(text, images):
        if next(failures, False):
            raise MLLMError("the server is down", backend="fake")
        return {
            "style": "",
            "composition": "",
            "content": "",
            "edits": ["x"],
            "is_match": False,
            "revised_prompt": "p2",
            "variants": ["v1", "v2"],
        }

    mllm, t2i = FakeMLLM(script={"CritiqueAndRevision": flaky}), FakeT2I()
    rp = Repainter(
        adaptive_variants=False, mllm=mllm, t2i=t2i, scorer=ScriptedScorer([i / 100 for i in range(30)]), max_rounds=3
    )
    with pytest.raises(MLLMError) as info:
        rp.run(REF, thread_id="t-1")
    err = info.value
    assert err.thread_id == "t-1" and rp.status("t-1") == "interrupted"
    assert len(err.partial_result.rounds) == 1 and len(err.partial_result.rounds[0].candidates) == 3
    partial = err.partial_result
    assert not partial.finished and partial.best.score == max(c.score for c in partial.rounds[0].candidates)
    assert "not finished" in partial.summary()
    rendered = len(t2i.requests)
    result = rp.resume("t-1")
    assert len(result.rounds) == 3 and result.stop_reason == "max_rounds"
    assert len(t2i.requests) == rendered + 6  # round 1 was not rendered again
    assert result.rounds[0].candidates[0].seed == err.partial_result.rounds[0].candidates[0].seed
    assert rp.status("t-1") == "not_started"  # the default in-memory checkpointer drops finished runs


def test_bad_reference_fails_before_any_backend_call(tmp_path):
    mllm, t2i = FakeMLLM(), FakeT2I()
    rp = Repainter(mllm=mllm, t2i=t2i, scorer=ScriptedScorer([]))
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InvalidImageError):
        rp.run(tmp_path / "x.png")
    assert mllm.calls == [] and t2i.requests == []


def test_a_model_that_takes_one_image_is_refused_at_construction():
    with pytest.raises(CapabilityError, match="two images"):
        Repainter(mllm=FakeMLLM(max_images_per_call=1), t2i=FakeT2I(), scorer=ScriptedScorer([]))
    with pytest.raises(CapabilityError, match="does not accept images"):
        Repainter(mllm=FakeMLLM(accepts_images=False), t2i=FakeT2I(), scorer=ScriptedScorer([]))


def test_unknown_spec_suggests_the_closest_name():
    with pytest.raises(UnknownBackendError, match="Did you mean 'openai'"):
        Repainter(mllm="opneai:gpt-4o", t2i=FakeT2I(), scorer=ScriptedScorer([]))


def test_state_holds_refs_not_pixels():
    from langgraph.checkpoint.memory import InMemorySaver

    rp = Repainter(
        mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.3] * 30), max_rounds=2, checkpointer=InMemorySaver()
    )
    result = rp.run(REF, thread_id="small")
    state = rp.as_graph().get_state({"configurable": {"thread_id": "small"}}).values

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from walk(v)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v)
        else:
            yield value

    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in walk(state))
    assert result.best.image.size == (32, 32)


def test_embeds_as_a_subgraph():
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.3] * 30), max_rounds=1)

    app = example_module("as_subgraph").build_app(rp)  # repaint, then a caption node reading its best
    out = app.invoke({"reference": rp.store.put(REF)})
    assert out["stop_reason"] == "max_rounds" and out["caption"] == f"Regenerated with: {out['best']['prompt']}"
    # for a LangGraph server (or a parent that persists it): no checkpointer or store of its own
    bare = rp.as_graph(own_checkpointer=False)
    assert bare.checkpointer is None and bare.store is None and rp.as_graph().checkpointer is rp.checkpointer


def test_a_parent_that_declares_only_the_run_id_reads_the_whole_result():
    def repainter():
        return Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.3, 0.5, 0.4] * 10), max_rounds=2)

    rp = repainter()

    class Parent(TypedDict, total=False):
        reference: dict
        run_id: str

    state = loop_in_a_parent(rp, Parent).compile().invoke({"reference": rp.store.put(REF)})
    assert set(state) == {"reference", "run_id"}
    own = repainter().run(REF)
    result = rp.result_from(state)
    assert result.finished and result.stop_reason == own.stop_reason == "max_rounds"
    assert result.config == own.config  # the run's settings, not the default ones
    assert result.initial_prompt == own.initial_prompt and result.usage == own.usage
    assert [(c.round, c.prompt, c.seed, c.score) for c in result.candidates] == [
        (c.round, c.prompt, c.seed, c.score) for c in own.candidates
    ]
    assert (result.best.round, result.best.prompt, result.best.score) == (own.best.round, own.best.prompt, 0.5)


def test_concurrent_runs_on_one_repainter_match_sequential_runs():
    from imagerepainter.sandbox import random_scene, render_scene

    refs = [render_scene(random_scene(seed), seed=seed) for seed in range(4)]
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)
    sequential = [rp.run(ref) for ref in refs]

    async def together():
        return await asyncio.gather(*(rp.arun(ref) for ref in refs))

    concurrent = asyncio.run(together())

    def sig(r):
        return [(c.round, c.prompt, c.seed, c.score) for c in r.candidates]

    assert [sig(r) for r in concurrent] == [sig(r) for r in sequential]
    assert len({r.thread_id for r in concurrent}) == 4


def test_two_runs_cannot_share_a_thread_at_the_same_time():
    started, release = threading.Event(), threading.Event()

    class SlowT2I(FakeT2I):
        def generate(self, requests):
            started.set()
            release.wait(10)
            return super().generate(requests)

    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i=SlowT2I(), scorer=ScriptedScorer([0.3] * 30), max_rounds=1)
    first = ThreadPoolExecutor(1).submit(rp.run, REF, thread_id="same")
    assert started.wait(10)
    calls = len(mllm.calls)
    with pytest.raises(ThreadInUseError, match="running now"):
        rp.run(REF, thread_id="same")
    with pytest.raises(ThreadInUseError, match="running now"):
        rp.resume("same")
    assert len(mllm.calls) == calls  # refused before any backend call
    release.set()
    assert first.result(10).stop_reason == "max_rounds"
    assert rp.run(REF, thread_id="same").stop_reason == "max_rounds"  # free again (the finished run was dropped)


def test_arun_reads_the_reference_off_the_event_loop(monkeypatch):
    import imagerepainter.loop.sizing as module  # where a run reads its reference

    loop_threads = []
    real = module.load_image

    def watched(*args, **kwargs):
        loop_threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "load_image", watched)
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.3] * 30), max_rounds=1)
    assert asyncio.run(rp.arun(REF)).stop_reason == "max_rounds"
    assert loop_threads == [False]


def test_a_thread_id_cannot_be_reused_for_a_new_run():
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.3] * 30), max_rounds=1, checkpointer=saver)
    assert rp.status("once") == "not_started"
    rp.run(REF, thread_id="once")
    assert rp.status("once") == "finished"
    with pytest.raises(ThreadInUseError, match="resume"):
        rp.run(REF, thread_id="once")


def test_a_failing_custom_scorer_is_a_backend_error_with_the_finished_work():
    class Broken(ScriptedScorer):
        def score(self, prepared, candidates):
            raise ValueError("CUDA out of memory")

    t2i = FakeT2I()
    rp = Repainter(adaptive_variants=False, mllm=FakeMLLM(), t2i=t2i, scorer=Broken([]), max_rounds=2)
    with pytest.raises(BackendError, match="CUDA out of memory") as info:
        rp.run(REF, thread_id="broken")
    partial = info.value.partial_result
    assert len(t2i.requests) == 3 and [c.seed for c in partial.pending] == [r.seed for r in t2i.requests]
    assert partial.pending[0].image.size == (32, 32)  # the rendered images are kept
    assert isinstance(info.value.__cause__, ValueError)


def test_a_nan_score_is_a_backend_error_not_a_ranking():
    rp = Repainter(
        adaptive_variants=False,
        mllm=FakeMLLM(),
        t2i=FakeT2I(),
        scorer=ScriptedScorer([0.2, float("nan"), 0.3]),
        max_rounds=1,
    )
    with pytest.raises(BackendError, match="non-finite score") as info:
        rp.run(REF)
    assert len(info.value.partial_result.pending) == 3  # the rendered images are kept for a resume


def test_the_default_checkpointer_keeps_failed_runs_only():
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.3] * 30), max_rounds=1)
    rp.run(REF, thread_id="done")
    assert not rp.as_graph().get_state({"configurable": {"thread_id": "done"}}).values
    rp.run(REF, thread_id="done")  # the finished thread is free again


def test_an_abandoned_astream_resumes_to_the_uninterrupted_result():
    """Closing an astream cancels the step in flight, wherever it is; resume always finishes the run exactly.

    The backends answer from content (the sandbox world), so a step that is cancelled and run
    again gives what it gave the first time.
    """
    import contextlib

    from imagerepainter.sandbox import random_scene, render_scene

    photo = render_scene(random_scene(4), seed=4)

    def repainter():
        return Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3, patience=None)

    reference = repainter().run(photo)
    expected = [(c.round, c.prompt, c.seed, c.score) for c in reference.candidates]
    events = sum(1 for _ in repainter().stream(photo))
    for stop_after in range(1, events - 1):  # every event before the result
        rp = repainter()

        async def abandon(rp=rp, stop_after=stop_after):
            async with contextlib.aclosing(rp.astream(photo, thread_id="t")) as stream:
                seen = 0
                async for _ in stream:
                    seen += 1
                    if seen == stop_after:
                        break

        asyncio.run(abandon())
        assert rp.status("t") in ("interrupted", "finished"), stop_after
        result = rp.resume("t") if rp.status("t") == "interrupted" else rp.result_of("t")
        assert result.finished, stop_after
        assert [(c.round, c.prompt, c.seed, c.score) for c in result.candidates] == expected, stop_after


def test_a_description_is_made_once_and_runs_start_from_it():
    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 30), max_rounds=2)
    description = rp.describe(REF)
    described = len(mllm.calls)
    assert described == description.usage["mllm_calls"] and "GlobalDescription" in _calls(mllm)
    first, second = rp.run(REF, description=description), rp.run(REF, description=description, seed=7)
    assert "GlobalDescription" not in {c.schema for c in mllm.calls[described:]}  # never described again
    for result in (first, second):
        assert result.initial_prompt == description.prompt and result.understanding == description.understanding
        assert result.rounds[0].prompt == description.prompt
        assert "describe" not in {c["node"] for c in result.calls}
    with pytest.raises(ConfigurationError, match="either prompt or description"):
        rp.run(REF, prompt="a cat", description=description)


def test_a_runs_settings_are_validated_once(monkeypatch):
    from imagerepainter.config import RepainterConfig

    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.1, 0.2, 0.3] * 10), max_rounds=3)
    seen = []
    original = RepainterConfig.validated.__func__

    def counting(cls, data):
        seen.append(data)
        return original(cls, data)

    monkeypatch.setattr(RepainterConfig, "validated", classmethod(counting))
    parse = RepainterConfig.model_validate_json.__func__

    def counting_parse(cls, data, **kwargs):
        seen.append(data)
        return parse(cls, data, **kwargs)

    monkeypatch.setattr(RepainterConfig, "model_validate_json", classmethod(counting_parse))
    result = rp.run(REF, patience=None, seed=3)
    assert len(result.rounds) == 3 and result.config.seed == 3
    assert len(seen) == 1  # where the run is prepared; the nodes read it from the runtime context


@pytest.mark.parametrize("bad", [123, "  ", b"a cat"])
def test_a_prompt_that_is_not_text_is_refused(bad):
    with pytest.raises(ConfigurationError, match="non-empty string"):
        Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.5])).run(REF, prompt=bad)


def test_a_preset_is_chosen_when_the_repainter_is_built_not_per_run():
    rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 30))
    with pytest.raises(ConfigurationError, match=r"Repainter\(preset=\.\.\.\)"):
        rp.run(REF, preset="paper")


def test_a_batch_equals_the_runs_one_by_one():
    from imagerepainter.sandbox import random_scene, render_scene

    references = [render_scene(random_scene(40 + i), seed=i) for i in range(8)]
    alone = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)
    expected = [[(c.prompt, c.seed, c.score) for c in alone.run(r).candidates] for r in references]
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)  # one set of backends for all
    results = rp.batch(references, max_concurrency=4)
    assert [[(c.prompt, c.seed, c.score) for c in r.candidates] for r in results] == expected
    assert all(r.finished for r in results) and len({r.thread_id for r in results}) == 8
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        rp.batch(references, max_concurrency=0)


def test_reprs_are_short_and_say_what_a_person_needs():
    from imagerepainter.sandbox import random_scene, render_scene

    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
    assert repr(rp) == (
        "Repainter(mllm='sandbox', t2i='sandbox', scorer='sandbox', preset='default', max_rounds=2, variants=3)"
    )
    result = rp.run(render_scene(random_scene(1)))
    critique = result.rounds[0].critique
    assert critique is not None
    description = rp.describe(render_scene(random_scene(1)))
    for text in (repr(result), repr(result.rounds[0]), repr(result.best), repr(critique), repr(description)):
        assert len(text) < 160 and "image_ref" not in text and "\n" not in text and "understanding" not in text
    edits = f"{len(critique.edits)} edit" if not critique.is_match else "judged a match"
    assert repr(critique).startswith(f"CritiqueResult(of round 1, #{critique.candidate}, {edits}")
    assert repr(description).startswith(f"Description({description.usage['mllm_calls']} MLLM calls, prompt='")
    assert repr(result).startswith(f"RepaintResult({len(result.rounds)} rounds, stopped: {result.stop_reason}")
    shown = repr(result.best).split("prompt='")[1].rstrip("')")
    assert result.best.prompt.startswith(shown.rstrip("…")) and (shown.endswith("…") or shown == result.best.prompt)
    assert f"score {result.best.score:.4f}" in repr(result.best) and f"seed {result.best.seed}" in repr(result.best)


def test_each_model_call_is_announced_as_it_finishes_even_during_the_description():
    mllm = FakeMLLM()
    events = list(Repainter(mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 9), max_rounds=1).stream(REF))
    kinds = [e.kind for e in events]
    calls = [e for e in events if e.kind == "call"]
    assert len(calls) == len(mllm.calls)  # one event per answer, from the concurrent describe calls too
    before = {e.data["call"] for e in events[: kinds.index("described")] if e.kind == "call"}
    assert before >= {"GlobalDescription", "GlobalFeatures", "ObjectList", "PromptRewrite"}  # before the prompt
    assert all(e.data["node"] == "describe" and e.data["seconds"] >= 0 for e in calls[:5])


def test_a_critique_stored_with_the_old_round_name_still_loads_and_round_is_deprecated() -> None:
    from imagerepainter.results import CritiqueResult

    old = CritiqueResult.model_validate({"round": 2, "candidate": 1, "edits": ["warmer light"]})  # before the rename
    new = CritiqueResult.model_validate({"critiqued_round": 2, "candidate": 1, "edits": ["warmer light"]})
    assert old == new and new.model_dump()["critiqued_round"] == 2 and "round" not in new.model_dump()
    with pytest.warns(DeprecationWarning, match="critiqued_round"):
        assert new.round == 2
