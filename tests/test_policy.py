"""Pure decisions: convergence, selection, routing, seeds, config validation."""

from __future__ import annotations

import pytest

from imagerepainter.config import RepainterConfig
from imagerepainter.errors import ConfigurationError
from imagerepainter.loop.convergence import Progress, decide_stop
from imagerepainter.loop.routing import route_after_critique, route_after_score, route_start, seed_for
from imagerepainter.loop.selection import best_index

CFG = RepainterConfig(max_rounds=5, patience=2, min_delta=0.01)


@pytest.mark.parametrize(
    ("scores", "overrides", "progress", "expected"),
    [
        ([0.5], {}, {}, None),
        ([0.5, 0.6, 0.7], {}, {}, None),
        ([0.5, 0.6, 0.605, 0.609], {}, {}, "plateau"),
        ([0.5, 0.6, 0.6, 0.62], {}, {}, None),  # improved by 0.02 over the last 2 rounds
        ([0.5, 0.6, 0.7, 0.8, 0.9], {}, {}, "max_rounds"),
        ([0.5, 0.95], {"target_score": 0.9}, {}, "target_reached"),
        ([0.5], {"max_images": 5}, {"images_used": 3, "images_per_round": 3}, "budget_images"),
        ([0.5], {"max_images": 6}, {"images_used": 3, "images_per_round": 3}, None),
        ([0.5], {"max_mllm_calls": 10}, {"mllm_calls_used": 8, "mllm_calls_per_round": 3}, "budget_mllm_calls"),
        ([0.5], {"max_mllm_calls": 11}, {"mllm_calls_used": 8, "mllm_calls_per_round": 3}, None),  # fits exactly
        ([0.5], {"max_seconds": 1.0}, {"seconds_used": 1.5}, "budget_seconds"),
        ([None, None, None], {}, {}, None),  # nothing scorable yet: no plateau
        ([0.5, 0.5, 0.5], {"patience": None}, {}, None),  # paper: never stops on a plateau
    ],
)
def test_decide_stop(scores, overrides, progress, expected):
    cfg = CFG.with_overrides(**overrides)
    assert decide_stop(Progress(best_scores=scores, **progress), cfg, higher_is_better=True) == expected


def test_decide_stop_lower_is_better():
    cfg = CFG.with_overrides(target_score=0.1)
    assert decide_stop(Progress(best_scores=[0.5, 0.09]), cfg, higher_is_better=False) == "target_reached"
    assert decide_stop(Progress(best_scores=[0.5, 0.3, 0.2]), cfg, higher_is_better=False) is None
    assert decide_stop(Progress(best_scores=[0.5, 0.3, 0.3, 0.295]), cfg, higher_is_better=False) == "plateau"


def test_best_index_ignores_unscored_and_respects_direction():
    assert best_index([0.3, None, 0.9, 0.9], higher_is_better=True) == 2
    assert best_index([0.3, None, 0.1], higher_is_better=False) == 2
    assert best_index([], higher_is_better=True) is None


def test_routing():
    assert route_start({}) == "describe"
    assert route_start({"prompt": "x"}) == "round"
    assert route_after_score({"stop_reason": None}) == "critique"
    assert route_after_score({"stop_reason": "max_rounds"}) == "finish"
    assert route_after_critique({}, combined=True) == "round"
    assert route_after_critique({}, combined=False) == "revise"
    assert route_after_critique({"stop_reason": "judged_match"}, combined=True) == "finish"


def test_seeds_are_distinct_within_a_run_and_follow_the_base_seed():
    seeds = {seed_for(42, r, i) for r in range(1, 11) for i in range(8)}
    assert len(seeds) == 80
    assert seeds.isdisjoint({seed_for(7, r, i) for r in range(1, 11) for i in range(8)})
    assert {seed_for(42, r, i, vary=False) for r in (1, 2) for i in (0, 1)} == {42}
    assert seed_for(2**32 - 1, 2, 0) < 2**32  # stays a valid generator seed


def test_a_judged_match_stops_only_when_asked():
    from imagerepainter.loop.convergence import stop_after_critique

    assert stop_after_critique(True, CFG.with_overrides(stop_on_match=True)) == "judged_match"
    assert stop_after_critique(False, CFG.with_overrides(stop_on_match=True)) is None
    assert stop_after_critique(True, CFG) is None


def test_presets():
    paper = RepainterConfig.from_preset("paper")
    assert (paper.max_rounds, paper.variants, paper.patience) == (3, 3, None)
    assert not paper.combined_critique and not paper.critique_history
    assert paper.include_current_prompt == "never"
    assert paper.candidates_in_round(1) == (False, 3)
    default = RepainterConfig.from_preset("default")
    assert default.combined_critique and default.critique_history
    assert default.candidates_in_round(1) == (True, 2)
    first = default.with_overrides(include_current_prompt="first_round")
    assert first.candidates_in_round(1) == (True, 2) and first.candidates_in_round(2) == (False, 3)


def test_overrides_are_validated_with_suggestions():
    with pytest.raises(ConfigurationError, match="Did you mean 'max_rounds'"):
        CFG.with_overrides(max_round=3)
    with pytest.raises(ConfigurationError, match="max_rounds"):
        CFG.with_overrides(max_rounds=0)
    assert CFG.with_overrides(height=512).generation.height == 512
    assert CFG.with_overrides(generation={"width": 64}).generation.width == 64
    with pytest.raises(ConfigurationError, match="Unknown preset"):
        RepainterConfig.from_preset("fast")


def test_config_is_frozen():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        CFG.max_rounds = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", ["target_score", "min_delta", "max_seconds"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_float_settings_must_be_finite(name, value):
    # NaN compares false with everything (a NaN target would never stop a run) and neither NaN
    # nor infinity is valid JSON, so they could not be written to run.json either.
    with pytest.raises(ConfigurationError, match=f"{name}: Input should be a finite number"):
        CFG.with_overrides(**{name: value})
    assert CFG.with_overrides(target_score=0.9).target_score == 0.9


@pytest.mark.parametrize(
    ("preset", "overrides", "describe", "message"),
    [
        ("default", {"max_images": 2, "variants": 3, "adaptive_variants": False}, True, "max_images=2 cannot cover"),
        ("default", {"max_images": 1, "variants": 3}, True, None),  # adaptive: round 1 renders one image
        ("default", {"max_mllm_calls": 10, "adaptive_variants": False}, True, "up to 11 calls"),  # 5 + 5, 1 variants
        ("default", {"max_mllm_calls": 11, "adaptive_variants": False}, True, None),
        ("default", {"max_mllm_calls": 10}, True, None),  # adaptive: round 1 renders the prompt alone
        ("default", {"max_mllm_calls": 4, "max_objects": 0}, True, None),  # 3 to describe, 1 variants
        ("default", {"max_mllm_calls": 1}, False, None),  # a given prompt: only the variants call
        ("paper", {"max_mllm_calls": 7, "max_objects": 1}, True, None),  # 3 + 1 object detail + rewrite, 1 variants
    ],
)
def test_budgets_that_cannot_fit_the_first_round_are_refused(preset, overrides, describe, message):
    from imagerepainter.loop.convergence import check_budgets

    cfg = RepainterConfig.from_preset(preset).with_overrides(**overrides)
    if message is None:
        check_budgets(cfg, describe=describe)
    else:
        with pytest.raises(ConfigurationError, match=message):
            check_budgets(cfg, describe=describe)
