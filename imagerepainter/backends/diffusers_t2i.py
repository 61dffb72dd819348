"""A :class:`~imagerepainter.backends.base.TextToImage` backend around any diffusers text-to-image pipeline.

:class:`DiffusersT2I` either wraps a pipeline you built yourself (used exactly as it is:
your device placement, offloading, scheduler and LoRAs stay untouched) or loads one with
:meth:`DiffusersT2I.from_pretrained` on an explicit device and dtype.

:meth:`DiffusersT2I.generate` renders requests in batches: requests that share height,
width, steps and guidance go through **one** pipeline call each (up to ``batch_size``),
with a list of prompts and one seeded ``torch.Generator`` per image, so every image is
reproducible from its own seed whatever batch it was rendered in. Only arguments the
pipeline's ``__call__`` accepts are passed (FLUX, for example, takes no
``negative_prompt`` in some versions). Images a safety checker blocked come back as
``GeneratedImage(image, blocked=True)``.

Example:
    >>> import tempfile
    >>> from imagerepainter.backends.base import GenerationRequest
    >>> from imagerepainter.testing.tiny_models import build_tiny_stable_diffusion
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     t2i = DiffusersT2I.from_pretrained(build_tiny_stable_diffusion(f"{tmp}/sd"), device="cpu")
    ...     req = dict(height=64, width=64, num_inference_steps=2)
    ...     out = t2i.generate([GenerationRequest(prompt="a red cat", seed=1, **req),
    ...                         GenerationRequest(prompt="a blue dog", seed=2, **req)])
    >>> [(g.image.size, g.blocked) for g in out]
    [((64, 64), False), ((64, 64), False)]
    >>> t2i.describe()["pipeline"], t2i.capabilities.supports_negative_prompt
    ('StableDiffusionPipeline', True)
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image

from .._imports import require
from .._loading import (
    check_device,
    dtype_name,
    library_versions,
    load_pretrained,
    optional_bool,
    positive_int,
    resolve_dtype,
)
from ..errors import ConfigurationError, GenerationError, MissingDependencyError
from .base import GENERATION_FIELDS, GeneratedImage, GenerationRequest, T2ICapabilities, batches
from .function_t2i import keyword_parameters

if TYPE_CHECKING:
    from ..config import GenerationConfig

__all__ = ["DiffusersT2I"]

_SHARED_FIELDS = tuple(f for f in GENERATION_FIELDS if f != "negative_prompt")
"""Request fields that must be equal within one pipeline call (they are scalars there)."""


class DiffusersT2I:
    """Render :class:`GenerationRequest` s with a diffusers pipeline.

    Args:
        pipeline: A diffusers text-to-image pipeline (anything whose ``__call__`` takes a
            list of prompts and a list of generators and returns ``.images``), used as is; or a
            Hub id or folder, loaded like ``from_pretrained(pipeline, device=device or "cpu")``
            (use :meth:`from_pretrained` for other dtypes and loading options).
        device: Device of the seeded ``torch.Generator`` s; defaults to the device the
            pipeline computes on. Seeds give different images on different devices.
        batch_size: Most images per pipeline call.
        name: Backend name recorded in results; defaults to ``"diffusers:<model>"``.

    Raises:
        MissingDependencyError: torch is not installed (``pip install "imagerepainter[diffusers]"``).
        ConfigurationError: ``batch_size`` is below 1, or ``device`` is not usable here.

    Calls are serialised with a lock: a diffusers pipeline keeps per-call state (the
    scheduler's timesteps), so it is not safe to call from two threads at once.
    """

    def __init__(
        self, pipeline: Any, *, device: str | None = None, batch_size: int = 4, name: str | None = None
    ) -> None:
        require("torch", extra="diffusers", purpose="seeding diffusers pipelines")
        batch_size = positive_int(batch_size, "batch_size")
        if device is not None:
            device = check_device(device, extra="diffusers", purpose="DiffusersT2I")
        if isinstance(pipeline, (str, os.PathLike)):  # a Hub id or folder: load it on the CPU in float32
            pipeline = DiffusersT2I.from_pretrained(pipeline, device=device or "cpu").pipeline
        if not callable(pipeline):
            raise ConfigurationError(
                f"DiffusersT2I needs a callable diffusers pipeline, got {type(pipeline).__name__}."
            )
        self.pipeline: Any = pipeline
        """The wrapped pipeline."""
        self.batch_size = batch_size
        self.model_id: str | None = _model_id(pipeline)
        """Where the pipeline was loaded from (Hub id or folder), when known."""
        self.device: str = str(device) if device is not None else _pipeline_device(pipeline)
        """Device of the random generators."""
        self.name: str = name or f"diffusers:{self.model_id or type(pipeline).__name__}"
        self._parameters, self._accepts_any = keyword_parameters(pipeline.__call__)
        self.capabilities = T2ICapabilities(
            max_batch_size=batch_size,
            supports_negative_prompt=self._accepts("negative_prompt"),
            supports_seed=self._accepts("generator"),
            native_pixels=_native_pixels(pipeline),
            size_multiple=self.size_multiple,
        )
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike[str],
        *,
        device: str = "cpu",
        torch_dtype: Any = "float32",
        variant: str | None = None,
        batch_size: int = 4,
        name: str | None = None,
        local_files_only: bool | None = None,
        **pipeline_kwargs: Any,
    ) -> DiffusersT2I:
        """Load a text-to-image pipeline with ``AutoPipelineForText2Image`` and move it to ``device``.

        Args:
            model: Hugging Face Hub id (e.g. ``"stabilityai/sdxl-turbo"``) or local folder.
            device: Torch device; nothing is moved to a GPU unless you say so.
            torch_dtype: ``"float32"`` (default), ``"float16"``, ``"bfloat16"`` or a ``torch.dtype``.
            variant: Weight file variant, e.g. ``"fp16"``.
            batch_size: Most images per pipeline call.
            name: Backend name; default ``"diffusers:<model>"``.
            local_files_only: True never downloads; None downloads unless ``HF_HUB_OFFLINE`` is set.
            **pipeline_kwargs: Passed to ``from_pretrained`` (e.g. ``safety_checker=None``).

        Raises:
            MissingDependencyError: diffusers, transformers (or a package a component of this
                pipeline needs) is not installed; the message names the ``pip install``.
            ConfigurationError: The model is neither a local folder nor available (cached
                or downloadable), or ``device`` is not usable here (CUDA asked for where torch
                has none); the message says how to fix it.
        """
        diffusers = require("diffusers", extra="diffusers", purpose="DiffusersT2I")
        # Text-to-image pipelines need transformers for their text encoders; without it diffusers
        # fails late, with its own ImportError. It belongs to the same extra.
        require("transformers", extra="diffusers", purpose="the text encoders of diffusers pipelines")
        device = check_device(device, extra="diffusers", purpose="DiffusersT2I")
        model_id = os.fspath(model)
        dtype = resolve_dtype(torch_dtype, extra="diffusers")
        dtype_kwarg = {_dtype_argument(): dtype}

        def load(local_only: bool) -> Any:
            try:
                return diffusers.AutoPipelineForText2Image.from_pretrained(
                    model_id, variant=variant, local_files_only=local_only, **dtype_kwarg, **pipeline_kwargs
                )
            except MissingDependencyError:
                raise
            except ImportError as exc:  # a component needs a package that is not installed
                raise _missing_dependency(exc, model_id) from None

        local_only = optional_bool(local_files_only, "local_files_only")
        pipeline = load_pretrained(load, model_id, what="text-to-image", local_files_only=local_only)
        pipeline = pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline, device=device, batch_size=batch_size, name=name or f"diffusers:{model_id}")

    # ------------------------------------------------------------------ description

    @property
    def dtype_name(self) -> str | None:
        """The pipeline's dtype as a string (``"float32"``), when it has one."""
        dtype = getattr(self.pipeline, "dtype", None)
        return dtype_name(dtype) if dtype is not None else None

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the model, pipeline, device, dtype and library versions, for run results."""
        scheduler = getattr(self.pipeline, "scheduler", None)
        return {
            "name": self.name,
            "model": self.model_id,
            "pipeline": type(self.pipeline).__name__,
            "scheduler": type(scheduler).__name__ if scheduler is not None else None,
            "device": self.device,
            "dtype": self.dtype_name,
            "batch_size": self.batch_size,
            "safety_checker": self._has_safety_checker(),
            "supports_negative_prompt": self.capabilities.supports_negative_prompt,
            "versions": library_versions("diffusers", "torch", "transformers"),
        }

    def __repr__(self) -> str:
        return f"DiffusersT2I({type(self.pipeline).__name__}, model={self.model_id!r}, device={self.device!r})"

    # ------------------------------------------------------------------ settings

    @property
    def size_multiple(self) -> int:
        """What ``height`` and ``width`` must be multiples of for this pipeline.

        Diffusers' pipelines refuse sizes that are not multiples of 8 (Stable Diffusion, SDXL,
        PixArt, ... check exactly that). A transformer pipeline also cuts the latent image, which
        is ``vae_scale_factor`` times smaller, into patches of ``patch_size``, so it needs
        multiples of ``vae_scale_factor * patch_size`` (16 for SD3, 32 for Sana). FLUX, which
        asks for multiples of ``vae_scale_factor * 2``, only warns and resizes, so it is not
        held to that.
        """
        multiple = 8
        factor = getattr(self.pipeline, "vae_scale_factor", None)
        transformer = getattr(self.pipeline, "transformer", None)
        if isinstance(factor, int) and factor > 0 and transformer is not None:
            patch = getattr(self.pipeline, "patch_size", None)
            if not isinstance(patch, int):
                patch = getattr(getattr(transformer, "config", None), "patch_size", None)
            multiple = math.lcm(multiple, factor * (patch if isinstance(patch, int) and patch > 0 else 1))
        return multiple

    def check_settings(self, settings: GenerationConfig) -> None:
        """Refuse ``height`` / ``width`` values the pipeline would reject, before any paid call.

        Only sizes the pipeline takes are checked (see :attr:`size_multiple`); ``None`` leaves
        the size to the pipeline.

        Raises:
            ConfigurationError: a size is not positive, or not a multiple of :attr:`size_multiple`;
                the message suggests the nearest accepted values.
        """
        multiple = self.size_multiple if hasattr(self.pipeline, "components") else 1
        for field in ("height", "width"):
            value = getattr(settings, field, None)
            if value is None or not self._accepts(field):
                continue
            if value < 1 or value % multiple:
                lower = value - value % multiple
                options = " or ".join(str(v) for v in (lower, lower + multiple) if v >= multiple)
                raise ConfigurationError(
                    f"{field}={value} cannot be rendered by {self.name}: {type(self.pipeline).__name__} needs "
                    f"height and width to be positive multiples of {multiple}. Use e.g. {field}={options}."
                )

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        """Render every request, in order, in as few pipeline calls as the batch size allows.

        Raises:
            GenerationError: The pipeline failed; ``__cause__`` holds its exception.
        """
        requests = list(requests)
        results: list[GeneratedImage | None] = [None] * len(requests)
        for indices in self._plan(requests):
            images = self._render([requests[i] for i in indices])
            for index, image in zip(indices, images, strict=True):
                results[index] = image
        return [r for r in results if r is not None]

    def _plan(self, requests: Sequence[GenerationRequest]) -> Iterator[list[int]]:
        """Group request indices by the settings a pipeline call shares, in chunks of ``batch_size``.

        Settings the pipeline does not take are dropped before the call, so they do not split groups.
        """
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(requests):
            shared = (getattr(request, f) if self._accepts(f) else None for f in _SHARED_FIELDS)
            key = (*shared, self._negative_prompt(request) is not None)
            groups.setdefault(key, []).append(index)
        for indices in groups.values():
            yield from (list(chunk) for chunk in batches(indices, self.batch_size))

    def _render(self, batch: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        kwargs = self._call_kwargs(batch)
        try:
            with self._lock:
                output = self.pipeline(**kwargs)
        except Exception as exc:
            raise GenerationError(
                f"The diffusers pipeline {type(self.pipeline).__name__} failed on a batch of {len(batch)} "
                f"image(s): {type(exc).__name__}: {exc}",
                backend=self.name,
            ) from exc
        images, flags = _unpack_output(output)
        if len(images) != len(batch):
            raise GenerationError(
                f"The pipeline returned {len(images)} image(s) for {len(batch)} prompt(s).", backend=self.name
            )
        checker = self._has_safety_checker()
        results = []
        for i, raw in enumerate(images):
            image = _to_pil(raw, backend=self.name)
            flagged = bool(flags[i]) if flags is not None and i < len(flags) else False
            blocked = flagged or (flags is None and checker and _is_black(image))
            results.append(GeneratedImage(image=image, blocked=blocked))
        return results

    def _call_kwargs(self, batch: Sequence[GenerationRequest]) -> dict[str, Any]:
        torch = require("torch", extra="diffusers")
        first = batch[0]
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in batch],
            "generator": [torch.Generator(device=self.device).manual_seed(r.seed) for r in batch],
            "num_images_per_prompt": 1,
            "output_type": "pil",
            "return_dict": True,
        }
        if self._negative_prompt(first) is not None:
            kwargs["negative_prompt"] = [self._negative_prompt(r) for r in batch]
        for field in _SHARED_FIELDS:
            value = getattr(first, field)
            if value is not None:
                kwargs[field] = value
        return {k: v for k, v in kwargs.items() if self._accepts(k)}

    def _negative_prompt(self, request: GenerationRequest) -> str | None:
        """The request's negative prompt, or None when there is none or the pipeline takes none."""
        return request.negative_prompt if self._accepts("negative_prompt") else None

    def _accepts(self, argument: str) -> bool:
        return self._accepts_any or argument in self._parameters

    def _has_safety_checker(self) -> bool:
        return getattr(self.pipeline, "safety_checker", None) is not None


