"""The GPU check of issue 7: the generate node and the ``paper`` scorer on full-size models, on one GPU.

    python benchmarks/gpu_check.py [--json gpu_check.json] [--repeat 3] [--steps 20]
    python benchmarks/gpu_check.py --tiny          # the same code, tiny configs, on the CPU

Every model is built from its configuration with seeded random weights, so nothing is downloaded
and nothing outside the machine is needed; the architecture is the real one, so the time per
image is the real model's (the weights' values do not change the work). Three figures:

1. ``generate_ratio``: an SDXL-architecture ``StableDiffusionXLPipeline`` (SDXL base's UNet,
   VAE, CLIP ViT-L/14 and OpenCLIP bigG text encoders, Euler scheduler; about 3.5 B parameters)
   in ``--dtype`` (float16) on CUDA, wrapped in :class:`~imagerepainter.backends.DiffusersT2I`.
   A whole loop (``FakeMLLM``, an instant scorer, ``max_rounds=3``, default variants,
   1024 x 1024, ``--steps`` steps) runs; the generate node's wall time is compared with the same
   pipeline calls made directly (recorded, then replayed): direct / node, 1.0 when the node adds
   nothing. The first run warms up and is discarded; the median of ``--repeat`` runs is reported.
   This is ``perf_suite.generate_figure``, the code of the CPU suite's ``generate_efficiency``,
   with a real pipeline in place of a sleeping one.
2. ``scoring_throughput``: the ``paper`` scorer (0.5 CLIP ViT-B/32 + 0.5 DINOv2-base), built
   through its spec string with ``device`` and ``torch_dtype``, scoring 1, 3 and 16 candidates
   of 1024 px against a 1024 px reference: images per second in one ``score`` call, against the
   same candidates scored one call each (the speed-up of batching), and the image processors'
   CPU share.
3. ``eval_throughput``: the same SDXL-architecture pipeline called directly at batch 1, 2, 4 and 8
   (images per second of each), then an evaluation in ``single`` mode (one image per case, a
   ``DiffusersT2I`` with ``batch_size=8``, the renders of concurrent cases merged into its calls,
   an instant sandbox MLLM and metric) of ``eval_references`` references: its images per second
   over the span of its pipeline calls, against the raw batch-8 figure (1.0: the evaluation
   renders as fast as the bare pipeline).

It prints a Markdown table and writes the JSON (machine, GPU, versions, settings, figures) to
``--json`` or, when unset, to ``$OUT/gpu_check.json`` if ``OUT`` is set; the JSON is rewritten
after each figure, so a run stopped half-way still leaves what it measured. A figure that fails
is recorded with its error and the script exits 1 after the others ran.

``--tiny`` builds the same pipeline and scorers from miniature configs, renders 64 px images
in 2 steps on the CPU in float32, and finishes in well under a minute: CI runs it so the script
keeps working; its timings mean nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from perf_kit import Canvas, photo
from perf_suite import _fmt, generate_figure, machine

from imagerepainter._loading import library_versions
from imagerepainter.testing.tiny_models import TINY_CLIP_VISION, TINY_DINOV2, TINY_TOWER, clip_text_config

FIGURES = ("generate_ratio", "scoring_throughput", "eval_throughput")
"""The figures, in table order (the JSON's ``figures`` keys)."""


@dataclass(frozen=True)
class Settings:
    """What the check runs; every field is written to the JSON."""

    tiny: bool = False
    device: str = "cuda"
    dtype: str = "float16"
    size: int = 1024
    """Height and width of the generated images, the reference and the scored candidates."""
    steps: int = 20
    guidance_scale: float = 5.0
    """SDXL's default; above 1, so every step runs the UNet on the prompt and the negative prompt."""
    rounds: int = 3
    repeat: int = 3
    """Measured runs of the loop (after one warm-up run)."""
    seed: int = 0
    """Seed of every model's random weights (the loop's images have their own seeds, from the run)."""
    batches: tuple[int, ...] = (1, 3, 16)
    score_repeat: int = 5
    """Timed repetitions of each scoring measurement (after one warm-up), median reported."""
    t2i_batch_size: int = 4
    """``DiffusersT2I``'s most images per pipeline call (its default)."""
    raw_batches: tuple[int, ...] = (1, 2, 4, 8)
    """Batch sizes of the raw pipeline calls of ``eval_throughput``."""
    eval_references: int = 32
    """References of the ``single``-mode evaluation of ``eval_throughput`` (one image each)."""

    @classmethod
    def tiny_mode(cls) -> Settings:
        return cls(tiny=True, device="cpu", dtype="float32", size=64, steps=2, repeat=1, score_repeat=2,
                   eval_references=8)  # fmt: skip


# ----------------------------------------------------------------------------- model configurations


def sdxl_configs(tiny: bool) -> dict[str, dict[str, Any]]:
    """SDXL base's component configurations (stabilityai/stable-diffusion-xl-base-1.0), or miniature ones:
    the same with the sizes of :data:`TINY_SDXL`.

    The text encoders' vocabulary comes from the tokenizer; it does not change their cost.
    """
    full: dict[str, dict[str, Any]] = {
        "unet": {
            "block_out_channels": (320, 640, 1280),
            "layers_per_block": 2,
            "sample_size": 128,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            "attention_head_dim": (5, 10, 20),
            "transformer_layers_per_block": (1, 2, 10),
            "cross_attention_dim": 2048,
            "addition_embed_type": "text_time",
            "addition_embed_type_num_heads": 64,
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,
            "use_linear_projection": True,
            "norm_num_groups": 32,
            "norm_eps": 1e-5,
            "act_fn": "silu",
            "flip_sin_to_cos": True,
            "freq_shift": 0,
            "upcast_attention": False,
        },
        "vae": {
            "block_out_channels": (128, 256, 512, 512),
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "layers_per_block": 2,
            "in_channels": 3,
            "out_channels": 3,
            "latent_channels": 4,
            "sample_size": 1024,
            "norm_num_groups": 32,
            "act_fn": "silu",
            "scaling_factor": 0.13025,
            "force_upcast": True,  # SDXL base's VAE decodes in float32 under a float16 pipeline
        },
        # CLIP ViT-L/14's text tower
        "text_encoder": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "hidden_act": "quick_gelu",
            "projection_dim": 768,
        },
        # OpenCLIP ViT-bigG/14's text tower, with its projection
        "text_encoder_2": {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 20,
            "hidden_act": "gelu",
            "projection_dim": 1280,
        },
    }
    if not tiny:
        return full
    return {name: {**config, **TINY_SDXL[name]} for name, config in full.items()}


