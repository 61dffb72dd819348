"""The agreement statistics (hand-computed examples) and the triplet command, checked against scikit-image."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagerepainter.cli.main import main
from imagerepainter.human.agreement import (
    ScoredJudgment,
    cluster_bootstrap,
    human_ceiling,
    krippendorff_alpha,
    metric_agreement,
)
from imagerepainter.human.judgments import Judgment
from imagerepainter.human.ranking import bradley_terry, ranking_agreement
from imagerepainter.testing.raters import SimulatedRater, write_distortion_triplets

skimage_metrics = pytest.importorskip("skimage.metrics")


def row(ref, a, b, choice, values, *, rater="ann", repeat=False, hib=True, systems=None, created=0.0):
    j = Judgment(reference_id=ref, image_a=a, image_b=b, choice=choice, rater=rater, repeat=repeat, created=created)
    return ScoredJudgment(j, {"m": values}, {"m": hib}, systems=systems)


# ----------------------------------------------------------------------------- 2AFC agreement


def test_agreement_counts_a_metric_tie_half_and_leaves_out_cant_tell():
    rows = [
        row("r1", "x", "y", "a", (0.9, 0.1)),  # agrees: 1
        row("r1", "x", "y", "b", (0.9, 0.1)),  # disagrees: 0
        row("r2", "x", "y", "a", (0.5, 0.5)),  # the metric ties: 0.5
        row("r2", "x", "y", "tie", (0.9, 0.1)),  # can't tell: left out, counted
        row("r3", "y", "x", "b", (0.2, 0.7), hib=False),  # a distance: lower y is better, rater chose x: 0
    ]
    est = metric_agreement(rows, "m")
    assert est.value == pytest.approx(1.5 / 4) and est.n == 4 and est.excluded == 1 and est.references == 3
    assert est.low <= est.value <= est.high


def test_majority_uses_each_raters_first_answer_and_leaves_out_split_pairs():
    rows = [
        row("r1", "x", "y", "a", (0.9, 0.1), rater="ann"),
        row("r1", "y", "x", "b", (0.1, 0.9), rater="bob"),  # the same pair shown the other way round: x again
        row("r1", "x", "y", "b", (0.9, 0.1), rater="cat"),
        row("r1", "x", "y", "b", (0.9, 0.1), rater="ann", repeat=True),  # a repeat is not a vote
        row("r2", "x", "y", "a", (0.9, 0.1), rater="ann"),
        row("r2", "x", "y", "b", (0.9, 0.1), rater="bob"),  # split 1-1: left out
    ]
    est = metric_agreement(rows, "m", majority=True)
    assert (est.value, est.n, est.excluded) == (1.0, 1, 1)


def test_the_bootstrap_is_seeded_and_ignores_the_order_of_the_judgments():
    rng = random.Random(3)
    rows = [
        row(f"r{k % 7}", "x", "y", rng.choice("ab"), (rng.random(), rng.random()), rater=f"p{k % 3}") for k in range(60)
    ]
    first = metric_agreement(rows, "m", seed=5)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert metric_agreement(shuffled, "m", seed=5) == first
    assert metric_agreement(rows, "m", seed=6) != first  # the seed matters
    assert first.low < first.value < first.high


def test_the_bootstrap_resamples_references_not_judgments():
    # one reference always agrees (10 judgments), one never does (10): a judgment-level bootstrap
    # would give a narrow interval around 0.5; resampling two references gives 0, 0.5 or 1.
    units = [("good", 1.0, 1.0)] * 10 + [("bad", 0.0, 1.0)] * 10
    est = cluster_bootstrap(units, resamples=2000)
    assert est.value == 0.5 and est.low == 0.0 and est.high == 1.0


# ----------------------------------------------------------------------------- the human ceiling


def test_krippendorff_alpha_against_hand_computed_examples():
    # Coincidences: unit 1 gives o_aa += 2, unit 2 o_bb += 2, unit 3 o_ab = o_ba = 1, unit 4 (three a's,
    # 6 ordered pairs / (3 - 1)) o_aa += 3. So n_a = 6, n_b = 3, n = 9, D_o ~ o_ab + o_ba = 2,
    # D_e ~ 2 n_a n_b = 36: alpha = 1 - (n - 1) * 2 / 36 = 1 - 16 / 36 = 5 / 9.
    assert krippendorff_alpha([["a", "a"], ["b", "b"], ["a", "b"], ["a", "a", "a"]]) == pytest.approx(5 / 9)
    # Always disagreeing: o_ab = o_ba = 2, n = 4: 1 - 3 * 4 / 8 = -0.5.
    assert krippendorff_alpha([["a", "b"], ["b", "a"]]) == pytest.approx(-0.5)
    assert krippendorff_alpha([["a", "a"], ["b", "b", "b"]]) == 1.0
    assert krippendorff_alpha([["a"], ["b"]]) is None  # nothing to pair


def test_ceiling_between_raters_and_within_a_rater():
    rows = [
        row("r1", "x", "y", "a", (1, 0), rater="ann", created=1),
        row("r1", "x", "y", "a", (1, 0), rater="bob", created=2),
        row("r1", "y", "x", "a", (0, 1), rater="cat", created=3),  # chose y: disagrees with ann and bob
        row("r1", "y", "x", "b", (0, 1), rater="ann", repeat=True, created=4),  # x again: consistent
        row("r2", "x", "y", "b", (1, 0), rater="ann", created=5),
        row("r2", "x", "y", "a", (1, 0), rater="ann", repeat=True, created=6),  # inconsistent
        row("r2", "x", "y", "tie", (1, 0), rater="bob", created=7),  # left out
    ]
    ceiling = human_ceiling(rows)
    assert ceiling.raters == 3
    assert (ceiling.inter_rater.value, ceiling.inter_rater.n) == (pytest.approx(1 / 3), 3)  # ann-bob of 3 pairs
    assert (ceiling.intra_rater.value, ceiling.intra_rater.n) == (0.5, 2)
    assert ceiling.alpha == pytest.approx(krippendorff_alpha([["x", "x", "y"], ["y"]]))


# ----------------------------------------------------------------------------- rankings


def test_bradley_terry_recovers_known_strengths_and_counts_ties_half():
    truth = {"a": 1.0, "b": 0.0, "c": -1.0}
    rng = random.Random(0)
    games = []
    for i, j in [("a", "b"), ("b", "c"), ("a", "c")] * 400:
        p = 1 / (1 + math.exp(truth[j] - truth[i]))
        games.append((i, j, 1.0 if rng.random() < p else 0.0))
    fitted = bradley_terry(games)
    for name, value in truth.items():
        assert fitted[name] == pytest.approx(value, abs=0.12)
    even = bradley_terry([("a", "b", 0.5)] * 10 + [("b", "c", 0.5)] * 10)
    assert max(abs(v) for v in even.values()) < 1e-6
    assert math.isfinite(bradley_terry([("a", "b", 1.0)] * 5)["a"])  # an unbeaten system stays finite


def test_kendall_tau_is_one_when_the_metric_orders_systems_as_people_do():
    rows = []
    quality = {"good": 0.9, "fair": 0.5, "poor": 0.1}
    for ref in range(6):
        for s, t in [("good", "fair"), ("fair", "poor"), ("good", "poor")]:
            values = (quality[s] + ref / 100, quality[t] + ref / 100)
            rows.append(row(f"r{ref}", f"{s}{ref}", f"{t}{ref}", "a", values, systems=(s, t)))
    tau = ranking_agreement(rows, "m", resamples=200)
    assert (tau.tau, tau.systems, tau.low, tau.high) == (1.0, 3, 1.0, 1.0)
    flipped = [ScoredJudgment(r.judgment, r.scores, {"m": False}, systems=r.systems) for r in rows]
    assert ranking_agreement(flipped, "m", resamples=200).tau == -1.0


def test_simulated_rater_is_seeded_and_errs_at_its_rate():
    rater = SimulatedRater(lambda ref, image: {"x": 1.0, "y": 0.0}[image], error_rate=0.2, cant_tell_rate=0.1, seed=4)
    answers = [rater.answer(f"r{k}", "x", "y").choice for k in range(4000)]
    assert answers == [rater.answer(f"r{k}", "x", "y").choice for k in range(4000)]
    assert answers.count("tie") / 4000 == pytest.approx(0.1, abs=0.015)
    clear = [a for a in answers if a != "tie"]
    assert clear.count("b") / len(clear) == pytest.approx(0.2, abs=0.02)


# ----------------------------------------------------------------------------- triplets: the held-out check


def _skimage_agreement(csv_path: Path) -> dict[str, float]:
    """Each metric's 2AFC agreement, computed from the files with scikit-image and nothing of ours."""
    root = csv_path.parent
    with csv_path.open(encoding="utf-8") as f:
        triplets = list(csv.DictReader(f))

    def array(name):
        return np.asarray(Image.open(root / name).convert("RGB"), dtype=np.float64) / 255.0

    def ssim(a, b):
        return skimage_metrics.structural_similarity(
            a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )

    def psnr(a, b):
        if np.array_equal(a, b):  # a copy (a very light blur of 8-bit pixels): infinitely close
            return math.inf
        return skimage_metrics.peak_signal_noise_ratio(a, b, data_range=1.0)

    out = {}
    for name, fn in (("ssim", ssim), ("psnr", psnr)):
        credit = []
        for t in triplets:
            if t["choice"] == "tie":
                continue
            ref = array(t["reference_image"])
            va, vb = fn(ref, array(t["image_a"])), fn(ref, array(t["image_b"]))
            close = math.isfinite(va + vb) and abs(va - vb) <= 1e-12 * max(1, abs(va), abs(vb))
            same = va == vb or close  # inf == inf: both are copies
            better = "tie" if same else ("a" if va > vb else "b")
            credit.append(0.5 if better == "tie" else float(better == t["choice"]))
        out[name] = sum(credit) / len(credit)
    return out


