"""Similarity scorers on tiny random-weight CLIP / DINOv2 models and on real reference photos."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from imagerepainter.backends.base import Scorer
from imagerepainter.errors import ConfigurationError
from imagerepainter.scorers import (
    CLIPScorer,
    DINOv2Scorer,
    PSNRScorer,
    SSIMScorer,
    WeightedScorer,
    cached_model_keys,
    clear_model_cache,
    paper_scorer,
)

pytestmark = pytest.mark.slow

Photo = Callable[[str], Image.Image]


@pytest.fixture
def photo(evalref_dir: Path) -> Photo:
    """Loads an EvalRef-100 photograph (512x512) by name, e.g. ``photo("scene_3")``."""

    def load(name: str) -> Image.Image:
        with Image.open(evalref_dir / f"{name}.png") as im:
            return im.convert("RGB")

    return load


def _noisy(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = np.asarray(image, dtype=np.float32) + rng.normal(0.0, sigma, size=(image.height, image.width, 3))
    return Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8))


def _synthetic(seed: int, size: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> Iterator[None]:
    clear_model_cache()
    yield
    clear_model_cache()


class _ForwardCounter:
    """Counts forward passes of a torch module and the batch size of each."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.batches: list[int] = []
        self._handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        pixel_values = kwargs.get("pixel_values", args[0] if args else None)
        self.batches.append(int(pixel_values.shape[0]))

    def remove(self) -> None:
        self._handle.remove()


# ----------------------------------------------------------------------------- embedding scorers


def test_construction_is_cheap_and_lazy(tiny_clip_dir: Path) -> None:
    scorer = CLIPScorer(tiny_clip_dir)
    assert cached_model_keys() == []
    assert isinstance(scorer, Scorer)
    assert scorer.load() is scorer
    assert len(cached_model_keys()) == 1


@pytest.mark.parametrize("make", [CLIPScorer, DINOv2Scorer], ids=["clip", "dinov2"])
def test_identical_image_scores_one_and_other_images_less(
    make: Any, request: pytest.FixtureRequest, photo: Photo
) -> None:
    folder = request.getfixturevalue("tiny_clip_dir" if make is CLIPScorer else "tiny_dinov2_dir")
    scorer = make(folder)
    ref = photo("portrait_1")
    prepared = scorer.prepare(ref)
    scores = scorer.score(prepared, [ref.copy(), photo("object_3"), ref.convert("L").convert("RGB")])
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[1] < scores[0] - 1e-4
    assert all(-1.0 <= s <= 1.0 for s in scores)
    assert scorer.higher_is_better and scorer.bounds == (-1.0, 1.0)


def test_reference_is_embedded_once_and_candidates_in_one_forward(tiny_clip_dir: Path, photo: Photo) -> None:
    scorer = CLIPScorer(tiny_clip_dir, batch_size=16)
    counter = _ForwardCounter(scorer.model.vision_model)
    try:
        prepared = scorer.prepare(photo("scene_2"))
        assert counter.batches == [1]
        candidates = [_synthetic(i) for i in range(3)]
        first = scorer.score(prepared, candidates)
        second = scorer.score(prepared, candidates)
    finally:
        counter.remove()
    assert counter.batches == [1, 3, 3]  # the reference is never embedded again
    assert first == second


def test_batched_scores_equal_one_by_one_and_chunks_follow_batch_size(tiny_dinov2_dir: Path, photo: Photo) -> None:
    scorer = DINOv2Scorer(tiny_dinov2_dir, batch_size=2)
    candidates = [photo("scene_5"), _synthetic(1), _synthetic(2), photo("complex_7").resize((300, 200))]
    prepared = scorer.prepare(photo("scene_4"))
    counter = _ForwardCounter(scorer.model)
    try:
        batched = scorer.score(prepared, candidates)
    finally:
        counter.remove()
    assert counter.batches == [2, 2]
    one_by_one = [scorer.score(prepared, [c])[0] for c in candidates]
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    assert scorer.score(prepared, []) == []