TINY_SDXL: dict[str, dict[str, Any]] = {
    "unet": {
        "block_out_channels": (32, 64),
        "sample_size": 32,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": (2, 4),
        "transformer_layers_per_block": (1, 2),
        "cross_attention_dim": 64,  # the two text encoders' hidden sizes, concatenated
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 80,  # 32 (pooled text) + 6 * 8 (size conditioning)
    },
    "vae": {
        "block_out_channels": (32, 64),
        "down_block_types": ("DownEncoderBlock2D",) * 2,
        "up_block_types": ("UpDecoderBlock2D",) * 2,
        "layers_per_block": 1,
        "sample_size": 64,
    },
    "text_encoder": {**TINY_TOWER, "projection_dim": 32},
    "text_encoder_2": {**TINY_TOWER, "projection_dim": 32},
}
"""What ``--tiny`` changes in each SDXL component: fewer, narrower blocks; the architecture stays SDXL's."""


SDXL_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}
"""SDXL base's ``EulerDiscreteScheduler`` configuration."""


def scorer_configs(tiny: bool) -> dict[str, dict[str, Any]]:
    """CLIP ViT-B/32 (openai/clip-vit-base-patch32) and DINOv2-base (facebook/dinov2-base), or miniature ones."""
    if tiny:
        return {
            "clip_text": TINY_TOWER,
            "clip_vision": TINY_CLIP_VISION,
            "clip": {"projection_dim": 16, "image_size": 32, "shortest_edge": 32},
            "dinov2": TINY_DINOV2,
            "dinov2_processor": {"shortest_edge": 36, "crop": 32},
        }
    return {
        "clip_text": {
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "hidden_act": "quick_gelu",
        },
        "clip_vision": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 32,
            "hidden_act": "quick_gelu",
        },
        "clip": {"projection_dim": 512, "image_size": 224, "shortest_edge": 224},
        "dinov2": {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,  # mlp_ratio 4
            "image_size": 518,  # position embeddings are interpolated to the 224 px input on every call
            "patch_size": 14,
            "layerscale_value": 1.0,
            "use_swiglu_ffn": False,
        },
        "dinov2_processor": {"shortest_edge": 256, "crop": 224},
    }


