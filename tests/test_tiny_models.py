"""The tiny model builders: real save_pretrained / from_pretrained round trips, idempotent and seeded."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch
from safetensors.torch import load_file

from imagerepainter.errors import ConfigurationError
from imagerepainter.testing.tiny_models import (
    MARKER_NAME,
    TINY_WORDS,
    build_tiny_clip,
    build_tiny_clip_tokenizer,
    build_tiny_dinov2,
    is_tiny_model,
)

pytestmark = pytest.mark.slow


def test_tokenizer_gives_whole_words_one_token_and_different_prompts_different_ids() -> None:
    tok = build_tiny_clip_tokenizer()
    ids = tok("a photo of a red cat").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert len(ids) == 2 + 6  # every word is a single token
    assert ids != tok("a photo of a blue dog").input_ids
    for word in TINY_WORDS:
        assert len(tok(word).input_ids) == 3, word
    # Words outside the list still tokenize (byte-level pieces), never to the unknown token.
    pieces = tok.convert_ids_to_tokens(tok("zebra xylophone").input_ids)[1:-1]
    assert len(pieces) > 2
    assert "".join(pieces).replace("</w>", "") == "zebraxylophone"
    assert tok.unk_token_id not in tok("zebra xylophone").input_ids[1:-1]


def test_tiny_sd_reloads_through_auto_pipeline_and_renders(tiny_sd_dir: Path) -> None:
    from diffusers import AutoPipelineForText2Image, EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = AutoPipelineForText2Image.from_pretrained(tiny_sd_dir)
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe, StableDiffusionPipeline)
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler)
    assert pipe.scheduler.config.steps_offset == 1
    assert pipe.safety_checker is None
    out = pipe(["a red cat", "a blue dog"], num_inference_steps=2, height=64, width=64, output_type="np")
    assert out.images.shape == (2, 64, 64, 3)
    # Different prompts condition the UNet differently (the tokenizer really distinguishes them).
    assert not torch.equal(torch.from_numpy(out.images[0]), torch.from_numpy(out.images[1]))


def test_builders_are_idempotent(tmp_path: Path) -> None:
    folder = build_tiny_dinov2(tmp_path / "dino", seed=3)
    weights = folder / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert build_tiny_dinov2(folder, seed=3) == folder
    assert weights.stat().st_mtime_ns == stamp  # not rebuilt
    assert is_tiny_model(folder, "dinov2", seed=3)
    assert not is_tiny_model(folder, "clip")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging folders left behind


def test_builders_are_seeded_and_leave_the_global_rng_alone(tmp_path: Path) -> None:
    state = torch.random.get_rng_state()
    a = load_file(build_tiny_clip(tmp_path / "a", seed=1) / "model.safetensors")
    b = load_file(build_tiny_clip(tmp_path / "b", seed=1) / "model.safetensors")
    c = load_file(build_tiny_clip(tmp_path / "c", seed=2) / "model.safetensors")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_rebuilding_with_another_seed_replaces_our_folder(tmp_path: Path) -> None:
    folder = build_tiny_dinov2(tmp_path / "dino", seed=0)
    before = load_file(folder / "model.safetensors")
    build_tiny_dinov2(folder, seed=1)
    after = load_file(folder / "model.safetensors")
    assert is_tiny_model(folder, "dinov2", seed=1)
    assert not all(torch.equal(before[k], after[k]) for k in before)


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match="not empty"):
        build_tiny_clip(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not (foreign / MARKER_NAME).exists()


def test_tiny_clip_and_dinov2_reload_with_pil_processors(tiny_clip_dir: Path, tiny_dinov2_dir: Path) -> None:
    from transformers import AutoImageProcessor, AutoModel, CLIPModel, CLIPProcessor

    clip = CLIPModel.from_pretrained(tiny_clip_dir)
    assert clip.config.projection_dim == 16
    assert type(AutoImageProcessor.from_pretrained(tiny_clip_dir, backend="pil")).__name__ == "CLIPImageProcessorPil"
    processor = CLIPProcessor.from_pretrained(tiny_clip_dir)
    assert processor.tokenizer("a red cat").input_ids[1:-1] == build_tiny_clip_tokenizer()("a red cat").input_ids[1:-1]

    dino = AutoModel.from_pretrained(tiny_dinov2_dir)
    assert type(dino).__name__ == "Dinov2Model"
    dino_processor = AutoImageProcessor.from_pretrained(tiny_dinov2_dir, backend="pil")
    assert type(dino_processor).__name__ == "BitImageProcessorPil"
    assert list(dino_processor.image_mean) == [0.485, 0.456, 0.406]
