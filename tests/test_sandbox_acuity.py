"""Graded sandbox describers: a lower acuity sees less, describes worse, and never differs at 1."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from imagerepainter import Repainter
from imagerepainter.backends.registry import check_spec, resolve_mllm
from imagerepainter.errors import ConfigurationError
from imagerepainter.sandbox import SandboxMLLM, perceive, random_scene, render_scene
from imagerepainter.sandbox.acuity import blurred

ACUITIES = (1.0, 0.7, 0.5, 0.3)


def _reference(seed: int):
    return render_scene(random_scene(1000 + seed), 128, 128)


def test_acuity_is_a_spec_option_checked_for_its_range():
    check_spec("mllm", "sandbox?acuity=0.5")
    assert resolve_mllm("sandbox?acuity=0.5").acuity == 0.5
    for bad in ("0", "1.5", "-0.2"):
        with pytest.raises(ConfigurationError, match=r"acuity must be in \(0, 1\]"):
            resolve_mllm(f"sandbox?acuity={bad}")


def test_full_acuity_describes_exactly_as_before():
    image = _reference(3)
    plain = Repainter(mllm=SandboxMLLM(), t2i="sandbox", scorer="sandbox").describe(image)
    sharp = Repainter(mllm="sandbox?acuity=1", t2i="sandbox", scorer="sandbox").describe(image)
    assert sharp.model_dump(exclude={"calls"}) == plain.model_dump(exclude={"calls"})  # calls: in finishing order
    assert blurred(perceive(image), 1.0) is perceive(image)


def test_what_is_seen_misses_more_and_drifts_further_as_acuity_falls():
    for seed in range(8):
        seen = perceive(_reference(seed))
        views = [blurred(seen, a) for a in ACUITIES]
        counts = [len(v.blobs) for v in views]
        assert counts == sorted(counts, reverse=True), (seed, counts)
        drift = [math.dist(v.background, seen.background) for v in views]
        assert drift == sorted(drift) and drift[-1] > 0, (seed, drift)
        for blob in views[-1].blobs:  # a shape the dullest still sees: further off at each lower acuity
            true = next(b for b in seen.blobs if b.kind == blob.kind and b.size == blob.size)
            same = [next(b for b in v.blobs if b.size == true.size and b.kind == true.kind) for v in views]
            places = [math.dist((b.x, b.y), (true.x, true.y)) for b in same]
            colours = [math.dist(b.color, true.color) for b in same]
            assert places == sorted(places) and colours == sorted(colours), (seed, places, colours)
        assert blurred(perceive(_reference(seed)), 0.3) == views[-1]  # the same image and acuity: the same view


def test_the_first_description_of_a_duller_describer_regenerates_worse():
    """Per acuity, the one-shot score of the description's render; the mean falls as acuity falls."""
    means = {}
    for acuity in (1.0, 0.5, 0.3):
        rp = Repainter(mllm=f"sandbox?acuity={acuity}", t2i="sandbox", scorer="sandbox")
        scores = [
            rp.run(
                _reference(seed), max_rounds=1, variants=1, include_current_prompt="always", progress=False
            ).best.score
            for seed in range(12)
        ]
        means[acuity] = float(np.mean(scores))
    for hi, lo in itertools.pairwise((1.0, 0.5, 0.3)):
        assert means[hi] > means[lo], means