# ----------------------------------------------------------------------------- helpers


_EXTRA_MODULES = {"torch", "diffusers", "transformers", "accelerate", "safetensors"}
"""Modules the ``diffusers`` extra installs."""


def _missing_dependency(exc: ImportError, model_id: str) -> MissingDependencyError:
    """A MissingDependencyError naming the ``pip install`` for an ImportError raised while loading ``model_id``."""
    found = re.search(r"requires the (\w[\w.-]*) library", str(exc))
    module = exc.name or (found.group(1) if found else None)
    root = (module or "").split(".")[0]
    ours = root in _EXTRA_MODULES or not root
    fix = 'pip install "imagerepainter[diffusers]"' if ours else f"pip install {root}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return MissingDependencyError(
        f"Loading the diffusers pipeline {model_id!r} needs {repr(root) if root else 'a package'} that is not "
        f"installed ({first}). Install it with: {fix}"
    )


def _dtype_argument() -> str:
    """``"dtype"`` on diffusers versions that renamed ``torch_dtype`` (and warn about the old name)."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:  # pragma: no cover - very old diffusers
        return "torch_dtype"
    return "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"


def _model_id(pipeline: Any) -> str | None:
    value = getattr(pipeline, "name_or_path", None)
    if value is None:
        config = getattr(pipeline, "config", None)
        value = getattr(config, "_name_or_path", None) if config is not None else None
    return str(value) if value else None


def _pipeline_device(pipeline: Any) -> str:
    """Where the pipeline computes: ``_execution_device`` (right under CPU offload), else ``device``, else CPU."""
    for attribute in ("_execution_device", "device"):
        try:
            value = getattr(pipeline, attribute, None)
        except Exception:  # a property may fail on exotic pipelines
            value = None
        if value is not None and not hasattr(value, "parameters"):
            return str(value)
    return "cpu"


def _unpack_output(output: Any) -> tuple[list[Any], list[Any] | None]:
    """``(images, nsfw flags or None)`` from a pipeline output object or tuple."""
    if isinstance(output, tuple):
        images, flags = output[0], (output[1] if len(output) > 1 else None)
    else:
        images, flags = getattr(output, "images", None), getattr(output, "nsfw_content_detected", None)
    if images is None:
        raise GenerationError(f"The pipeline returned {type(output).__name__} without images.")
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = images[None]
    if flags is not None and not isinstance(flags, list | tuple):
        flags = list(np.asarray(flags).reshape(-1))
    return list(images), (list(flags) if flags is not None else None)


def _to_pil(raw: Any, *, backend: str) -> Image.Image:
    if isinstance(raw, Image.Image):
        return raw if raw.mode == "RGB" else raw.convert("RGB")
    if isinstance(raw, np.ndarray):  # output_type="np": float HWC in [0, 1]
        array = raw if raw.dtype == np.uint8 else (np.clip(raw, 0.0, 1.0) * 255).round().astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    raise GenerationError(f"The pipeline returned an image of type {type(raw).__name__}.", backend=backend)


def _is_black(image: Image.Image) -> bool:
    """True when every pixel is pure black (what safety checkers put in place of a blocked image)."""
    bands = cast(tuple[tuple[int, int], ...], image.convert("RGB").getextrema())
    return all(high == 0 for _, high in bands)


def _native_pixels(pipeline: Any) -> int | None:
    """The pixel count a pipeline renders by default: its default sample size (SDXL, FLUX, SD3) or its
    UNet's sample size, times the VAE's scale factor, squared; ``None`` when it cannot tell."""
    factor = getattr(pipeline, "vae_scale_factor", None)
    sample = getattr(pipeline, "default_sample_size", None)
    if not isinstance(sample, int):
        unet = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", None)
    if isinstance(sample, int) and isinstance(factor, int) and sample > 0 and factor > 0:
        return (sample * factor) ** 2
    return None
