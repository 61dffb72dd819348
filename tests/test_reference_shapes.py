"""Any reference shape renders, or is refused before a paid call; large references are reduced as they are read.

A 1x300 line or a 20000x20 strip makes a size outside what models render; the size is clamped
to the model's limits (said in the result's notes) before any call, and folders an older version
wrote with such a size resume. A photograph larger than any step uses is reduced as it is read,
and its original is identified by the SHA-256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imagerepainter import Repainter, RepainterConfig
from imagerepainter.backends.base import T2ICapabilities, fit_size, side_limits
from imagerepainter.errors import ConfigurationError
from imagerepainter.images import ORIGINAL_INFO, image_sha256, load_image
from imagerepainter.runs.folder import BackendSpecs, RunFolder
from imagerepainter.testing.fakes import FakeMLLM, FakeT2I

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(1, 300), (20000, 20)]
_SANDBOX = ("--mllm", "sandbox", "--t2i", "sandbox", "--max-rounds", "1")


def _line(tmp_path: Path, size: tuple[int, int]) -> Path:
    path = tmp_path / f"line-{size[0]}x{size[1]}.png"
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def _photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A photograph-like JPEG: gradients and noise, so decoding is real work."""
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([255 * x / width, 128 + 127 * np.sin(x / 40 + y / 70), 255 * (1 - y / height)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


@dataclass
class LimitedT2I(FakeT2I):
    """A model with a native size, side limits and a multiple, like a diffusers pipeline."""

    native: int = 512 * 512
    multiple: int = 64
    min_side: int = 64
    max_side: int = 1024

    def __post_init__(self) -> None:
        super().__post_init__()
        self.capabilities = T2ICapabilities(
            max_batch_size=4,
            native_pixels=self.native,
            size_multiple=self.multiple,
            min_side=self.min_side,
            max_side=self.max_side,
        )


@pytest.mark.parametrize("shape", SHAPES)
def test_extreme_shapes_render_within_the_models_limits_and_say_so(tmp_path, shape):
    t2i = LimitedT2I()
    rp = Repainter(mllm=FakeMLLM(), t2i=t2i, scorer="sandbox", max_rounds=1)
    result = rp.run(_line(tmp_path, shape))
    sizes = {(r.width, r.height) for r in t2i.requests}
    assert len(sizes) == 1
    width, height = sizes.pop()
    assert 64 <= width <= 1024 and 64 <= height <= 1024 and width % 64 == 0 and height % 64 == 0
    assert (width > height) == (shape[0] > shape[1])  # the shape kept as far as the limits allow
    assert result.finished and (result.config.generation.width, result.config.generation.height) == (width, height)
    assert any(f"{shape[0]}x{shape[1]}" in note and f"{width}x{height}" in note for note in result.notes)


def test_a_size_no_model_limit_allows_is_refused_before_any_call(tmp_path):
    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i=LimitedT2I(min_side=2048, max_side=1024), scorer="sandbox", max_rounds=1)
    with pytest.raises(ConfigurationError, match="No size fits the model"):
        rp.run(_line(tmp_path, (1, 300)))
    assert mllm.calls == []


@pytest.mark.parametrize("shape", SHAPES)
def test_a_reference_the_scorer_cannot_use_is_refused_before_any_call(tmp_path, shape):
    """SSIM needs a reference larger than its window: a 1x300 line is refused while preparing, not in ``score``."""
    mllm = FakeMLLM()
    rp = Repainter(mllm=mllm, t2i="sandbox", scorer="ssim", max_rounds=1)
    with pytest.raises(ConfigurationError, match="not larger than the SSIM window"):
        rp.run(_line(tmp_path, shape))
    assert mllm.calls == []


def test_the_ssim_refusal_names_a_window_that_fits_or_another_scorer(tmp_path):
    strip = _line(tmp_path, (20000, 20))  # read as 4096x4: a 3-pixel window fits
    with pytest.raises(ConfigurationError, match="pass kernel_size=3 or smaller"):
        Repainter(mllm=FakeMLLM(), t2i="sandbox", scorer="ssim", max_rounds=1).run(strip)
    result = Repainter(mllm="sandbox", t2i="sandbox", scorer="ssim?kernel_size=3", max_rounds=1).run(strip)
    assert result.best is not None and result.best.score is not None
    with pytest.raises(ConfigurationError, match="choose another scorer"):
        Repainter(mllm=FakeMLLM(), t2i="sandbox", scorer="ssim", max_rounds=1).run(_line(tmp_path, (1, 300)))


def test_the_command_line_refuses_a_reference_the_scorer_cannot_use_in_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "imagerepainter.cli.main",
            "run",
            str(_line(tmp_path, (1, 300))),
            *_SANDBOX,
            "--scorer",
            "ssim",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().count("\n") == 0 and "SSIM window" in done.stderr
    assert "Traceback" not in done.stderr


def test_fitted_sizes_keep_the_aspect_as_closely_as_the_limits_allow():
    caps = T2ICapabilities(native_pixels=1024 * 1024, size_multiple=16, min_side=256, max_side=2048)
    low, high = side_limits(caps)
    for shape in [(1, 300), (300, 1), (20000, 20), (4000, 3000), (512, 512), (1, 1), (7, 4096)]:
        width, height = fit_size(*shape, native_pixels=1024 * 1024, multiple=16, min_side=low, max_side=high)
        assert low <= width <= high and low <= height <= high and width % 16 == 0 and height % 16 == 0
        if max(shape) / min(shape) <= high / low:  # a shape the limits can hold keeps its aspect
            assert abs(width / height - shape[0] / shape[1]) <= 16 / min(width, height) * max(1, shape[0] / shape[1])
        else:  # the longest side at its limit, the other at the smallest the limits allow
            assert sorted((width, height)) == [low, high]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_command_line_runs_extreme_shapes(tmp_path, shape):
    reference = _line(tmp_path, shape)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "imagerepainter.cli.main", "run", str(reference), *_SANDBOX, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished"
    generation = record["result"]["config"]["generation"]
    assert (
        max(generation["width"], generation["height"]) == 4096 and min(generation["width"], generation["height"]) >= 8
    )
    assert any("closest shape" in note for note in record["result"]["notes"])


def _size_before_clamping(config, reference_size, t2i):
    """How sizes were derived before they were clamped: the native pixel count at the reference's aspect."""
    width, height = reference_size
    scale = (t2i.capabilities.native_pixels / (width * height)) ** 0.5
    gen = config.generation.model_copy(update={"width": round(width * scale), "height": round(height * scale)})
    return config.model_copy(update={"generation": gen}), None


def test_a_folder_recorded_with_a_size_out_of_bounds_resumes(tmp_path, monkeypatch):
    folder = RunFolder(tmp_path / "old")
    specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")
    with monkeypatch.context() as patch:  # write the folder as an older version did
        patch.setattr("imagerepainter.loop.sizing.fit_to_reference", _size_before_clamping)
        with pytest.raises(Exception, match="less than or equal to 4096"):
            folder.run(specs, _line(tmp_path, (1, 300)), overrides={"max_rounds": 2})
    record = json.loads((folder.path / "run.json").read_text())
    assert record["status"] == "interrupted"  # the checkpoint holds height=4434 (the record reads it repaired)
    described = [c for c in record["result"]["calls"] if c["node"] == "describe"]
    assert described  # the describe stage was paid for before the old version failed

    result = RunFolder(tmp_path / "old").resume()
    assert result.finished and result.rounds
    assert (result.config.generation.width, result.config.generation.height) == (14, 4096)
    assert [c for c in result.calls if c["node"] == "describe"] == described  # nothing paid for twice
    assert {c.image.size for c in result.candidates} == {(14, 4096)}


def test_a_large_photograph_is_reduced_as_it_is_read_and_identified_by_its_bytes(tmp_path):
    path = _photo(tmp_path / "photo.jpg", (3000, 2000))
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1)
    result = rp.run(path)
    assert (result.reference["width"], result.reference["height"]) == (768, 512)  # the MLLM's side, the largest used
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert any("3000x2000" in note and f"original's bytes is {digest}" in note for note in result.notes)

    image = load_image(path, max_side=768)
    assert image.size == (768, 512) and image.info[ORIGINAL_INFO] == {
        "width": 3000,
        "height": 2000,
        "sha256": digest,
        "sha256_of": "bytes",
    }
    full = np.asarray(load_image(path).resize((768, 512), Image.Resampling.LANCZOS), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16) - full).mean() < 2  # scaled decoding loses nothing visible


def test_an_ordinary_reference_is_read_and_identified_as_before(tmp_path):
    path = _photo(tmp_path / "photo.jpg", (640, 480), seed=3)
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=1)
    result = rp.run(path)
    assert result.reference["sha256"] == image_sha256(load_image(path)) and result.notes == []
    assert load_image(path, max_side=768).tobytes() == load_image(path).tobytes()


def test_the_reduction_uses_the_rendered_size_when_it_is_larger():
    config = RepainterConfig().with_overrides(width=1536, height=1024)
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", config=config, max_rounds=1)
    result = rp.run(Image.new("RGB", (3000, 2000), "navy"))
    assert (result.reference["width"], result.reference["height"]) == (1536, 1024)


def test_the_memory_benchmark_runs_in_its_small_mode(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import large_photo_memory
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    report = large_photo_memory.main(["--small", "--json", str(tmp_path / "memory.json")])
    assert json.loads((tmp_path / "memory.json").read_text()) == report
    large = [r for r in report["runs"] if r["photo"] == "large"]
    assert [r["how"] for r in large] == ["python", "run_folder"] and all(r["reference"] == [768, 576] for r in large)
    assert all(r["peak_mb"] > 0 for r in report["runs"])