# ----------------------------------------------------------------------------- building


def _quiet() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    # random weights give NaN pixels now and then; their cast to uint8 warns, harmlessly here
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")
    # SDXL's float16 pipeline upcasts its VAE through a method diffusers now marks deprecated
    warnings.filterwarnings("ignore", category=FutureWarning, module="diffusers")


def _parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def build_sdxl(s: Settings) -> tuple[Any, dict[str, int]]:
    """An SDXL-architecture pipeline with seeded random weights on ``s.device`` in ``s.dtype``, recording
    every call's keyword arguments in ``pipe.calls``; and each component's parameter count."""
    import diffusers
    import torch
    import transformers

    from imagerepainter.testing.tiny_models import build_tiny_clip_tokenizer

    configs = sdxl_configs(s.tiny)
    tokenizer = build_tiny_clip_tokenizer()
    base = diffusers.StableDiffusionXLPipeline

    class RecordingSDXLPipeline(base):  # type: ignore[misc,valid-type]
        """The real pipeline; each call's keyword arguments are kept to be replayed directly."""

        calls: list[dict[str, Any]]

        @functools.wraps(base.__call__)
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(dict(kwargs))
            return base.__call__(self, *args, **kwargs)

    torch.manual_seed(s.seed)
    with torch.device(s.device):  # weights are created (and randomly initialised) where they will run
        models = {  # the pipeline's components with weights, named as diffusers names them
            "unet": diffusers.UNet2DConditionModel(**configs["unet"]),
            "vae": diffusers.AutoencoderKL(**configs["vae"]),
            "text_encoder": transformers.CLIPTextModel(
                transformers.CLIPTextConfig(**clip_text_config(tokenizer, **configs["text_encoder"]))
            ),
            "text_encoder_2": transformers.CLIPTextModelWithProjection(
                transformers.CLIPTextConfig(**clip_text_config(tokenizer, **configs["text_encoder_2"]))
            ),
        }
    pipe = RecordingSDXLPipeline(
        **models,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=diffusers.EulerDiscreteScheduler(**SDXL_SCHEDULER),
        force_zeros_for_empty_prompt=True,
    )
    pipe.to(s.device, getattr(torch, s.dtype))
    pipe.set_progress_bar_config(disable=True)
    pipe.calls = []
    return pipe, {name: _parameters(model) for name, model in models.items()}