def test_triplets_agreement_equals_an_independent_scikit_image_computation(tmp_path, capsys):
    triplets = write_distortion_triplets(tmp_path / "set", 40, raters=2, error_rate=0.1, cant_tell_rate=0.05, seed=2)
    code = main(["agreement", "--triplets", str(triplets), "--metrics", "ssim,psnr", "--out", str(tmp_path / "o")])
    assert code == 0
    report = json.loads((tmp_path / "o" / "agreement.json").read_text())
    expected = _skimage_agreement(triplets)
    found = {m["name"]: m["agreement"] for m in report["metrics"]}
    assert set(found) == {"ssim", "psnr"}
    for name, value in expected.items():
        assert abs(found[name]["value"] - value) <= 1e-9
        assert found[name]["low"] <= value <= found[name]["high"]
    assert report["references"] == 40 and report["raters"] == ["rater0", "rater1"]
    assert "agrees with the raters' majority on" in capsys.readouterr().err
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"agreement.json", "agreement.md", "agreement.html"}


def test_a_rater_who_never_errs_is_matched_by_a_metric_that_sees_the_distortion(tmp_path):
    # noise only: PSNR falls with the noise level, so it agrees with the truth on (nearly) every triplet
    triplets = write_distortion_triplets(tmp_path / "set", 30, kinds=("noise",), seed=1)
    assert main(["agreement", "--triplets", str(triplets), "--metrics", "psnr", "--out", str(tmp_path / "o")]) == 0
    (psnr,) = json.loads((tmp_path / "o" / "agreement.json").read_text())["metrics"]
    assert psnr["agreement"]["value"] >= 0.9


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "ssim"], "Give an evaluation folder (EVAL_DIR) or --triplets FILE"),
        (["--triplets", "{set}/triplets.csv", "--out", "{o}"], "--triplets needs --metrics"),
        (["--triplets", "{set}/triplets.csv", "--metrics", "ssim"], "--triplets needs --out"),
        (["--triplets", "{set}/nope.csv", "--metrics", "ssim", "--out", "{o}"], "No triplet file"),
        (["--triplets", "{set}/triplets.csv", "--metrics", "ssmi", "--out", "{o}"], "Unknown metric 'ssmi'"),
        (["--triplets", "{set}/broken.csv", "--metrics", "ssim", "--out", "{o}"], "is not a file under"),
        (["--triplets", "{set}/noref.csv", "--metrics", "ssim", "--out", "{o}"], "has no reference_image"),
    ],
)
def test_bad_triplet_input_is_refused_before_anything_is_written(tmp_path, capsys, args, message):
    triplets = write_distortion_triplets(tmp_path / "set", 2)
    text = triplets.read_text()
    (tmp_path / "set" / "broken.csv").write_text(text.replace("images/ref0001_b.png", "images/../../gone.png"))
    (tmp_path / "set" / "noref.csv").write_text(text.replace("images/ref0000.png", ""))
    argv = ["agreement", *[a.format(set=tmp_path / "set", o=tmp_path / "o") for a in args]]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
