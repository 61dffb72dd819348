"""Drawing the judging study's pairs and each rater's plan: balanced, deterministic, resumable."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from imagerepainter.bench.records import CaseResult
from imagerepainter.errors import ConfigurationError
from imagerepainter.human import Judgment
from imagerepainter.human.pairs import draw_pairs, pair_id, pending, plan_for_rater

ARMS = [(m, mode) for m in ("m1", "m2", "m3") for mode in ("single", "repaint")]


def _case(ref: str, model: str, mode: str, status: str = "ok") -> CaseResult:
    return CaseResult(
        case_id=f"{ref}:{model}:{mode}",
        dataset="d",
        reference_id=ref,
        reference_sha256="0" * 64,
        model=model,
        model_spec="sandbox",
        mode=mode,  # type: ignore[arg-type]
        seed=0,
        status=status,  # type: ignore[arg-type]
        best_image=f"images/{model}/{mode}/{ref}.png" if status == "ok" else None,
    )


def _cases(references: int) -> list[CaseResult]:
    return [_case(f"r{i:02d}", m, mode) for i in range(references) for m, mode in ARMS]


def test_pair_ids_ignore_order_and_differ_by_reference() -> None:
    assert pair_id("r1", "x", "y") == pair_id("r1", "y", "x")
    assert pair_id("r1", "x", "y") != pair_id("r2", "x", "y")
    assert pair_id("r1", "x", "yz") != pair_id("r1", "xy", "z")  # separated, not concatenated


def test_every_pair_of_arms_is_drawn_equally_often() -> None:
    pairs = draw_pairs(_cases(30), seed=3, per_reference=2)
    counts = Counter(p.arms for p in pairs)
    assert len(pairs) == 60
    assert set(counts) == set(itertools.combinations(sorted(ARMS), 2))  # 15 arm pairs, across and within modes
    assert set(counts.values()) == {4}  # 60 / 15: a round-robin, not chance
    assert all(p.a.reference_id == p.b.reference_id == p.reference_id for p in pairs)
    assert all(p.a.case_id < p.b.case_id for p in pairs)


def test_a_reference_missing_an_arm_takes_the_next_pair_and_failed_cases_are_never_drawn() -> None:
    cases = [c for c in _cases(4) if not (c.reference_id == "r00" and c.model == "m1")]
    cases.append(_case("r00", "m1", "single", status="failed"))
    pairs = draw_pairs(cases, seed=0, per_reference=3)
    assert len(pairs) == 12
    assert all("m1" not in (p.a.model, p.b.model) for p in pairs if p.reference_id == "r00")


def test_all_pairs_by_default_and_the_seed_decides_which() -> None:
    assert len(draw_pairs(_cases(2))) == 2 * 15
    first = [p.pair_id for p in draw_pairs(_cases(5), seed=1, per_reference=1)]
    assert first == [p.pair_id for p in draw_pairs(list(reversed(_cases(5))), seed=1, per_reference=1)]
    assert first != [p.pair_id for p in draw_pairs(_cases(5), seed=2, per_reference=1)]


@pytest.mark.parametrize(
    ("cases", "message"),
    [
        ([_case("r1", "m1", "single"), _case("r2", "m2", "single")], "No reference has two finished cases"),
        ([_case("r1", "m1", "single"), _case("r1", "m2", "single", status="failed")], "No reference"),
    ],
)
def test_nothing_to_compare_is_a_clear_error(cases: list[CaseResult], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        draw_pairs(cases)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        draw_pairs(_cases(2), per_reference=0)
    with pytest.raises(ConfigurationError, match="within 0 and 1"):
        plan_for_rater(draw_pairs(_cases(2)), rater="ann", repeat_share=1.5)


def test_a_plan_has_random_sides_and_repeats_after_their_first_showing_with_sides_swapped() -> None:
    pairs = draw_pairs(_cases(20), per_reference=5)
    plan = plan_for_rater(pairs, rater="ann", seed=0, repeat_share=0.1)
    firsts = [s for s in plan if not s.repeat]
    repeats = [s for s in plan if s.repeat]
    assert sorted(s.pair.pair_id for s in firsts) == sorted(p.pair_id for p in pairs)
    assert len(repeats) == 10
    position = {s.key: i for i, s in enumerate(plan)}
    for again in repeats:
        first = next(s for s in firsts if s.pair == again.pair)
        assert position[again.key] > position[first.key]
        assert again.left != first.left
    lefts = Counter(s.left for s in firsts)
    assert 30 <= lefts["a"] <= 70  # sides are shuffled, not always a on the left
    assert [s.side_to_choice("left") for s in plan[:3]] == [s.left for s in plan[:3]]
    assert {s.side_to_choice("right") for s in plan[:3]} <= {"a", "b"}
    assert all(s.side_to_choice("right") != s.left for s in plan)


def test_a_plan_is_the_same_for_the_same_rater_and_different_for_another() -> None:
    pairs = draw_pairs(_cases(10))
    ann = plan_for_rater(pairs, rater="ann", seed=4)
    assert ann == plan_for_rater(pairs, rater="ann", seed=4)
    assert ann != plan_for_rater(pairs, rater="bob", seed=4)
    assert ann != plan_for_rater(pairs, rater="ann", seed=5)


def test_pending_skips_what_the_rater_already_judged_repeats_separately() -> None:
    plan = plan_for_rater(draw_pairs(_cases(3)), rater="ann", repeat_share=0.5)
    again = next(s for s in plan if s.repeat)

    def judged(showing, repeat):
        p = showing.pair
        return Judgment(
            reference_id=p.reference_id,
            image_a="x",
            image_b="y",
            choice="a",
            rater="ann",
            pair_id=p.pair_id,
            repeat=repeat,
        )

    done = [judged(plan[0], False), judged(again, False)]
    left = pending(plan, done)
    assert plan[0] not in left and again in left  # its first showing is done, the repeat is not
    assert len(left) == len(plan) - 2
    assert pending(plan, [*done, judged(again, True)]) == [s for s in left if s != again]
