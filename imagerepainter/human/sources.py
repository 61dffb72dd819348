"""Judgments joined with the metrics of their images: from an evaluation folder, or from a triplet file.

* :func:`evaluation_rows` — the judgments of an evaluation folder (``judgments.sqlite``).
  ``image_a`` and ``image_b`` are cases' ``best_image`` paths, so each image's model, mode,
  category, style and stored metrics come from ``results.sqlite``; metrics named in
  ``extra_metrics`` are computed on the best images against the references.
* :func:`triplet_rows` — a 2AFC set made elsewhere (NIGHTS and the like): a CSV or JSONL file
  of judgments with ``reference_image`` set, every path relative to the file's folder, scored
  with the metrics asked for.

Everything is checked before any metric runs: a judgment of an image no case made, a
missing file or an unknown metric raises :class:`~imagerepainter.errors.ConfigurationError`
(or the metric's own error) with the fix.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .agreement import ScoredJudgment
from .judgments import Judgment, JudgmentStore, read_judgments_file

__all__ = ["REFERENCES_DIR", "evaluation_rows", "load_judgments", "score_images", "triplet_rows"]

REFERENCES_DIR = "judging/references"
"""Where the judging page keeps copies of the references inside an evaluation folder (``<sha256>.<ext>``)."""


def load_judgments(folder: str | os.PathLike[str]) -> list[Judgment]:
    """The judgments stored in ``folder``, or a ConfigurationError saying how to get some."""
    folder = Path(folder)
    judgments = JudgmentStore(folder).judgments() if (folder / "judgments.sqlite").is_file() else []
    if not judgments:
        raise ConfigurationError(
            f"{str(folder)!r} holds no judgments yet: collect some with 'imagerepainter judge {folder}' or "
            f"import a CSV/JSONL with 'imagerepainter judgments import {folder} FILE', then run this again."
        )
    return judgments


def score_images(
    metrics: Sequence[Any], reference: Any, paths: Sequence[Path]
) -> tuple[dict[str, dict[Path, float]], dict[str, bool]]:
    """Every metric of every image at ``paths`` against ``reference`` (a path): ``{metric: {path: value}}``."""
    from ..bench.metrics import compute_metrics
    from ..images import load_image

    images = [load_image(p) for p in paths]
    values = compute_metrics(metrics, load_image(reference), images)
    return (
        {name: dict(zip(paths, column, strict=True)) for name, column in values.items()},
        {m.name: bool(m.higher_is_better) for m in metrics},
    )


def _resolve(names: Sequence[str] | None, mllm: Any) -> list[Any]:
    if not names:
        return []
    from ..bench.metrics import resolve_metrics

    return list(resolve_metrics(list(names), mllm=mllm))


def _within(root: Path, name: str, what: str) -> Path:
    path = (root / name).resolve()
    if not path.is_file():
        raise ConfigurationError(f"{what} {name!r} is not a file under {str(root)!r}; paths are relative to it.")
    return path


# ----------------------------------------------------------------------------- evaluations


def _reference_path(folder: Path, judgment: Judgment, sha256: str) -> Path:
    if judgment.reference_image:
        return _within(folder, judgment.reference_image, "The reference image")
    found = sorted((folder / REFERENCES_DIR).glob(f"{sha256}.*"))
    if not found:
        raise ConfigurationError(
            f"No copy of reference {judgment.reference_id!r} in {str(folder / REFERENCES_DIR)!r} (the judging page "
            "makes one): open the folder once with 'imagerepainter judge', or drop the metrics to compute."
        )
    return found[0]


def evaluation_rows(
    folder: str | os.PathLike[str],
    judgments: Sequence[Judgment] | None = None,
    *,
    extra_metrics: Sequence[str] | None = None,
    mllm: Any = None,
) -> list[ScoredJudgment]:
    """The judgments of an evaluation folder, each with its two cases' metrics (and ``extra_metrics``)."""
    from ..bench.store import DATABASE_NAME, ResultsStore

    folder = Path(folder)
    if not (folder / DATABASE_NAME).is_file():
        raise ConfigurationError(f"{str(folder)!r} holds no {DATABASE_NAME}; give the --out folder of an evaluation.")
    judgments = list(judgments) if judgments is not None else load_judgments(folder)
    cases = {c.best_image: c for c in ResultsStore(folder).cases() if c.status == "ok" and c.best_image}
    for j in judgments:
        for image in (j.image_a, j.image_b):
            if image not in cases:
                raise ConfigurationError(
                    f"A judgment of reference {j.reference_id!r} names {image!r}, which is no case's best image in "
                    f"{str(folder)!r}: judgments of an evaluation name images as its results do (images/...)."
                )
    metrics = _resolve(extra_metrics, mllm)
    extra: dict[str, dict[str, float]] = defaultdict(dict)
    directions: dict[str, bool] = {}
    if metrics:
        by_reference: dict[str, set[str]] = defaultdict(set)
        first: dict[str, Judgment] = {}
        for j in judgments:
            by_reference[j.reference_id] |= {j.image_a, j.image_b}
            first.setdefault(j.reference_id, j)
        for reference_id, images in sorted(by_reference.items()):
            reference = _reference_path(
                folder, first[reference_id], cases[first[reference_id].image_a].reference_sha256
            )
            names = sorted(images)
            values, directions = score_images(metrics, reference, [folder / n for n in names])
            for metric, column in values.items():
                extra[metric].update({n: column[folder / n] for n in names})
    rows = []
    for j in judgments:
        a, b = cases[j.image_a], cases[j.image_b]
        scores = {m: (a.metrics[m], b.metrics[m]) for m in a.metrics if m in b.metrics}
        hib = {m: a.higher_is_better.get(m, True) for m in scores}
        for metric, computed in extra.items():
            scores[metric] = (computed[j.image_a], computed[j.image_b])
            hib[metric] = directions[metric]
        groups = {k: v for k, v in (("category", a.category), ("style", a.style)) if v}
        rows.append(ScoredJudgment(j, scores, hib, groups, (f"{a.model} · {a.mode}", f"{b.model} · {b.mode}")))
    return rows


