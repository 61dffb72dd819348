"""Which pairs of regenerations a rater judges, in which order, and on which side: pure functions.

A *pair* is two cases of one reference made by different arms, an arm being a (model, mode)
such as ``("sdxl", "repaint")``. :func:`draw_pairs` picks the pairs of a study from an
evaluation's cases, the same for every rater (so raters can be compared with each other):
a balanced round-robin over references, so that every pair of arms (two models in one mode,
one model in both modes, ...) is judged about equally often.

:func:`plan_for_rater` then orders one rater's showings (deterministic given the seed and the
rater's name), puts each pair's images on random sides, and adds a share of repeated pairs,
shown again later with the sides swapped, which measure the rater's consistency.
:func:`pending` says what that rater still has to judge, given what is stored: progress is
derived from the judgments themselves, so a study can stop and resume at any time.

Example:
    >>> from imagerepainter.bench.records import CaseResult
    >>> def case(ref, model, mode):
    ...     return CaseResult(case_id=f"{ref}-{model}-{mode}", dataset="d", reference_id=ref,
    ...         reference_sha256="0" * 64, model=model, model_spec="sandbox", mode=mode, seed=0,
    ...         status="ok", best_image=f"images/{ref}-{model}-{mode}.png")
    >>> cases = [case(r, m, "single") for r in ("r1", "r2") for m in ("x", "y", "z")]
    >>> pairs = draw_pairs(cases, seed=0, per_reference=1)
    >>> len(pairs), sorted(p.arms for p in pairs)[0]
    (2, (('x', 'single'), ('z', 'single')))
    >>> plan = plan_for_rater(pairs, rater="ann", repeat_share=0.5)
    >>> [s.repeat for s in plan]
    [False, False, True]
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..bench.records import CaseResult
from ..bench.store import stable_hash
from ..errors import ConfigurationError
from .judgments import Judgment

__all__ = ["Pair", "Showing", "draw_pairs", "judgeable_cases", "pair_id", "pending", "plan_for_rater"]

Arm = tuple[str, str]
"""A (model, mode): what made an image."""

Side = Literal["a", "b"]


def pair_id(reference_id: str, case_x: str, case_y: str) -> str:
    """The id of a pair: a hash of the reference and both case ids, the same in either order.

    Example:
        >>> pair_id("r1", "c1", "c2") == pair_id("r1", "c2", "c1")
        True
    """
    first, second = sorted((case_x, case_y))
    return hashlib.sha256(f"{reference_id}\0{first}\0{second}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Pair:
    """Two cases of one reference; ``a`` is the one whose case id sorts first."""

    reference_id: str
    a: CaseResult
    b: CaseResult

    @property
    def pair_id(self) -> str:
        """See :func:`pair_id`."""
        return pair_id(self.reference_id, self.a.case_id, self.b.case_id)

    @property
    def arms(self) -> tuple[Arm, Arm]:
        """The two (model, mode)s, sorted."""
        first, second = sorted(((self.a.model, self.a.mode), (self.b.model, self.b.mode)))
        return first, second


@dataclass(frozen=True)
class Showing:
    """One pair as a rater sees it: which image is on the left, and whether it is a repeat."""

    pair: Pair
    left: Side
    repeat: bool = False

    @property
    def key(self) -> tuple[str, bool]:
        """What identifies this showing among a rater's judgments: (pair id, repeat)."""
        return self.pair.pair_id, self.repeat

    def side_to_choice(self, side: Literal["left", "right"]) -> Side:
        """The image (``a``/``b``) shown on ``side``."""
        if side == "left":
            return self.left
        return "b" if self.left == "a" else "a"


def judgeable_cases(cases: Iterable[CaseResult]) -> list[CaseResult]:
    """The cases a person can judge: finished (``ok``) with a best image."""
    return [c for c in cases if c.status == "ok" and c.best_image]


