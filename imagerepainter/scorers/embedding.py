"""Image-image similarity as the cosine of CLIP or DINOv2 image embeddings (the paper's scores).

* :class:`CLIPScorer` — cosine of ``CLIPModel.get_image_features`` (default
  ``openai/clip-vit-base-patch32``, as in the paper's code).
* :class:`DINOv2Scorer` — cosine of DINOv2's token embeddings averaged over *all* tokens,
  class token included (default ``facebook/dinov2-base``, ``last_hidden_state.mean(dim=1)``
  as in the paper's code), or of the class token alone with ``pooling="cls"``.

Both follow the :class:`~imagerepainter.backends.base.Scorer` protocol:
:meth:`~_EmbeddingScorer.prepare` embeds the reference once, and
:meth:`~_EmbeddingScorer.score` embeds all candidates in batched forward passes of up to
``batch_size`` images. The device and dtype are explicit (default CPU, float32); nothing
moves to a GPU on its own. Models load lazily, on the first ``prepare``/``score`` (or
:meth:`~_EmbeddingScorer.load`), and are shared across scorer instances through a
process-wide cache (:func:`~imagerepainter.scorers.clear_model_cache` empties it).

``model`` is a Hugging Face Hub id or a local folder. A Hub id is read from the local
cache first; when it is not there and ``HF_HUB_OFFLINE=1`` is set, loading fails at once
with a :class:`~imagerepainter.errors.ConfigurationError` that says how to fix it.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> from imagerepainter.testing.tiny_models import build_tiny_clip
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     scorer = CLIPScorer(build_tiny_clip(f"{tmp}/clip"))
    ...     ref = scorer.prepare(Image.new("RGB", (64, 64), "red"))
    ...     scores = scorer.score(ref, [Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")])
    >>> round(scores[0], 4), scores[1] < scores[0]
    (1.0, True)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from PIL import Image

from .._imports import require
from .._loading import (
    check_device,
    dtype_name,
    get_or_load,
    library_versions,
    load_pretrained,
    model_key,
    optional_bool,
    positive_int,
    resolve_dtype,
)
from ..backends.base import ScoreGroup, describe_scorer
from ..errors import ConfigurationError, MissingDependencyError

__all__ = ["CLIPScorer", "DINOv2Scorer"]

Pooling = Literal["mean", "cls"]


@dataclass(frozen=True)
class _Loaded:
    """A model in eval mode on its device, with its image processor."""

    model: Any
    processor: Any


class _EmbeddingScorer:
    """Shared machinery: lazy cached loading, batched embedding, cosine scoring."""

    name: str
    higher_is_better: bool = True
    bounds: tuple[float, float] = (-1.0, 1.0)
    _what: ClassVar[str]
    default_model: ClassVar[str]

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        torch_dtype: Any = None,
        batch_size: int = 16,
        local_files_only: bool | None = None,
    ) -> None:
        self.batch_size = positive_int(batch_size, "batch_size")
        """Most images per forward pass."""
        self.model_id: str = os.fspath(model) if model is not None else self.default_model
        """The Hub id or local folder the model is loaded from."""
        self.device: str = str(device)
        """Device the model runs on (``"cpu"``, ``"cuda:0"``, ...); never chosen automatically."""
        self._torch_dtype = torch_dtype
        self.local_files_only = optional_bool(local_files_only, "local_files_only")
        """True never downloads; None downloads unless ``HF_HUB_OFFLINE`` is set."""
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()

    # ------------------------------------------------------------------ identity

    @property
    def spec(self) -> str:
        """``"<name>:<model>"``, e.g. ``"clip:openai/clip-vit-base-patch32"``."""
        return f"{self.name}:{self.model_id}"

    @property
    def dtype_name(self) -> str:
        """The dtype as a string, e.g. ``"float32"``; ``None`` means float32."""
        if self._torch_dtype is None:
            return "float32"
        return dtype_name(resolve_dtype(self._torch_dtype))

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of what computed the scores, for run results.

        Example:
            >>> d = CLIPScorer().describe()
            >>> d["name"], d["model"], d["device"], d["dtype"]
            ('clip', 'openai/clip-vit-base-patch32', 'cpu', 'float32')
        """
        return {
            **describe_scorer(self),
            "model": self.model_id,
            "device": self.device,
            "dtype": self.dtype_name,
            "batch_size": self.batch_size,
            **self._describe_extra(),
            "versions": library_versions("torch", "transformers"),
        }

    def _describe_extra(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, device={self.device!r}, torch_dtype={self.dtype_name!r})"

    # ------------------------------------------------------------------ loading

    def load(self) -> _EmbeddingScorer:
        """Load the model now (it is otherwise loaded on first use); return ``self``.

        Raises:
            ConfigurationError: The model is neither a local folder nor available from the Hub cache.
            MissingDependencyError: torch or transformers is not installed.
        """
        self._get_loaded()
        return self

    @property
    def model(self) -> Any:
        """The underlying transformers model (loads it if needed)."""
        return self._get_loaded().model

    @property
    def processor(self) -> Any:
        """The image processor that turns PIL images into ``pixel_values`` (loads it if needed)."""
        return self._get_loaded().processor

    def _get_loaded(self) -> _Loaded:
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    check_device(self.device, extra="metrics", purpose=f"{self._what} similarity")
                    dtype = resolve_dtype(self._torch_dtype)
                    key = model_key(type(self).__name__, self.model_id, self.device, dtype_name(dtype))
                    self._loaded = get_or_load(key, lambda: self._load_uncached(dtype))
        return self._loaded

    def _load_uncached(self, dtype: Any) -> _Loaded:
        transformers = require("transformers", extra="metrics", purpose=f"{self._what} similarity")

        def load(local_files_only: bool) -> _Loaded:
            model = self._model_class(transformers).from_pretrained(
                self.model_id, local_files_only=local_files_only, **_dtype_kwarg(transformers, dtype)
            )
            try:
                processor = transformers.AutoImageProcessor.from_pretrained(
                    self.model_id, local_files_only=local_files_only, **_pil_backend_kwarg(transformers)
                )
            except ImportError as exc:  # e.g. a transformers release whose processor needs torchvision
                raise MissingDependencyError(
                    f"The {self._what} image processor of transformers {transformers.__version__} cannot load: "
                    f"{exc} Install torchvision matching your torch (pip install torchvision), or another "
                    "transformers release (the one this project is tested with, 5.24, needs none for these models).",
                ) from None
            return _Loaded(model=model.to(self.device).eval(), processor=processor)

        return load_pretrained(load, self.model_id, what=self._what, local_files_only=self.local_files_only)

    def _model_class(self, transformers: Any) -> Any:
        raise NotImplementedError

    def _features(self, model: Any, pixel_values: Any) -> Any:
        """Return one embedding per image, shape ``(batch, dim)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring

    def embed(self, images: Sequence[Image.Image]) -> Any:
        """Return L2-normalised float32 embeddings of ``images`` on the CPU, shape ``(len(images), dim)``.

        Images go through the model in chunks of :attr:`batch_size`, one forward pass each.
        """
        torch = require("torch", extra="metrics")
        loaded = self._get_loaded()
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = [_as_rgb(image) for image in images[start : start + self.batch_size]]
                pixel_values = _preprocess(loaded.processor, batch, torch)
                pixel_values = pixel_values.to(device=self.device, dtype=loaded.model.dtype)
                features = self._features(loaded.model, pixel_values).float()
                chunks.append(torch.nn.functional.normalize(features, dim=-1).cpu())
        if not chunks:
            dim = self._embedding_dim(loaded.model)
            return torch.empty((0, dim), dtype=torch.float32)
        return torch.cat(chunks)

    def _embedding_dim(self, model: Any) -> int:
        raise NotImplementedError

    def prepare(self, reference: Image.Image) -> Any:
        """Embed ``reference`` once; return its normalised embedding (a 1-D CPU tensor) for :meth:`score`."""
        return self.embed([reference])[0]

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """Cosine similarity of each candidate with the prepared reference, in ``[-1, 1]``, in order."""
        return self.score_groups([(prepared, candidates)])[0]

    def score_groups(self, groups: Sequence[ScoreGroup]) -> list[list[float]]:
        """:meth:`score` for several prepared references at once: one list of cosines per group.

        The candidates of all groups are embedded together, in forward passes of up to
        :attr:`batch_size` images (so four cases' single images make one pass, not four), then
        each group's embeddings are compared with its own reference. Each image is embedded as
        on its own, so the scores equal :meth:`score`'s up to the float rounding of batched kernels.
        """
        for prepared, _ in groups:
            self._check_prepared(prepared)
        images = [image for _, candidates in groups for image in candidates]
        if not images:
            return [[] for _ in groups]
        embeddings = self.embed(images)
        scores, start = [], 0
        for prepared, candidates in groups:
            part = embeddings[start : start + len(candidates)]
            start += len(candidates)
            if part.shape[1] != prepared.shape[0]:
                raise ConfigurationError(
                    f"The prepared reference has {prepared.shape[0]} dimensions but {self.spec} embeds to "
                    f"{part.shape[1]}: it was prepared by another scorer."
                )
            scores.append([float(c) for c in (part @ prepared.to(part.dtype)).clamp(-1.0, 1.0)])
        return scores

    def _check_prepared(self, prepared: Any) -> None:
        torch = require("torch", extra="metrics")
        if not isinstance(prepared, torch.Tensor) or prepared.ndim != 1:
            raise ConfigurationError(
                f"{type(self).__name__}.score expects the value returned by its prepare(), "
                f"got {type(prepared).__name__}."
            )


class CLIPScorer(_EmbeddingScorer):
    """Cosine similarity of CLIP image embeddings (``get_image_features``), in ``[-1, 1]``.

    Args:
        model: Hub id or local folder of a CLIP model with its image processor; default
            ``"openai/clip-vit-base-patch32"`` (the paper's).
        device: Torch device to run on; default ``"cpu"``.
        torch_dtype: ``None`` (float32), a name such as ``"float16"``, or a ``torch.dtype``.
        batch_size: Most images per forward pass.
        local_files_only: True never downloads; None downloads unless ``HF_HUB_OFFLINE`` is set.

    Images are preprocessed by the model's own image processor (PIL backend: resize the
    short side, centre-crop, normalise), so non-square images are cropped.
    """

    name: str = "clip"
    _what: ClassVar[str] = "CLIP"
    default_model: ClassVar[str] = "openai/clip-vit-base-patch32"

    def _model_class(self, transformers: Any) -> Any:
        return transformers.CLIPModel

    def _features(self, model: Any, pixel_values: Any) -> Any:
        out = model.get_image_features(pixel_values=pixel_values)
        # transformers 4 returns the projected tensor; transformers 5 an output object holding it.
        return out if _is_tensor(out) else out.pooler_output

    def _embedding_dim(self, model: Any) -> int:
        return int(model.config.projection_dim)


class DINOv2Scorer(_EmbeddingScorer):
    """Cosine similarity of DINOv2 image embeddings, in ``[-1, 1]``.

    Args:
        model: Hub id or local folder of a DINOv2 model with its image processor; default
            ``"facebook/dinov2-base"`` (the paper's).
        pooling: ``"mean"`` (default, the paper's code: ``last_hidden_state.mean(dim=1)``,
            the mean over all tokens *including* the class token) or ``"cls"`` (the class
            token alone).
        device: Torch device to run on; default ``"cpu"``.
        torch_dtype: ``None`` (float32), a name such as ``"float16"``, or a ``torch.dtype``.
        batch_size: Most images per forward pass.
        local_files_only: True never downloads; None downloads unless ``HF_HUB_OFFLINE`` is set.

    Scorers that differ only in ``pooling`` share the same loaded model.
    """

    name: str = "dinov2"
    _what: ClassVar[str] = "DINOv2"
    default_model: ClassVar[str] = "facebook/dinov2-base"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        pooling: Pooling = "mean",
        device: str = "cpu",
        torch_dtype: Any = None,
        batch_size: int = 16,
        local_files_only: bool | None = None,
    ) -> None:
        if pooling not in ("mean", "cls"):
            raise ConfigurationError(f"pooling must be 'mean' or 'cls', got {pooling!r}.")
        super().__init__(
            model, device=device, torch_dtype=torch_dtype, batch_size=batch_size, local_files_only=local_files_only
        )
        self.pooling: Pooling = pooling
        """How token embeddings become one image embedding."""

    @property
    def spec(self) -> str:
        """``"dinov2:<model>"``, with ``"?pooling=cls"`` appended for class-token pooling."""
        return super().spec + ("?pooling=cls" if self.pooling == "cls" else "")

    def _describe_extra(self) -> dict[str, Any]:
        return {"pooling": self.pooling}

    def _model_class(self, transformers: Any) -> Any:
        return transformers.AutoModel

    def _features(self, model: Any, pixel_values: Any) -> Any:
        hidden = model(pixel_values=pixel_values).last_hidden_state
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)

    def _embedding_dim(self, model: Any) -> int:
        return int(model.config.hidden_size)


# ----------------------------------------------------------------------------- helpers


def _as_rgb(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise ConfigurationError(f"Scorers take PIL images, got {type(image).__name__}.")
    return image if image.mode == "RGB" else image.convert("RGB")


def _is_tensor(value: Any) -> bool:
    torch = require("torch", extra="metrics")
    return isinstance(value, torch.Tensor)


def _transformers_major(transformers: Any) -> int:
    try:
        return int(str(transformers.__version__).split(".")[0])
    except ValueError:  # pragma: no cover - odd version strings
        return 5


def _dtype_kwarg(transformers: Any, dtype: Any) -> dict[str, Any]:
    """``dtype=`` on transformers 5, ``torch_dtype=`` before."""
    return {"dtype": dtype} if _transformers_major(transformers) >= 5 else {"torch_dtype": dtype}


def _pil_backend_kwarg(transformers: Any) -> dict[str, Any]:
    """Ask for the PIL image processor, which needs no torchvision and matches the original preprocessing."""
    return {"backend": "pil"} if _transformers_major(transformers) >= 5 else {"use_fast": False}


def _preprocess(processor: Any, images: Sequence[Image.Image], torch: Any) -> Any:
    """``pixel_values`` of ``images``, each image processed on its own thread.

    The image processor resizes on the CPU with PIL, which releases the interpreter lock: for
    1024 px candidates this was most of a scoring call on a GPU (88 to 99 % measured on an H200),
    so the images of a batch are processed side by side. Each image is processed exactly as in a
    batch (processors treat images independently), so the values are the same. The threads last
    for the call only.
    """
    if len(images) < 2:
        return processor(images=list(images), return_tensors="pt")["pixel_values"]
    workers = min(len(images), os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imagerepainter-preprocess") as pool:
        parts = list(pool.map(lambda image: processor(images=[image], return_tensors="pt")["pixel_values"], images))
    return torch.cat(parts)