# ----------------------------------------------------------------------------- triplet sets


def triplet_rows(
    path: str | os.PathLike[str], metric_names: Sequence[str], *, mllm: Any = None
) -> list[ScoredJudgment]:
    """A triplet file's judgments, each scored with every metric of ``metric_names``.

    The file is a judgments CSV/JSONL (:func:`~imagerepainter.human.judgments.read_judgments_file`)
    with ``reference_image``, ``image_a`` and ``image_b`` as paths relative to its folder.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"No triplet file {str(path)!r}: give a .csv or .jsonl of judgments.")
    if not metric_names:
        raise ConfigurationError("Name the metrics to score the triplets with: --metrics ssim,psnr,...")
    judgments = read_judgments_file(path)
    if not judgments:
        raise ConfigurationError(f"{str(path)!r} holds no triplets.")
    root = path.parent.resolve()
    for number, j in enumerate(judgments, start=1):
        if not j.reference_image:
            raise ConfigurationError(f"{path}: triplet {number} has no reference_image (the reference's path).")
        for name in (j.reference_image, j.image_a, j.image_b):
            _within(root, name, f"{path}: triplet {number}: image")
    metrics = _resolve(metric_names, mllm)
    by_reference: dict[str, set[str]] = defaultdict(set)
    for j in judgments:
        by_reference[str(j.reference_image)] |= {j.image_a, j.image_b}
    values: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    directions: dict[str, bool] = {}
    for reference, images in sorted(by_reference.items()):
        names = sorted(images)
        scored, directions = score_images(metrics, root / reference, [root / n for n in names])
        for metric, column in scored.items():
            values[metric].update({(reference, n): column[root / n] for n in names})
    return [
        ScoredJudgment(
            j,
            {
                m: (v[str(j.reference_image), j.image_a], v[str(j.reference_image), j.image_b])
                for m, v in values.items()
            },
            directions,
        )
        for j in judgments
    ]