def draw_pairs(cases: Iterable[CaseResult], *, seed: int = 0, per_reference: int | None = None) -> list[Pair]:
    """The pairs of a study: per reference, up to ``per_reference`` pairs of different arms.

    The arm pairs are dealt round-robin (their order shuffled once by ``seed``): the first
    reference takes the first ``per_reference`` arm pairs, the next reference the following
    ones, and so on, wrapping around, so each arm pair is drawn about equally often. An arm pair
    a reference lacks (a failed case) is skipped for the next one. ``None`` takes every pair.

    Raises:
        ConfigurationError: ``per_reference`` is below 1, or no reference has two arms to compare.
    """
    if per_reference is not None and per_reference < 1:
        raise ConfigurationError(f"pairs per reference must be at least 1, not {per_reference}.")
    by_ref: dict[str, dict[Arm, CaseResult]] = defaultdict(dict)
    for case in sorted(judgeable_cases(cases), key=lambda c: c.case_id):
        by_ref[case.reference_id].setdefault((case.model, case.mode), case)
    arms = sorted({arm for found in by_ref.values() for arm in found})
    deck = list(itertools.combinations(arms, 2))
    if not deck or all(len(found) < 2 for found in by_ref.values()):
        raise ConfigurationError(
            "No reference has two finished cases of different models or modes to compare; "
            "evaluate at least two models (or both modes) first."
        )
    random.Random(stable_hash(["pairs", seed])).shuffle(deck)
    take = len(deck) if per_reference is None else min(per_reference, len(deck))
    pairs, cursor = [], 0
    for reference_id in sorted(by_ref):
        found = by_ref[reference_id]
        chosen = [arms for arms in _rotate(deck, cursor) if arms[0] in found and arms[1] in found][:take]
        cursor += take
        for first, second in chosen:
            a, b = sorted((found[first], found[second]), key=lambda c: c.case_id)
            pairs.append(Pair(reference_id, a, b))
    return pairs


def _rotate(deck: Sequence[tuple[Arm, Arm]], start: int) -> list[tuple[Arm, Arm]]:
    start %= len(deck)
    return [*deck[start:], *deck[:start]]


def plan_for_rater(pairs: Sequence[Pair], *, rater: str, seed: int = 0, repeat_share: float = 0.1) -> list[Showing]:
    """One rater's showings: ``pairs`` in a random order with random sides, plus repeats.

    ``round(repeat_share * len(pairs))`` pairs are shown a second time, with the sides swapped,
    at a random later place. The plan depends only on ``pairs``, ``seed`` and ``rater``, so a
    restarted server gives the same rater the same plan.

    Raises:
        ConfigurationError: ``repeat_share`` is not within [0, 1].
    """
    if not 0.0 <= repeat_share <= 1.0:
        raise ConfigurationError(f"The repeated share must be within 0 and 1 (e.g. 0.1), not {repeat_share}.")
    rng = random.Random(stable_hash(["plan", seed, rater]))
    order = list(pairs)
    rng.shuffle(order)
    firsts = [Showing(pair, rng.choice("ab")) for pair in order]  # type: ignore[arg-type]
    keyed = [((float(i), 0), s) for i, s in enumerate(firsts)]
    n = len(firsts)
    for i in sorted(rng.sample(range(n), round(repeat_share * n))):
        again = Showing(firsts[i].pair, "b" if firsts[i].left == "a" else "a", repeat=True)
        keyed.append(((i + 1 + rng.random() * (n - i), 1), again))  # somewhere after the first showing
    return [showing for _, showing in sorted(keyed, key=lambda item: item[0])]


def pending(plan: Sequence[Showing], judgments: Iterable[Judgment]) -> list[Showing]:
    """The showings of ``plan`` that ``judgments`` (the rater's) do not answer yet, in order."""
    done = {(j.pair_id, j.repeat) for j in judgments if j.pair_id}
    return [s for s in plan if s.key not in done]
