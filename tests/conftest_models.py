"""pytest plugin: tiny random-weight models, built once per test session.

Register it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.conftest_models"]``
(or ``["conftest_models"]`` when ``tests/`` is on ``sys.path``). The fixtures return
folders that the real ``from_pretrained`` loaders read:

* ``tiny_sd_dir`` — a Stable Diffusion pipeline (64x64 images in 2 steps);
* ``tiny_clip_dir`` — a ``CLIPModel`` with its PIL image processor and tokenizer;
* ``tiny_dinov2_dir`` — a ``Dinov2Model`` with its PIL image processor.

They are built into the session's temporary directory, or into
``$IMAGEREPAINTER_TINY_MODELS`` when that variable is set (the builders are idempotent,
so that folder is reused across sessions). Tests that use them are skipped when torch,
diffusers or transformers is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagerepainter.testing.tiny_models import build_tiny_clip, build_tiny_dinov2, build_tiny_stable_diffusion

__all__ = ["tiny_clip_dir", "tiny_dinov2_dir", "tiny_models_root", "tiny_sd_dir"]


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder that holds the tiny models of this session."""
    configured = os.environ.get("IMAGEREPAINTER_TINY_MODELS")
    if configured:
        root = Path(configured).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        return root
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_sd_dir(tiny_models_root: Path) -> Path:
    """A saved tiny Stable Diffusion pipeline (seed 0); load it with ``AutoPipelineForText2Image``."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    return build_tiny_stable_diffusion(tiny_models_root / "stable-diffusion", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_dir(tiny_models_root: Path) -> Path:
    """A saved tiny ``CLIPModel`` with ``CLIPImageProcessorPil`` and tokenizer (seed 0)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_clip(tiny_models_root / "clip", seed=0)


@pytest.fixture(scope="session")
def tiny_dinov2_dir(tiny_models_root: Path) -> Path:
    """A saved tiny ``Dinov2Model`` with ``BitImageProcessorPil`` (seed 0)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_dinov2(tiny_models_root / "dinov2", seed=0)
