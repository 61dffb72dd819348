"""The GPU check (benchmarks/gpu_check.py): its full-size configs are the real models', and --tiny runs it end to end.

The check itself needs a CUDA GPU; here it runs with miniature configs on the CPU, so it keeps
working between the runs on a lent GPU machine. Timings are never judged here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench_modules import benchmark_module

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "benchmarks" / "gpu_check.py"
CLIP_VOCAB = 49408  # the real CLIP tokenizers' vocabulary (the check's tokenizer is smaller)


def _check_module():
    return benchmark_module("gpu_check")


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.slow
def test_full_size_configs_give_the_published_models_parameter_counts():
    """Built on the meta device (no memory): the counts of SDXL base's components, CLIP ViT-B/32 and
    DINOv2-base, so the GPU timings are those of the real architectures."""
    diffusers = pytest.importorskip("diffusers")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    gpu_check = _check_module()
    sdxl, scorers = gpu_check.sdxl_configs(tiny=False), gpu_check.scorer_configs(tiny=False)
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel(**sdxl["unet"])
        vae = diffusers.AutoencoderKL(**sdxl["vae"])
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig(vocab_size=CLIP_VOCAB, **sdxl["text_encoder"]))
        text_2 = transformers.CLIPTextModelWithProjection(
            transformers.CLIPTextConfig(vocab_size=CLIP_VOCAB, **sdxl["text_encoder_2"])
        )
        projection = scorers["clip"]["projection_dim"]
        clip = transformers.CLIPModel(
            transformers.CLIPConfig(
                text_config={**scorers["clip_text"], "vocab_size": CLIP_VOCAB, "projection_dim": projection},
                vision_config={**scorers["clip_vision"], "projection_dim": projection},
                projection_dim=projection,
            )
        )
        dinov2 = transformers.Dinov2Model(transformers.Dinov2Config(**scorers["dinov2"]))
    assert _count(unet) == 2_567_463_684
    assert _count(vae) == 83_653_863
    assert _count(text) == 123_060_480
    assert _count(text_2) == 694_659_840
    assert _count(clip) == 151_277_313
    assert _count(dinov2) == 86_580_480


def test_tiny_and_full_configs_fit_together_as_sdxl_needs():
    """The UNet takes both text encoders' hidden states and the pooled text plus 6 size numbers."""
    gpu_check = _check_module()
    for tiny in (True, False):
        c = gpu_check.sdxl_configs(tiny)
        unet, text, text_2 = c["unet"], c["text_encoder"], c["text_encoder_2"]
        assert unet["cross_attention_dim"] == text["hidden_size"] + text_2["hidden_size"]
        assert unet["projection_class_embeddings_input_dim"] == (
            text_2["projection_dim"] + 6 * unet["addition_time_embed_dim"]
        )
        assert unet["addition_embed_type"] == "text_time" and unet["use_linear_projection"]
        assert c["vae"]["scaling_factor"] == 0.13025
    full = gpu_check.Settings()
    assert (full.device, full.dtype, full.size, full.rounds) == ("cuda", "float16", 1024, 3)


@pytest.mark.slow
def test_tiny_mode_runs_every_figure_and_writes_the_json_to_out(tmp_path):
    env = {
        **os.environ,
        "OUT": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, str(CHECK), "--tiny"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    gpu_check = _check_module()

    settings = report["settings"]
    assert settings["tiny"] is True and settings["device"] == "cpu" and settings["dtype"] == "float32"
    assert report["machine"]["torch"] and report["machine"]["diffusers"]
    figures = report["figures"]
    assert set(figures) == set(gpu_check.FIGURES)
    assert not [name for name, f in figures.items() if "error" in f]

    generate = figures["generate_ratio"]
    assert generate["median"] > 0 and generate["n"] == settings["repeat"] == 1
    assert generate["steps"] == settings["steps"] == 2
    assert generate["images_per_run"] >= settings["rounds"]  # at least one image a round
    # the replayed calls are the loop's own: the requested size, at most DiffusersT2I's batch per call
    calls = generate["last_run_calls"]
    assert len(calls) == generate["pipeline_calls_per_run"]
    assert all(c["height"] == settings["size"] and 1 <= c["images"] <= settings["t2i_batch_size"] for c in calls)
    assert set(generate["parameters"]) == {"unet", "vae", "text_encoder", "text_encoder_2"}

    scoring = figures["scoring_throughput"]
    assert list(scoring["batches"]) == [str(n) for n in settings["batches"]] == ["1", "3", "16"]
    for n, row in scoring["batches"].items():
        assert row["candidates"] == int(n)
        assert row["images_per_s"] == pytest.approx(int(n) / row["batched_s"])
        assert row["one_by_one_s"] > 0 and row["preprocess_s"] > 0
    evaluation = figures["eval_throughput"]  # raw batches 1 to 8, and the evaluation's renders merged up to 8
    assert list(evaluation["raw_images_per_s"]) == ["1", "2", "4", "8"] and evaluation["failed"] == 0
    assert sum(evaluation["eval_calls"]) == settings["eval_references"] and max(evaluation["eval_calls"]) <= 8
    assert len(evaluation["eval_calls"]) < settings["eval_references"]  # cases shared pipeline calls
    assert "| figure | value | context |" in done.stdout
    assert "generate node" in done.stdout and "paper scorer, 16 candidate(s)" in done.stdout
    assert "evaluation images/s, single mode" in done.stdout