@pytest.mark.parametrize("scorer_class", ["clip", "dinov2"])
def test_images_are_preprocessed_side_by_side_exactly_as_in_one_call(
    scorer_class: str, request: pytest.FixtureRequest, photo: Photo
) -> None:
    import torch

    from imagerepainter.scorers.embedding import _preprocess

    folder = request.getfixturevalue(f"tiny_{scorer_class}_dir")
    scorer = (CLIPScorer if scorer_class == "clip" else DINOv2Scorer)(folder)
    images = [photo("scene_5"), _synthetic(1), photo("complex_7").resize((300, 200)), _synthetic(2)]
    together = scorer.processor(images=images, return_tensors="pt")["pixel_values"]
    assert torch.equal(_preprocess(scorer.processor, images, torch), together)


def test_dinov2_pooling_mean_over_all_tokens_or_cls(tiny_dinov2_dir: Path, photo: Photo) -> None:
    mean, cls = DINOv2Scorer(tiny_dinov2_dir), DINOv2Scorer(tiny_dinov2_dir, pooling="cls")
    assert mean.model is cls.model  # pooling does not change the cached model
    ref, cand = photo("object_1"), photo("object_2")
    pixel_values = mean.processor(images=[ref, cand], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = mean.model(pixel_values=pixel_values).last_hidden_state
    expected_mean = torch.nn.functional.cosine_similarity(hidden[0].mean(0), hidden[1].mean(0), dim=0)
    expected_cls = torch.nn.functional.cosine_similarity(hidden[0, 0], hidden[1, 0], dim=0)
    assert mean.score(mean.prepare(ref), [cand])[0] == pytest.approx(float(expected_mean), abs=1e-5)
    assert cls.score(cls.prepare(ref), [cand])[0] == pytest.approx(float(expected_cls), abs=1e-5)
    assert cls.spec.endswith("?pooling=cls")
    with pytest.raises(ConfigurationError, match="pooling"):
        DINOv2Scorer(tiny_dinov2_dir, pooling="max")  # type: ignore[arg-type]


def test_clip_matches_get_image_features(tiny_clip_dir: Path, photo: Photo) -> None:
    scorer = CLIPScorer(tiny_clip_dir)
    ref, cand = photo("portrait_2"), photo("portrait_3")
    pixel_values = scorer.processor(images=[ref, cand], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = scorer.model.get_image_features(pixel_values=pixel_values)
    features = out if isinstance(out, torch.Tensor) else out.pooler_output
    expected = torch.nn.functional.cosine_similarity(features[0:1], features[1:2])
    assert scorer.score(scorer.prepare(ref), [cand])[0] == pytest.approx(float(expected), abs=1e-5)


def test_models_are_loaded_once_per_process_and_key(tiny_clip_dir: Path, photo: Photo) -> None:
    a = CLIPScorer(tiny_clip_dir)
    b = CLIPScorer(str(tiny_clip_dir) + "/")  # another spelling of the same folder
    assert a.model is b.model
    assert not a.model.training
    assert len(cached_model_keys()) == 1
    half = CLIPScorer(tiny_clip_dir, torch_dtype="bfloat16")
    assert half.model is not a.model and half.model.dtype == torch.bfloat16
    assert len(cached_model_keys()) == 2
    # bfloat16 still gives sensible cosines (computed in float32 after the forward).
    ref = photo("scene_1")
    assert half.score(half.prepare(ref), [ref])[0] == pytest.approx(1.0, abs=1e-3)


def test_concurrent_first_use_loads_once(tiny_dinov2_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    scorers = [DINOv2Scorer(tiny_dinov2_dir) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        models = list(pool.map(lambda s: s.model, scorers))
    assert all(m is models[0] for m in models)
    assert len(cached_model_keys()) == 1


def test_unknown_hub_id_offline_fails_fast_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorer = CLIPScorer("imagerepainter-tests/no-such-clip-model")  # constructing is fine
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        scorer.load()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "no-such-clip-model" in message and "HF_HUB_OFFLINE" in message
    assert "local folder" in message and "hf download" in message
    assert isinstance(info.value.__cause__, OSError)
    assert cached_model_keys() == []  # a failed load caches nothing


def test_missing_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        DINOv2Scorer(tmp_path / "nowhere").load()


def test_prepared_value_from_another_scorer_is_rejected(tiny_clip_dir: Path) -> None:
    clip = CLIPScorer(tiny_clip_dir)
    with pytest.raises(ConfigurationError, match="prepare"):
        clip.score(SSIMScorer().prepare(_synthetic(0)), [_synthetic(1)])
    with pytest.raises(ConfigurationError, match="another scorer"):
        clip.score(torch.ones(7), [_synthetic(1)])


def test_describe_is_json_and_records_the_setup(tiny_clip_dir: Path) -> None:
    record = CLIPScorer(tiny_clip_dir, batch_size=4).describe()
    assert json.loads(json.dumps(record)) == record
    assert record["name"] == "clip" and record["model"] == str(tiny_clip_dir)
    assert record["device"] == "cpu" and record["dtype"] == "float32" and record["batch_size"] == 4
    assert record["versions"]["torch"] == torch.__version__
    assert record["versions"]["transformers"]
    assert CLIPScorer().spec == "clip:openai/clip-vit-base-patch32"
    # Options may come from spec strings ("clip?batch_size=8&local_files_only=true").
    from_spec = CLIPScorer(tiny_clip_dir, batch_size="8", local_files_only="true")  # type: ignore[arg-type]
    assert (from_spec.batch_size, from_spec.local_files_only) == (8, True)
    with pytest.raises(ConfigurationError, match="batch_size"):
        CLIPScorer(batch_size=0)
    assert DINOv2Scorer().spec == "dinov2:facebook/dinov2-base"


# ----------------------------------------------------------------------------- pixel scorers


def test_ssim_and_psnr_on_a_real_photo(photo: Photo) -> None:
    ref = photo("scene_3")
    ssim, psnr = SSIMScorer(), PSNRScorer()
    candidates = [ref.copy(), _noisy(ref, 8), _noisy(ref, 30), photo("scene_9")]
    s = ssim.score(ssim.prepare(ref), candidates)
    p = psnr.score(psnr.prepare(ref), candidates)
    assert abs(1.0 - s[0]) < 1e-12  # float64: an image against itself is 1 - O(1e-15), not 0.99994
    assert s[0] > s[1] > s[2] and s[1] > s[3]
    assert p[0] == psnr.max_db == 100.0
    assert 100.0 > p[1] > p[2] > 0.0
    assert psnr.bounds == (0.0, 100.0) and ssim.bounds == (-1.0, 1.0)


def _shifted(image: Image.Image, dx: int) -> Image.Image:
    return Image.fromarray(np.roll(np.asarray(image), dx, axis=1))


def test_ssim_is_scikit_images_gaussian_variant(photo: Photo) -> None:
    """The pinned variant equals scikit-image's (gaussian window 1.5, population covariance, interior mean)."""
    skimage_metrics = pytest.importorskip("skimage.metrics")
    ref = photo("portrait_2")
    candidates = [_noisy(ref, 12), _shifted(ref, 3), photo("portrait_3"), ref.convert("L").convert("RGB")]
    ssim = SSIMScorer()
    ours = ssim.score(ssim.prepare(ref), candidates)
    a = np.asarray(ref, dtype=np.float64) / 255
    for candidate, value in zip(candidates, ours, strict=True):
        b = np.asarray(candidate, dtype=np.float64) / 255
        expected = skimage_metrics.structural_similarity(
            a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
        )
        assert value == pytest.approx(float(expected), abs=1e-12)
    # A 3-pixel shift costs more than visible noise: pixel metrics punish small misalignments.
    assert ours[1] < ours[0]


def test_ssim_of_flat_images_matches_the_formula_by_hand() -> None:
    """Two flat images: the variances vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1) with C1 = 0.01^2."""
    a, b = 200 / 255, 120 / 255
    expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4)  # 0.8826...
    ssim = SSIMScorer()
    ref = Image.new("RGB", (24, 20), (200, 200, 200))
    assert ssim.score(ssim.prepare(ref), [Image.new("RGB", (24, 20), (120, 120, 120))]) == [
        pytest.approx(expected, abs=1e-12)
    ]
    # One channel different: the mean over R, G and B.
    other = Image.new("RGB", (24, 20), (200, 120, 200))
    assert ssim.score(ssim.prepare(ref), [other])[0] == pytest.approx((2 + expected) / 3, abs=1e-12)


def test_pixel_scores_need_neither_torch_nor_torchmetrics() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from PIL import Image\n"
        "from imagerepainter.scorers.pixel import PSNRScorer, SSIMScorer\n"
        "img = Image.radial_gradient('L').convert('RGB')\n"
        "for scorer in (SSIMScorer(), PSNRScorer()):\n"
        "    print(scorer.score(scorer.prepare(img), [img.rotate(5)])[0])\n"
        "print(sorted(m for m in ('torch', 'torchmetrics') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert 0.0 < float(out[0]) < 1.0 and 0.0 < float(out[1]) < 100.0
    assert out[2] == "[]"


def test_ssim_and_psnr_need_no_extra(monkeypatch: pytest.MonkeyPatch, photo: Photo) -> None:
    """Plain array maths: with SciPy, torch and torchmetrics unimportable, both specs resolve and score."""
    import sys

    from imagerepainter.backends.registry import resolve_scorer

    for name in ("scipy", "scipy.ndimage", "torch", "torchmetrics"):
        monkeypatch.setitem(sys.modules, name, None)  # import name -> ImportError
    ref = photo("portrait_2")
    ssim, psnr = resolve_scorer("ssim?kernel_size=7"), resolve_scorer("psnr")
    assert isinstance(ssim, SSIMScorer) and isinstance(psnr, PSNRScorer)
    assert ssim.score(ssim.prepare(ref), [ref])[0] == pytest.approx(1.0, abs=1e-12)
    assert 0.0 < ssim.score(ssim.prepare(ref), [_noisy(ref, 12)])[0] < 1.0
    assert psnr.score(psnr.prepare(ref), [ref]) == [100.0]
    assert "scipy" not in ssim.describe()["versions"]


def test_ssim_window_filter_equals_scipys_gaussian_filter() -> None:
    """The numpy filter is scipy.ndimage.gaussian_filter (mode 'reflect', truncated at the radius), also on
    arrays smaller than the window, where the mirrored border repeats."""
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(7)
    for kernel_size, sigma, shape in ((11, 1.5, (40, 33, 3)), (7, 0.8, (12, 9, 3)), (11, 1.5, (4, 3, 3))):
        values = rng.random(shape)
        ssim = SSIMScorer(kernel_size=kernel_size, sigma=sigma)
        r = ssim.radius
        expected = ndimage.gaussian_filter(values, sigma=(sigma, sigma, 0), radius=(r, r, 0), mode="reflect")
        assert np.abs(ssim._filter(values) - expected).max() < 1e-14


def test_psnr_matches_its_definition() -> None:
    ref, cand = _synthetic(3, 32), _synthetic(4, 32)
    a = np.asarray(ref, dtype=np.float64) / 255
    b = np.asarray(cand, dtype=np.float64) / 255
    expected = 10 * math.log10(1.0 / np.mean((a - b) ** 2))
    scorer = PSNRScorer()
    assert scorer.score(scorer.prepare(ref), [cand])[0] == pytest.approx(expected, abs=1e-12)
    black, white = Image.new("RGB", (16, 16), "black"), Image.new("RGB", (16, 16), "white")
    assert scorer.score(scorer.prepare(white), [black]) == [0.0]


def test_pixel_scorers_resize_candidates_to_the_reference(photo: Photo) -> None:
    ref = photo("object_5")
    ssim = SSIMScorer(batch_size=2)
    prepared = ssim.prepare(ref)
    small = ref.resize((256, 256), Image.Resampling.LANCZOS)
    scores = ssim.score(prepared, [small, ref.resize((200, 300)), ref.rotate(90)])
    assert scores[0] > 0.9  # a downscaled copy is almost identical once resized back
    assert scores[0] > scores[1] and scores[0] > scores[2]
    with pytest.raises(ConfigurationError, match="kernel_size"):
        ssim.prepare(Image.new("RGB", (8, 8)))
    assert SSIMScorer(kernel_size=7).score(
        SSIMScorer(kernel_size=7).prepare(Image.new("RGB", (8, 8))), [Image.new("RGB", (8, 8))]
    ) == [pytest.approx(1.0, abs=1e-12)]


# ----------------------------------------------------------------------------- composite


class _MeanAbsoluteError:
    """A lower-is-better scorer (mean absolute pixel difference in [0, 1])."""

    name = "mae"
    higher_is_better = False
    bounds = (0.0, 1.0)

    def prepare(self, reference: Image.Image) -> np.ndarray:
        return np.asarray(reference, dtype=np.float32) / 255

    def score(self, prepared: np.ndarray, candidates: Sequence[Image.Image]) -> list[float]:
        size = (prepared.shape[1], prepared.shape[0])
        return [float(np.abs(np.asarray(c.resize(size), dtype=np.float32) / 255 - prepared).mean()) for c in candidates]


def test_weighted_scorer_is_the_weighted_sum_of_its_children(tiny_clip_dir: Path, photo: Photo) -> None:
    clip, ssim = CLIPScorer(tiny_clip_dir), SSIMScorer()
    combo = WeightedScorer({clip: 0.3, ssim: 0.7})
    assert isinstance(combo, Scorer)
    assert combo.name == "0.3*clip+0.7*ssim"
    assert combo.bounds == pytest.approx((-1.0, 1.0))
    ref = photo("complex_2")
    candidates = [ref.copy(), _noisy(ref, 20), photo("complex_3")]
    prepared = combo.prepare(ref)
    assert isinstance(prepared, tuple) and len(prepared) == 2
    expected = [
        0.3 * c + 0.7 * s
        for c, s in zip(
            clip.score(clip.prepare(ref), candidates), ssim.score(ssim.prepare(ref), candidates), strict=True
        )
    ]
    assert combo.score(prepared, candidates) == pytest.approx(expected, abs=1e-9)
    components = combo.score_components(prepared, candidates)
    assert list(components) == ["clip", "ssim"]
    assert combo.combine(components) == pytest.approx(expected, abs=1e-9)
    record = combo.describe()
    assert json.loads(json.dumps(record)) == record
    assert [c["weight"] for c in record["components"]] == [0.3, 0.7]


def test_weighted_scorer_rejects_mixed_directions_and_bad_weights() -> None:
    with pytest.raises(ConfigurationError, match="different directions"):
        WeightedScorer([(SSIMScorer(), 0.5), (_MeanAbsoluteError(), 0.5)])
    with pytest.raises(ConfigurationError, match="positive"):
        WeightedScorer([(SSIMScorer(), -1.0)])
    with pytest.raises(ConfigurationError, match="positive"):
        WeightedScorer([(SSIMScorer(), math.nan)])
    with pytest.raises(ConfigurationError, match="at least one"):
        WeightedScorer([])
    lower = WeightedScorer([(_MeanAbsoluteError(), 2.0)])
    assert lower.higher_is_better is False
    ref = _synthetic(5, 16)
    assert lower.score(lower.prepare(ref), [ref]) == [0.0]
    with pytest.raises(ConfigurationError, match="tuple"):
        lower.score("not prepared", [ref])


def test_duplicate_children_get_unique_component_names() -> None:
    combo = WeightedScorer([(PSNRScorer(max_db=50), 1.0), (PSNRScorer(max_db=60), 1.0)])
    ref = _synthetic(1, 16)
    assert combo.component_names == ("psnr", "psnr#2")
    assert combo.score(combo.prepare(ref), [ref]) == [110.0]


def test_paper_scorer_on_tiny_models(tiny_clip_dir: Path, tiny_dinov2_dir: Path, photo: Photo) -> None:
    scorer = paper_scorer(clip_model=str(tiny_clip_dir), dinov2_model=str(tiny_dinov2_dir), device="cpu")
    assert scorer.name == "0.5*clip+0.5*dinov2"
    assert scorer.weights == (0.5, 0.5)
    assert scorer.load() is scorer
    ref = photo("portrait_4")
    candidates = [ref, photo("portrait_5")]
    clip, dino = CLIPScorer(tiny_clip_dir), DINOv2Scorer(tiny_dinov2_dir)
    expected = [
        0.5 * c + 0.5 * d
        for c, d in zip(
            clip.score(clip.prepare(ref), candidates), dino.score(dino.prepare(ref), candidates), strict=True
        )
    ]
    scores = scorer.score(scorer.prepare(ref), candidates)
    assert scores == pytest.approx(expected, abs=1e-6)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert len(cached_model_keys()) == 2  # the composite's children share the cached models


def test_an_image_processor_that_needs_a_missing_package_names_the_fix(
    tiny_clip_dir: Path, photo: Photo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    from imagerepainter.errors import MissingDependencyError

    def needs_torchvision(*args: object, **kwargs: object) -> None:
        raise ImportError("CLIPImageProcessor requires the Torchvision library but it was not found.")

    monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", needs_torchvision)
    scorer = CLIPScorer(tiny_clip_dir, device="cpu", torch_dtype="float64")  # a key no other test loaded
    with pytest.raises(MissingDependencyError, match="pip install torchvision"):
        scorer.prepare(photo("scene_4"))
