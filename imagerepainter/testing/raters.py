"""Simulated raters: 2AFC answers from a known truth, with a set error rate, for testing the agreement report.

A :class:`SimulatedRater` knows how close each image truly is to its reference (a function
``closeness(reference_id, image) -> float``, higher is closer). Asked about a pair it answers
"can't tell" with probability ``cant_tell_rate``, else the truly closer image, flipped with
probability ``error_rate``. Every answer is drawn from a generator seeded by (seed, rater,
pair, showing), so the same rater answers the same pair the same way in any order.

A metric that ranks images exactly as the truth does then agrees with this rater on
``1 - error_rate`` of the judgments (in expectation); that is what the tests check the report
recovers. Truths used in the tests:

* in the sandbox world, an evaluation's cases are scored against the rendered scene by the
  ``sandbox`` scorer: the truth is that score (:func:`evaluation_truth`);
* for distortion triplets (:func:`write_distortion_triplets`), the milder distortion is closer.

Example:
    >>> rater = SimulatedRater(lambda ref, image: {"x.png": 0.9, "y.png": 0.2}[image], error_rate=0.0)
    >>> rater.answer("r1", "x.png", "y.png").choice, rater.answer("r1", "y.png", "x.png").choice
    ('a', 'b')
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from ..human.judgments import Judgment

__all__ = ["SimulatedRater", "evaluation_pairs", "evaluation_truth", "write_distortion_triplets"]


class SimulatedRater:
    """Answers pairs from ``closeness`` with an error rate and a "can't tell" rate, seeded.

    Args:
        closeness: ``closeness(reference_id, image) -> float``; higher is truly closer.
        name: The rater's name in the judgments.
        error_rate: Chance of choosing the truly farther image (0 to 0.5).
        cant_tell_rate: Chance of answering "can't tell".
        seed: Seeds every answer (with the rater's name and the pair).
    """

    def __init__(
        self,
        closeness: Callable[[str, str], float],
        *,
        name: str = "simulated",
        error_rate: float = 0.1,
        cant_tell_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not (0.0 <= error_rate <= 0.5 and 0.0 <= cant_tell_rate < 1.0):
            raise ValueError("error_rate must be in [0, 0.5] and cant_tell_rate in [0, 1).")
        self.closeness, self.name = closeness, name
        self.error_rate, self.cant_tell_rate, self.seed = error_rate, cant_tell_rate, seed

    def answer(self, reference_id: str, image_a: str, image_b: str, *, repeat: bool = False, **fields: Any) -> Judgment:
        """The rater's judgment of one showing of a pair (``fields`` go into the :class:`Judgment`)."""
        key = f"{self.seed}|{self.name}|{reference_id}|{image_a}|{image_b}|{repeat}"
        rng = random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
        if rng.random() < self.cant_tell_rate:
            choice = "tie"
        else:
            a, b = self.closeness(reference_id, image_a), self.closeness(reference_id, image_b)
            truly_a = a > b or (a == b and rng.random() < 0.5)
            choice = "a" if truly_a != (rng.random() < self.error_rate) else "b"
        return Judgment(
            reference_id=reference_id,
            image_a=image_a,
            image_b=image_b,
            choice=choice,  # type: ignore[arg-type]
            rater=self.name,
            repeat=repeat,
            source="simulated",
            **fields,
        )

    def judge(self, pairs: Sequence[tuple[str, str, str]], *, repeat_every: int = 0) -> list[Judgment]:
        """Answer every ``(reference_id, image_a, image_b)``; every ``repeat_every``-th pair is shown again, swapped."""
        out = []
        for n, (reference_id, a, b) in enumerate(pairs, start=1):
            out.append(self.answer(reference_id, a, b))
            if repeat_every and n % repeat_every == 0:
                out.append(self.answer(reference_id, b, a, repeat=True))
        return out


def evaluation_pairs(cases: Sequence[Any]) -> list[tuple[str, str, str]]:
    """Every pair of ok cases of the same reference (as ``(reference_id, best_image, best_image)``), sorted."""
    by_reference: dict[str, list[str]] = {}
    for case in cases:
        if case.status == "ok" and case.best_image:
            by_reference.setdefault(case.reference_id, []).append(case.best_image)
    return [(ref, a, b) for ref, images in sorted(by_reference.items()) for a, b in combinations(sorted(images), 2)]


def evaluation_truth(cases: Sequence[Any], metric: str = "sandbox") -> Callable[[str, str], float]:
    """The closeness of an evaluation's best images: their stored ``metric`` (in the sandbox world, the
    ``sandbox`` scorer against the rendered scene), signed so that higher is closer."""
    values = {
        c.best_image: (1.0 if c.higher_is_better.get(metric, True) else -1.0) * c.metrics[metric]
        for c in cases
        if c.best_image and metric in c.metrics
    }
    return lambda reference_id, image: values[image]


# ----------------------------------------------------------------------------- distortion triplets


def _scene(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random RGB image in [0, 1]: gradients and soft blobs."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([rng.uniform(0.2, 0.8) + rng.uniform(-0.3, 0.3) * (xx if c % 2 else yy) for c in range(3)], -1)
    for _ in range(4):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.25)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        image = image + blob[..., None] * rng.uniform(-0.5, 0.5, size=3)
    return np.clip(image, 0.0, 1.0)


def _distort(image: np.ndarray, kind: str, severity: float, rng: np.random.Generator) -> Image.Image:
    if kind == "noise":
        out = image + rng.normal(0.0, 0.25 * severity, image.shape)
    elif kind == "shift":
        out = image + 0.35 * severity
    else:
        pil = Image.fromarray((image * 255).round().astype(np.uint8))
        return pil.filter(ImageFilter.GaussianBlur(radius=3.0 * severity))
    return Image.fromarray((np.clip(out, 0.0, 1.0) * 255).round().astype(np.uint8))


def write_distortion_triplets(
    folder: str | os.PathLike[str],
    count: int,
    *,
    raters: int = 1,
    error_rate: float = 0.0,
    cant_tell_rate: float = 0.0,
    size: int = 48,
    seed: int = 0,
    kinds: Sequence[str] = ("noise", "blur", "shift"),
) -> Path:
    """Write ``count`` references, two distortions of each, and ``triplets.csv`` answered by the raters.

    Each image is distorted by one of ``kinds`` at a severity drawn from (0.1, 1); the truth is
    the milder distortion. ``raters`` simulated raters (``rater0``, ``rater1`` ...) answer every
    triplet with ``error_rate`` and ``cant_tell_rate``. Returns the CSV's path.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    severity: dict[str, float] = {}
    triplets = []
    for n in range(count):
        reference = _scene(rng, size)
        ref_name = f"images/ref{n:04d}.png"
        Image.fromarray((reference * 255).round().astype(np.uint8)).save(folder / ref_name)
        names = []
        for side in "ab":
            kind, level = str(rng.choice(list(kinds))), float(rng.uniform(0.1, 1.0))
            name = f"images/ref{n:04d}_{side}.png"
            _distort(reference, kind, level, rng).save(folder / name)
            severity[name] = level
            names.append(name)
        triplets.append((f"ref{n:04d}", ref_name, names[0], names[1]))
    panel = [
        SimulatedRater(
            lambda ref, image: -severity[image],
            name=f"rater{k}",
            error_rate=error_rate,
            cant_tell_rate=cant_tell_rate,
            seed=seed + k,
        )
        for k in range(raters)
    ]
    with (folder / "triplets.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["reference_id", "reference_image", "image_a", "image_b", "choice", "rater"])
        for reference_id, ref_name, a, b in triplets:
            for person in panel:
                writer.writerow([reference_id, ref_name, a, b, person.answer(reference_id, a, b).choice, person.name])
    return folder / "triplets.csv"
