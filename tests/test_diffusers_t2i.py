"""DiffusersT2I on a real (tiny, random-weight) Stable Diffusion pipeline, and FunctionT2I."""

from __future__ import annotations

import functools
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from imagerepainter.backends.base import GeneratedImage, GenerationRequest, TextToImage
from imagerepainter.backends.function_t2i import FunctionT2I
from imagerepainter.errors import ConfigurationError, GenerationError, MissingDependencyError

SIZE = {"height": 64, "width": 64, "num_inference_steps": 2}


def _req(prompt: str, seed: int, **overrides: Any) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, seed=seed, **{**SIZE, **overrides})


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# ----------------------------------------------------------------------------- DiffusersT2I

slow = pytest.mark.slow
"""DiffusersT2I tests build and run a tiny torch pipeline."""


@pytest.fixture(scope="module")
def diffusers_mod() -> Any:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def t2i(tiny_sd_dir: Path, diffusers_mod: Any) -> Any:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    return DiffusersT2I.from_pretrained(tiny_sd_dir, device="cpu", torch_dtype="float32", batch_size=4)


def _counting_pipeline(diffusers_mod: Any, folder: Path, **components: Any) -> Any:
    """A real StableDiffusionPipeline whose ``__call__`` also records each call's arguments."""

    class CountingPipeline(diffusers_mod.StableDiffusionPipeline):
        @functools.wraps(diffusers_mod.StableDiffusionPipeline.__call__)
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(kwargs)
            return super().__call__(*args, **kwargs)

    pipe = CountingPipeline.from_pretrained(folder, **components)
    pipe.calls = []
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _index_safety_checker(flagged: set[int], *, report: bool = True) -> Any:
    """A stand-in safety checker module: flags the images at the given batch positions and blacks them out.

    With ``report=False`` it blacks them out without reporting flags, as some pipelines do.
    """
    import torch

    class IndexSafetyChecker(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("anchor", torch.zeros(1))

        @property
        def device(self) -> Any:
            return self.anchor.device

        @property
        def dtype(self) -> Any:
            return self.anchor.dtype

        def forward(self, images: Any, clip_input: Any) -> tuple[Any, list[bool] | None]:
            flags = [i in flagged for i in range(images.shape[0])]
            images = images.clone()
            for i, hit in enumerate(flags):
                if hit:
                    # The pipeline skips denormalising reported images (0 -> black); unreported
                    # ones are denormalised, so -1 is what becomes black.
                    images[i] = 0.0 if report else -1.0
            return images, (flags if report else None)

    return IndexSafetyChecker()


@slow
def test_from_pretrained_records_its_setup(t2i: Any, tiny_sd_dir: Path) -> None:
    assert isinstance(t2i, TextToImage)
    assert t2i.name == f"diffusers:{tiny_sd_dir}"
    assert t2i.capabilities.max_batch_size == 4
    assert t2i.capabilities.supports_negative_prompt and t2i.capabilities.supports_seed
    # its native size (UNet sample size x VAE scale factor), which a run without width/height follows
    unet, factor = t2i.pipeline.unet.config.sample_size, t2i.pipeline.vae_scale_factor
    assert t2i.capabilities.native_pixels == (unet * factor) ** 2 and t2i.capabilities.size_multiple == 8
    record = t2i.describe()
    assert json.loads(json.dumps(record)) == record
    assert record["model"] == str(tiny_sd_dir)
    assert record["pipeline"] == "StableDiffusionPipeline"
    assert record["scheduler"] == "EulerDiscreteScheduler"
    assert (record["device"], record["dtype"]) == ("cpu", "float32")
    assert record["versions"]["diffusers"] and record["versions"]["torch"]
    assert record["safety_checker"] is False


@slow
def test_same_seed_same_pixels_and_different_seed_different(t2i: Any) -> None:
    first = t2i.generate([_req("a red cat", 7)])[0]
    again = t2i.generate([_req("a red cat", 7)])[0]
    other = t2i.generate([_req("a red cat", 8)])[0]
    assert first.image.size == (64, 64) and first.image.mode == "RGB"
    assert np.array_equal(_pixels(first.image), _pixels(again.image))
    assert np.abs(_pixels(first.image) - _pixels(other.image)).mean() > 5
    assert not (first.blocked or again.blocked or other.blocked)
    # Two copies of one request in a batch get the same noise (batched math may differ by a level).
    a, b = t2i.generate([_req("a red cat", 7), _req("a red cat", 7)])
    assert np.abs(_pixels(a.image) - _pixels(b.image)).max() <= 2
    assert np.abs(_pixels(a.image) - _pixels(first.image)).max() <= 2


@slow
def test_a_batch_is_one_pipeline_call_and_matches_one_by_one(diffusers_mod: Any, tiny_sd_dir: Path) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    pipe = _counting_pipeline(diffusers_mod, tiny_sd_dir)
    t2i = DiffusersT2I(pipe, batch_size=4)
    requests = [
        _req("a red cat", 1, negative_prompt="blurry"),
        _req("a blue dog on the grass", 2, negative_prompt="dark"),
        _req("an old man, oil painting", 3, negative_prompt="blurry"),
    ]
    batched = t2i.generate(requests)
    assert len(pipe.calls) == 1
    call = pipe.calls[0]
    assert call["prompt"] == [r.prompt for r in requests]
    assert call["negative_prompt"] == ["blurry", "dark", "blurry"]
    assert [g.initial_seed() for g in call["generator"]] == [1, 2, 3]
    assert (call["height"], call["width"], call["num_inference_steps"]) == (64, 64, 2)
    assert "guidance_scale" not in call  # None is left to the pipeline's default

    single = [t2i.generate([r])[0] for r in requests]
    assert len(pipe.calls) == 4
    for one, many in zip(single, batched, strict=True):
        assert np.abs(_pixels(one.image) - _pixels(many.image)).max() <= 2
    assert not np.array_equal(_pixels(batched[0].image), _pixels(batched[1].image))


@slow
def test_requests_are_grouped_by_shared_settings_and_returned_in_order(diffusers_mod: Any, tiny_sd_dir: Path) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    pipe = _counting_pipeline(diffusers_mod, tiny_sd_dir)
    t2i = DiffusersT2I(pipe, batch_size=2)
    requests = [
        _req("a cat", 1),
        _req("a dog", 2, height=32, width=32),
        _req("a bird", 3),
        _req("a fish", 4),
        _req("a tree", 5, negative_prompt="ugly"),
    ]
    out = t2i.generate(requests)
    assert [g.image.size for g in out] == [(64, 64), (32, 32), (64, 64), (64, 64), (64, 64)]
    # 64px without negative prompt: 3 requests in chunks of 2; 32px: 1; with a negative prompt: 1.
    assert [c["prompt"] for c in pipe.calls] == [["a cat", "a bird"], ["a fish"], ["a dog"], ["a tree"]]
    assert "negative_prompt" not in pipe.calls[0] and pipe.calls[3]["negative_prompt"] == ["ugly"]
    # Each image depends only on its own seed, not on the batch it was rendered in.
    alone = t2i.generate([requests[2]])[0]
    assert np.abs(_pixels(alone.image) - _pixels(out[2].image)).max() <= 2
    assert t2i.generate([]) == []


@slow
def test_only_arguments_the_pipeline_accepts_are_passed(diffusers_mod: Any, tiny_sd_dir: Path) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    class NoNegativePromptPipeline(diffusers_mod.StableDiffusionPipeline):
        def __call__(  # type: ignore[override]
            self,
            prompt: Any,
            *,
            generator: Any = None,
            height: int | None = None,
            width: int | None = None,
            num_inference_steps: int = 50,
            output_type: str = "pil",
        ) -> Any:
            self.calls.append({"prompt": prompt, "height": height, "steps": num_inference_steps})
            return super().__call__(
                prompt=prompt,
                generator=generator,
                height=height,
                width=width,
                num_inference_steps=num_inference_steps,
                output_type=output_type,
            )

    pipe = NoNegativePromptPipeline.from_pretrained(tiny_sd_dir)
    pipe.calls = []
    pipe.set_progress_bar_config(disable=True)
    t2i = DiffusersT2I(pipe)
    assert not t2i.capabilities.supports_negative_prompt
    out = t2i.generate([_req("a cat", 1, negative_prompt="dog", guidance_scale=3.0), _req("a dog", 2)])
    assert len(out) == 2 and len(pipe.calls) == 1  # negative prompt ignored, so both share one call
    assert pipe.calls[0] == {"prompt": ["a cat", "a dog"], "height": 64, "steps": 2}


@slow
def test_safety_checker_flags_become_blocked_images(diffusers_mod: Any, tiny_sd_dir: Path) -> None:
    from transformers import CLIPImageProcessorPil

    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    extractor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pipe = _counting_pipeline(
        diffusers_mod, tiny_sd_dir, safety_checker=_index_safety_checker({1}), feature_extractor=extractor
    )
    t2i = DiffusersT2I(pipe)
    out = t2i.generate([_req("a cat", 1), _req("a dog", 2), _req("a bird", 3)])
    assert [g.blocked for g in out] == [False, True, False]
    assert out[1].image.getextrema() == ((0, 0), (0, 0), (0, 0))
    assert out[0].image.getextrema() != ((0, 0), (0, 0), (0, 0))
    assert t2i.describe()["safety_checker"] is True


@slow
def test_black_images_count_as_blocked_when_a_checker_reports_no_flags(diffusers_mod: Any, tiny_sd_dir: Path) -> None:
    from transformers import CLIPImageProcessorPil

    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    extractor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    checker = _index_safety_checker({0}, report=False)
    pipe = _counting_pipeline(diffusers_mod, tiny_sd_dir, safety_checker=checker, feature_extractor=extractor)
    out = DiffusersT2I(pipe).generate([_req("a cat", 1), _req("a dog", 2)])
    assert [g.blocked for g in out] == [True, False]
    assert out[0].image.getextrema() == ((0, 0), (0, 0), (0, 0))


@slow
def test_pipeline_errors_become_generation_errors(t2i: Any) -> None:
    with pytest.raises(GenerationError) as info:
        t2i.generate([_req("a cat", 1, height=60)])  # SD needs sizes divisible by 8
    assert isinstance(info.value.__cause__, ValueError)
    assert info.value.backend == t2i.name
    assert "divisible by 8" in str(info.value)


@slow
def test_unknown_model_offline_fails_fast(monkeypatch: pytest.MonkeyPatch, diffusers_mod: Any) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers warns about a deprecated hub argument on this path
        DiffusersT2I.from_pretrained("imagerepainter-tests/no-such-pipeline")
    assert time.monotonic() - started < 10
    assert "HF_HUB_OFFLINE" in str(info.value) and "local folder" in str(info.value)


def test_missing_diffusers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    with pytest.raises(MissingDependencyError, match=r"imagerepainter\[diffusers\]"):
        DiffusersT2I.from_pretrained("anything")


@slow
def test_bad_arguments(t2i: Any) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    with pytest.raises(ConfigurationError, match="batch_size"):
        DiffusersT2I(t2i.pipeline, batch_size=0)
    with pytest.raises(ConfigurationError, match="callable"):
        DiffusersT2I(object())


# ----------------------------------------------------------------------------- FunctionT2I


def test_function_t2i_passes_only_declared_arguments() -> None:
    seen: list[dict[str, Any]] = []

    def render(prompt: str, *, seed: int, width: int = 8) -> Image.Image:
        seen.append({"prompt": prompt, "seed": seed, "width": width})
        return Image.new("L", (width, 4), seed)

    t2i = FunctionT2I(render)
    out = t2i.generate([_req("x", 1, width=16, negative_prompt="no"), GenerationRequest(prompt="y", seed=2)])
    assert seen == [{"prompt": "x", "seed": 1, "width": 16}, {"prompt": "y", "seed": 2, "width": 8}]
    assert [g.image.mode for g in out] == ["RGB", "RGB"]  # normalised
    assert t2i.capabilities.max_batch_size == 1
    assert not t2i.capabilities.supports_negative_prompt and t2i.capabilities.supports_seed
    assert t2i.name == "function:render"


def test_function_t2i_with_kwargs_and_without_seed() -> None:
    seen: list[dict[str, Any]] = []

    def anything(prompt: str, **kwargs: Any) -> GeneratedImage:
        seen.append(kwargs)
        return GeneratedImage(Image.new("RGB", (4, 4)), blocked=True)

    out = FunctionT2I(anything, name="svc").generate([_req("x", 3, guidance_scale=2.5)])
    assert out[0].blocked
    assert seen == [{"seed": 3, **SIZE, "guidance_scale": 2.5}]

    unseeded = FunctionT2I(lambda prompt: Image.new("RGB", (2, 2)))
    assert not unseeded.capabilities.supports_seed
    assert len(unseeded.generate([_req("x", 1)])) == 1


def test_function_t2i_batch_mode() -> None:
    batches: list[list[str]] = []

    def render_all(requests: list[GenerationRequest]) -> list[Image.Image]:
        batches.append([r.prompt for r in requests])
        return [Image.new("RGB", (2, 2), (r.seed, 0, 0)) for r in requests]

    t2i = FunctionT2I(render_all, batch=True, max_batch_size=2)
    out = t2i.generate([_req(p, i) for i, p in enumerate("abc")])
    assert batches == [["a", "b"], ["c"]]
    assert [g.image.getpixel((0, 0))[0] for g in out] == [0, 1, 2]
    assert t2i.capabilities.max_batch_size == 2 and t2i.capabilities.supports_negative_prompt


def test_function_t2i_errors() -> None:
    def broken(prompt: str, *, seed: int) -> Image.Image:
        raise RuntimeError("service down")

    with pytest.raises(GenerationError, match="service down") as info:
        FunctionT2I(broken).generate([_req("x", 1)])
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(GenerationError, match="PIL image"):
        FunctionT2I(lambda prompt: "not an image").generate([_req("x", 1)])
    with pytest.raises(GenerationError, match="2 image"):
        FunctionT2I(lambda reqs: [Image.new("RGB", (1, 1))] * 2, batch=True).generate([_req("x", 1)])
    with pytest.raises(ConfigurationError):
        FunctionT2I("not callable")  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_folder_given_to_the_constructor_is_loaded_on_the_cpu(tiny_sd_dir: Path, diffusers_mod: Any) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    from_folder = DiffusersT2I(tiny_sd_dir)
    assert from_folder.describe()["device"] == "cpu" and from_folder.describe()["dtype"] == "float32"
    request = GenerationRequest(prompt="a red cat", seed=3, height=64, width=64, num_inference_steps=2)
    explicit = DiffusersT2I.from_pretrained(tiny_sd_dir, device="cpu")
    a, b = from_folder.generate([request])[0].image, explicit.generate([request])[0].image
    assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_a_spec_loads_its_pipeline_once_per_process(tiny_sd_dir: Path, diffusers_mod: Any) -> None:
    from imagerepainter.backends import resolve_t2i

    spec = f"diffusers:{tiny_sd_dir}?device=cpu"
    assert resolve_t2i(spec) is resolve_t2i(spec)
    assert resolve_t2i(spec).pipeline is not resolve_t2i(f"diffusers:{tiny_sd_dir}?device=cpu&batch_size=2").pipeline


# ----------------------------------------------------------------------------- settings, devices, missing extras


def _settings(**kwargs: Any) -> Any:
    from imagerepainter.config import GenerationConfig

    return GenerationConfig(**kwargs)


@slow
def test_sizes_the_pipeline_rejects_are_refused_before_any_call(t2i: Any) -> None:
    from imagerepainter.backends.base import check_generation_settings

    with pytest.raises(ConfigurationError, match=r"height=63 .*multiples of 8\. Use e\.g\. height=56 or 64"):
        check_generation_settings(t2i, _settings(height=63, width=64))
    with pytest.raises(ConfigurationError, match="width=12"):
        t2i.check_settings(_settings(height=64, width=12))
    t2i.check_settings(_settings(height=64, width=72))
    t2i.check_settings(_settings())  # the pipeline's own default size


class _FakeDiffusersPipeline:
    """Just the attributes DiffusersT2I reads to know the sizes a pipeline accepts."""

    components: ClassVar[dict[str, Any]] = {}

    def __init__(self, vae_scale_factor: int, transformer: Any = None, patch_size: int | None = None) -> None:
        self.vae_scale_factor = vae_scale_factor
        self.transformer = transformer
        if patch_size is not None:
            self.patch_size = patch_size

    def __call__(self, prompt: Any, height: int | None = None, width: int | None = None, generator: Any = None) -> Any:
        raise AssertionError("check_settings must not render")


@pytest.mark.parametrize(
    ("pipeline", "multiple"),
    [
        (_FakeDiffusersPipeline(8), 8),  # UNet (SD, SDXL): diffusers checks multiples of 8
        (_FakeDiffusersPipeline(8, transformer=object(), patch_size=2), 16),  # SD3: vae_scale_factor * patch_size
        (_FakeDiffusersPipeline(32, transformer=type("T", (), {"config": type("C", (), {"patch_size": 1})})()), 32),
    ],
    ids=["unet", "sd3", "sana"],
)
def test_the_size_multiple_follows_the_pipeline(pipeline: Any, multiple: int) -> None:
    pytest.importorskip("torch")
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    t2i = DiffusersT2I(pipeline)
    assert t2i.size_multiple == multiple
    t2i.check_settings(_settings(height=multiple * 20, width=multiple * 3))
    with pytest.raises(ConfigurationError, match=f"multiples of {multiple}"):
        t2i.check_settings(_settings(height=multiple * 20 + multiple // 2, width=multiple * 3))


def test_cuda_without_cuda_is_a_configuration_error_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from imagerepainter._loading import check_device
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I
    from imagerepainter.scorers import CLIPScorer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigurationError, match=r"device='cuda' asks for CUDA.*device='cpu'"):
        DiffusersT2I.from_pretrained("/no/such/folder", device="cuda")  # refused before the folder is looked at
    with pytest.raises(ConfigurationError, match=r"device='cuda:0' asks for CUDA"):
        CLIPScorer("/no/such/folder", device="cuda:0").load()  # a scorer built directly: refused at load
    with pytest.raises(ConfigurationError, match="not a torch device"):
        check_device("gpu0", extra="diffusers")
    assert check_device("cpu", extra="diffusers") == "cpu"


@slow
def test_a_missing_transformers_names_the_diffusers_extra(tiny_sd_dir: Path) -> None:
    """diffusers imports transformers lazily and used to fail with its own ImportError."""
    import subprocess

    script = (
        "import sys\n"
        "sys.modules['transformers'] = None  # not installed\n"
        "from imagerepainter.backends import resolve_t2i\n"
        "from imagerepainter.backends.diffusers_t2i import DiffusersT2I\n"
        "from imagerepainter.errors import MissingDependencyError\n"
        f"folder = {str(tiny_sd_dir)!r}\n"
        "for make in (lambda: resolve_t2i('diffusers:' + folder), lambda: DiffusersT2I(folder)):\n"
        "    try:\n"
        "        make()\n"
        "        print('no error')\n"
        "    except MissingDependencyError as exc:\n"
        "        print('MissingDependencyError', exc)\n"
        "    except BaseException as exc:\n"
        "        print('other', type(exc).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stderr[-2000:]
    for line in lines:
        assert line.startswith("MissingDependencyError") and 'pip install "imagerepainter[diffusers]"' in line


def test_an_import_error_while_loading_names_the_package(
    monkeypatch: pytest.MonkeyPatch, diffusers_mod: Any, tmp_path: Path
) -> None:
    from imagerepainter.backends.diffusers_t2i import DiffusersT2I

    def needs_sentencepiece(*args: Any, **kwargs: Any) -> Any:
        raise ImportError("T5Tokenizer requires the sentencepiece library but it was not found in your environment.")

    monkeypatch.setattr(diffusers_mod.AutoPipelineForText2Image, "from_pretrained", needs_sentencepiece)
    with pytest.raises(MissingDependencyError, match="pip install sentencepiece"):
        DiffusersT2I.from_pretrained(tmp_path)