def build_scorer_models(folder: Path, s: Settings) -> tuple[Path, Path, dict[str, int]]:
    """CLIP and DINOv2 with seeded random weights and their PIL image processors, saved under ``folder``."""
    import torch
    import transformers

    from imagerepainter.testing.tiny_models import build_tiny_clip_tokenizer

    configs = scorer_configs(s.tiny)
    tokenizer = build_tiny_clip_tokenizer()
    clip = configs["clip"]
    torch.manual_seed(s.seed)
    with torch.device(s.device):
        clip_model = transformers.CLIPModel(
            transformers.CLIPConfig(
                text_config=clip_text_config(tokenizer, **configs["clip_text"], projection_dim=clip["projection_dim"]),
                vision_config={**configs["clip_vision"], "projection_dim": clip["projection_dim"]},
                projection_dim=clip["projection_dim"],
            )
        )
        dinov2_model = transformers.Dinov2Model(transformers.Dinov2Config(**configs["dinov2"]))
    clip_dir, dinov2_dir = folder / "clip", folder / "dinov2"
    clip_model.save_pretrained(clip_dir)
    # CLIPImageProcessorPil's defaults are CLIP's: bicubic resize of the short side, centre crop, CLIP's mean/std
    transformers.CLIPImageProcessorPil(
        size={"shortest_edge": clip["shortest_edge"]},
        crop_size={"height": clip["image_size"], "width": clip["image_size"]},
    ).save_pretrained(clip_dir)
    tokenizer.save_pretrained(clip_dir)
    dinov2_model.save_pretrained(dinov2_dir)
    crop = configs["dinov2_processor"]["crop"]
    transformers.BitImageProcessorPil(  # facebook/dinov2-base's preprocessor_config.json
        size={"shortest_edge": configs["dinov2_processor"]["shortest_edge"]},
        crop_size={"height": crop, "width": crop},
        resample=3,  # bicubic
        do_center_crop=True,
        do_convert_rgb=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(dinov2_dir)
    return clip_dir, dinov2_dir, {"clip": _parameters(clip_model), "dinov2": _parameters(dinov2_model)}


# ----------------------------------------------------------------------------- figures


def measure_generate(s: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from imagerepainter.backends import DiffusersT2I

    started = time.perf_counter()
    pipe, parameters = build_sdxl(s)
    built = time.perf_counter() - started
    log(f"built the SDXL-architecture pipeline in {built:.1f} s: {parameters}")
    t2i = DiffusersT2I(pipe, batch_size=s.t2i_batch_size)
    reference, source = photo(s.size)
    try:
        figure = generate_figure(
            pipe,
            t2i,
            reference,
            size=s.size,
            rounds=s.rounds,
            repeat=s.repeat,
            reference_source=source,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance_scale,
        )
    finally:
        calls = list(pipe.calls)
        del pipe, t2i
        _free(torch, s.device)
    return {
        "unit": "ratio (direct pipeline calls / generate node)",
        **figure,
        "steps": s.steps,
        "guidance_scale": s.guidance_scale,
        "dtype": s.dtype,
        "pipeline": "StableDiffusionXLPipeline (SDXL base architecture, random weights)",
        "parameters": parameters,
        "build_s": built,
        "last_run_calls": [{"images": len(c["prompt"]), "height": c.get("height")} for c in calls],
    }


def measure_eval_throughput(s: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Raw pipeline images/s at each batch of ``s.raw_batches``, and what an evaluation in ``single`` mode
    (one image per case, renders merged across cases up to the largest batch) gets from the same pipeline."""
    import torch

    from imagerepainter.backends import DiffusersT2I
    from imagerepainter.bench.runner import evaluate
    from imagerepainter.sandbox import random_scene, render_scene
    from imagerepainter.testing.standin import DelayedMLLM

    pipe, _ = build_sdxl(s)
    call = {"num_inference_steps": s.steps, "guidance_scale": s.guidance_scale, "height": s.size, "width": s.size}
    raw: dict[str, float] = {}
    try:
        for batch in (s.raw_batches[0], *s.raw_batches):  # the first call warms up and is not kept
            generators = [torch.Generator(device=s.device).manual_seed(i) for i in range(batch)]
            t = time.perf_counter()
            pipe(prompt=[f"a photo of object {i}" for i in range(batch)], generator=generators, **call)
            raw[str(batch)] = batch / (time.perf_counter() - t)
        log(f"raw images/s by batch: {raw}")
        t2i = _TimedT2I(DiffusersT2I(pipe, batch_size=max(s.raw_batches)))
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "refs"
            data.mkdir()
            for i in range(s.eval_references):
                render_scene(random_scene(i), 64, 64).save(data / f"scene_{i:03d}.png")
            report = evaluate(data, mllm=DelayedMLLM(0.0), models={"sdxl": t2i}, metrics=["sandbox"], modes=["single"],
                              out=Path(tmp) / "out", max_concurrency=2 * max(s.raw_batches),
                              settings={k: v for k, v in call.items()})  # fmt: skip
    finally:
        del pipe
        _free(torch, s.device)
    span = max(e for _, e in t2i.intervals) - min(b for b, _ in t2i.intervals)
    best = raw[str(max(s.raw_batches))]
    return {
        "unit": "images per second",
        "raw_images_per_s": raw,
        "eval_images_per_s": t2i.images / span,
        "eval_whole_images_per_s": t2i.images / report.seconds,
        "eval_vs_raw_largest_batch": t2i.images / span / best,
        "eval_calls": t2i.batches,
        "failed": report.failed,
    }


class _TimedT2I:
    """A text-to-image backend recording when each call ran and how many images it had."""

    def __init__(self, t2i: Any) -> None:
        self.t2i, self.name, self.capabilities = t2i, t2i.name, t2i.capabilities
        self.intervals: list[tuple[float, float]] = []
        self.batches: list[int] = []

    def generate(self, requests: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.t2i.generate(requests)
        finally:
            self.intervals.append((start, time.perf_counter()))
            self.batches.append(len(requests))

    @property
    def images(self) -> int:
        return sum(self.batches)


def measure_scoring(s: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    from imagerepainter.backends.registry import resolve_scorer
    from imagerepainter.scorers import clear_model_cache

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        clip_dir, dinov2_dir, parameters = build_scorer_models(Path(tmp), s)
        _free(torch, s.device)
        spec = (
            f"paper?clip_model={clip_dir}&dinov2_model={dinov2_dir}&device={s.device}"
            f"&torch_dtype={s.dtype}&batch_size={max(s.batches)}"
        )
        scorer = resolve_scorer(spec)
        scorer.load()  # type: ignore[attr-defined]
        built = time.perf_counter() - started
        log(f"built and loaded the paper scorer in {built:.1f} s: {parameters}")
        try:
            figure = _score_timings(scorer, s)
        finally:
            clear_model_cache()
            del scorer
            _free(torch, s.device)
    return {
        "unit": "images per second",
        "scorer": "paper (0.5 CLIP ViT-B/32 + 0.5 DINOv2-base, random weights)",
        "dtype": s.dtype,
        "device": s.device,
        "size": s.size,
        "parameters": parameters,
        "build_s": built,
        **figure,
    }


def _score_timings(scorer: Any, s: Settings) -> dict[str, Any]:
    reference, source = photo(s.size)
    canvas = Canvas(s.size)
    candidates = [canvas.next() for _ in range(max(s.batches))]

    def timed(fn: Callable[[], Any]) -> float:
        fn()  # warm-up
        spent = []
        for _ in range(s.score_repeat):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
        return statistics.median(spent)

    prepare_s = timed(lambda: scorer.prepare(reference))
    prepared = scorer.prepare(reference)
    rows: dict[str, Any] = {}
    for n in s.batches:
        batch = candidates[:n]
        batched = timed(functools.partial(scorer.score, prepared, batch))
        single = timed(functools.partial(_one_by_one, scorer, prepared, batch))
        preprocess = timed(functools.partial(_preprocess, scorer, batch))
        rows[str(n)] = {
            "candidates": n,
            "batched_s": batched,
            "images_per_s": n / batched,
            "one_by_one_s": single,
            "one_by_one_images_per_s": n / single,
            "speedup": single / batched,
            "preprocess_s": preprocess,
            "preprocess_share": preprocess / batched,
        }
    return {"reference": source, "prepare_s": prepare_s, "batches": rows, "n": s.score_repeat}


def _one_by_one(scorer: Any, prepared: Any, candidates: list[Any]) -> list[list[float]]:
    return [scorer.score(prepared, [candidate]) for candidate in candidates]


def _preprocess(scorer: Any, candidates: list[Any]) -> list[Any]:
    """What the children's image processors alone cost (CPU, images side by side as a score call
    processes them): the part of a score call no GPU speeds up."""
    import torch

    from imagerepainter.scorers.embedding import _preprocess as side_by_side

    return [side_by_side(child.processor, candidates, torch) for child in scorer.scorers]


def _free(torch: Any, device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- report


def gpu_info(s: Settings) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        **library_versions("torch", "diffusers", "transformers"),
        "cuda_available": torch.cuda.is_available(),
    }
    if s.device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(s.device))
        info.update(
            {
                "gpu": torch.cuda.get_device_name(torch.device(s.device)),
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count,
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
            }
        )
    return info


def table(figures: dict[str, Any], s: Settings) -> str:
    lines = ["| figure | value | context |", "|---|---|---|"]
    gen = figures.get("generate_ratio")
    if gen and "error" not in gen:
        lines.append(
            f"| direct SDXL calls / generate node, {s.size} px, {s.steps} steps, {s.dtype} | {_fmt(gen['median'], 3)} "
            f"| node {_fmt(gen['node_s_per_round'])} s, direct {_fmt(gen['direct_s_per_round'])} s per round; "
            f"{gen['images_per_run']} images in {gen['pipeline_calls_per_run']} calls per run; "
            f"samples {', '.join(_fmt(x, 3) for x in gen['samples'])} |"
        )
    elif gen:
        lines.append(f"| direct SDXL calls / generate node | failed | {gen['error']} |")
    score = figures.get("scoring_throughput")
    if score and "error" not in score:
        for n, x in score["batches"].items():
            lines.append(
                f"| paper scorer, {n} candidate(s) of {s.size} px, {s.dtype} | {_fmt(x['images_per_s'], 1)} images/s "
                f"| one call {_fmt(1000 * x['batched_s'], 1)} ms; one by one {_fmt(x['one_by_one_images_per_s'], 1)} "
                f"images/s (batching x{_fmt(x['speedup'])}); image processors {_fmt(100 * x['preprocess_share'], 0)}% "
                "of the call |"
            )
        lines.append(f"| paper scorer, prepare the reference | {_fmt(1000 * score['prepare_s'], 1)} ms | |")
    elif score:
        lines.append(f"| paper scorer | failed | {score['error']} |")
    ev = figures.get("eval_throughput")
    if ev and "error" not in ev:
        raw = ", ".join(f"batch {b}: {_fmt(v, 2)}" for b, v in ev["raw_images_per_s"].items())
        lines.append(f"| raw SDXL images/s, {s.size} px, {s.steps} steps | {raw} | one pipeline call each |")
        lines.append(
            f"| evaluation images/s, single mode | {_fmt(ev['eval_images_per_s'], 2)} "
            f"(x{_fmt(ev['eval_vs_raw_largest_batch'])} of the largest raw batch) | whole run "
            f"{_fmt(ev['eval_whole_images_per_s'], 2)}; calls of {sorted(set(ev['eval_calls']))} images |"
        )
    elif ev:
        lines.append(f"| evaluation images/s | failed | {ev['error']} |")
    return "\n".join(lines)


def run_check(
    s: Settings, log: Callable[[str], None] = print, write: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Measure both figures; returns the JSON document (``write`` gets it after each figure too)."""
    _quiet()
    started = time.perf_counter()
    doc: dict[str, Any] = {"machine": {**machine(), **gpu_info(s)}, "settings": asdict(s), "figures": {}}
    steps: list[tuple[str, Callable[[Settings, Callable[[str], None]], dict[str, Any]]]] = [
        ("scoring_throughput", measure_scoring),
        ("generate_ratio", measure_generate),
        ("eval_throughput", measure_eval_throughput),
    ]
    for name, measure in steps:
        t = time.perf_counter()
        try:
            doc["figures"][name] = measure(s, log)
        except Exception as exc:  # the other figure still runs; the error is reported
            log(traceback.format_exc())
            doc["figures"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"measured {name} in {time.perf_counter() - t:.1f} s")
        if s.device.startswith("cuda"):
            import torch

            doc["machine"]["max_memory_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        doc["seconds"] = time.perf_counter() - started
        doc["table"] = table(doc["figures"], s)
        if write is not None:
            write(doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="miniature models on the CPU (checks the script)")
    parser.add_argument("--json", type=Path, help="write the results here (default $OUT/gpu_check.json if OUT is set)")
    parser.add_argument("--repeat", type=int, help="measured runs of the loop after the warm-up (default 3; tiny 1)")
    parser.add_argument("--steps", type=int, help="denoising steps per image (default 20; tiny 2)")
    args = parser.parse_args(argv)
    s = Settings.tiny_mode() if args.tiny else Settings()
    overrides = {k: v for k, v in {"repeat": args.repeat, "steps": args.steps}.items() if v is not None}
    if overrides:
        s = Settings(**{**asdict(s), **overrides})
    if s.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("this check needs a CUDA GPU (torch sees none); --tiny runs it on the CPU")
    target = args.json or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else None)

    def write(doc: dict[str, Any]) -> None:
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    doc = run_check(s, log=log, write=write)
    print(doc["table"])
    if target is not None:
        log(f"wrote {target}")
    return 1 if any("error" in f for f in doc["figures"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
