"""Shared fixtures. Tests never reach the network: every server binds 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

EVALREF = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "evalref-100"


@pytest.fixture(scope="session")
def evalref_dir() -> Path:
    """The EvalRef-100 photographs, read in place from ../shared (never copied into the repo)."""
    if not EVALREF.is_dir():
        pytest.skip(f"EvalRef-100 not found at {EVALREF}")
    return EVALREF


pytest_plugins = ["tests.conftest_models"]
