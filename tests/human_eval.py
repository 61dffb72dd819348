"""A tiny offline evaluation folder for the human-judgment tests: 3 sandbox scenes, 2 models, both modes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagerepainter.bench.datasets import load_dataset
from imagerepainter.bench.runner import evaluate

MODELS = {"exact": "sandbox", "loose": "sandbox?fidelity=0.6"}
"""Model names the judging page must never show."""
BLINDED_WORDS = ("exact", "loose", "sandbox", "single", "repaint", "fidelity")


def make_evaluation(root: Path, *, references: int = 3) -> Path:
    """Run ``imagerepainter eval`` (through its API) into ``root / "eval"``; returns that folder."""
    dataset = load_dataset(f"sandbox-scenes:{references}", cache_dir=root / "datasets")
    out = root / "eval"
    evaluate(
        dataset,
        mllm="sandbox",
        models=MODELS,
        out=out,
        modes=["single", "repaint"],
        metrics=["sandbox"],
        settings={"max_rounds": 2, "variants": 2, "height": 64, "width": 64},
    )
    return out


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One evaluation per test module (import this fixture into the module)."""
    return make_evaluation(tmp_path_factory.mktemp("judging"))


@pytest.fixture
def folder(evaluation: Path, tmp_path: Path) -> Path:
    """A fresh copy of the module's evaluation, so each test starts with no judgments."""
    return Path(shutil.copytree(evaluation, tmp_path / "eval"))
