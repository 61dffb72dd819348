"""Tiny random-weight models for offline tests, built from configs and saved to a folder.

Each builder creates a miniature but architecturally real model with seeded random
weights, and writes it with ``save_pretrained``. Tests then load it back through the
*real* loading paths (``AutoPipelineForText2Image.from_pretrained``,
``CLIPModel.from_pretrained``, ``AutoImageProcessor.from_pretrained``), so nothing is
mocked and nothing is downloaded. The outputs are meaningless (random weights) but the
mechanics — tokenizing, batching, seeding, embedding — are the real ones.

* :func:`build_tiny_stable_diffusion` — a Stable Diffusion pipeline (UNet, VAE, CLIP text
  encoder, a hand-written CLIP tokenizer, Euler scheduler) that renders 64x64 images in 2 steps.
* :func:`build_tiny_clip` — a ``CLIPModel`` with its PIL image processor and tokenizer.
* :func:`build_tiny_dinov2` — a ``Dinov2Model`` with its PIL image processor.

Builders are idempotent: a folder that already holds the same complete model (recognised
by the marker file :data:`MARKER_NAME`, written last) is returned untouched, so a
session-scoped fixture or a benchmark can call them freely. A model is first written to a
temporary sibling folder and then renamed into place, so a crash never leaves a folder
that looks complete. Weights depend only on ``seed``; the global torch RNG is left as it was.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     folder = build_tiny_dinov2(Path(tmp) / "dinov2")
    ...     sorted(p.name for p in folder.iterdir())
    ['config.json', 'imagerepainter-tiny-model.json', 'model.safetensors', 'preprocessor_config.json']
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._imports import require
from ..errors import ConfigurationError

__all__ = [
    "MARKER_NAME",
    "TINY_CLIP_VISION",
    "TINY_DINOV2",
    "TINY_TOWER",
    "TINY_WORDS",
    "build_tiny_clip",
    "build_tiny_clip_tokenizer",
    "build_tiny_dinov2",
    "build_tiny_stable_diffusion",
    "clip_text_config",
    "is_tiny_model",
]

MARKER_NAME = "imagerepainter-tiny-model.json"
"""File written last into a finished folder; records the kind of model and its seed."""

_FORMAT = 1  # bump when a builder changes, so stale folders are rebuilt

TINY_WORDS: tuple[str, ...] = tuple(
    """
    a an the of and with in on at by to from under over near behind front left right top bottom
    is are two three many one small large big tiny tall old young little
    photo photograph picture image painting drawing sketch illustration render portrait closeup close up view
    style art digital oil watercolor realistic detailed high quality sharp soft light dark bright shadow
    red orange yellow green blue purple pink brown black white gray grey gold silver
    man woman person people boy girl child face hair eyes hands smile dress shirt hat
    cat dog bird horse fish cow animal flower tree grass forest mountain sky cloud clouds sun moon star
    water sea ocean river lake beach sand snow rain city street road house building room window door
    table chair car boat bicycle book cup bottle food apple fruit cake
    morning evening night sunset sunrise summer winter background foreground
    """.split()  # noqa: SIM905 - a word list reads better as text
)
"""Whole words the tiny CLIP tokenizer encodes as single tokens (any other text still
tokenizes, as byte-level pieces), so that different prompts give different token ids."""

TINY_TOWER: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
}
"""The sizes every tiny transformer shares (CLIP's text and vision towers, DINOv2): 2 layers, 32-d, 4 heads."""

TINY_CLIP_VISION: dict[str, Any] = {**TINY_TOWER, "image_size": 32, "patch_size": 4}
"""Sizes of the tiny CLIP's vision tower (a ``CLIPVisionConfig``'s fields): 32x32 input, 4x4 patches."""

TINY_DINOV2: dict[str, Any] = {**TINY_TOWER, "image_size": 32, "patch_size": 8}
"""The tiny DINOv2's ``Dinov2Config`` fields: 32x32 input, 8x8 patches, 32-d tokens."""


# ----------------------------------------------------------------------------- public API


def build_tiny_clip_tokenizer(words: Iterable[str] = TINY_WORDS) -> Any:
    """Return a CLIP tokenizer with a hand-written byte-level BPE vocabulary.

    The vocabulary holds the 256 byte symbols (plus their end-of-word forms), merges that
    make every word in ``words`` a single token, and ``<|startoftext|>`` / ``<|endoftext|>``
    as the last two ids. Unknown words fall back to smaller pieces, never to an unknown token.

    Example:
        >>> tok = build_tiny_clip_tokenizer()
        >>> tok.convert_ids_to_tokens(tok("a red cat").input_ids)
        ['<|startoftext|>', 'a</w>', 'red</w>', 'cat</w>', '<|endoftext|>']
        >>> len(tok) == tok.eos_token_id + 1
        True
    """
    transformers = require("transformers", extra="diffusers", purpose="the tiny CLIP tokenizer")
    vocab, merges = _byte_level_bpe(words)
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def build_tiny_stable_diffusion(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build a tiny random-weight Stable Diffusion pipeline and save it to ``folder``.

    The pipeline has a 2-block UNet (1.4 M parameters), a 2-block VAE (latents are half the
    image size), a 2-layer CLIP text encoder, the tokenizer of
    :func:`build_tiny_clip_tokenizer`, an Euler scheduler and no safety checker. It renders
    a 64x64 image in 2 steps in about 0.1 s on a CPU.

    Args:
        folder: Where to save it; created if missing. A folder that already holds this
            model (same seed) is returned without rebuilding.
        seed: Seed of the random weights.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigurationError: ``folder`` exists, is not empty and holds something else.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from diffusers import AutoPipelineForText2Image
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = build_tiny_stable_diffusion(Path(tmp) / "sd")
        ...     pipe = AutoPipelineForText2Image.from_pretrained(folder)
        ...     pipe.set_progress_bar_config(disable=True)
        ...     image = pipe("a red cat", num_inference_steps=2, height=64, width=64).images[0]
        >>> type(pipe).__name__, image.size
        ('StableDiffusionPipeline', (64, 64))
    """
    return _build(Path(folder), kind="stable-diffusion", seed=seed, save=_save_stable_diffusion)


def build_tiny_clip(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build a tiny random-weight ``CLIPModel`` (32x32 input, 16-d embeddings) and save it to ``folder``.

    The folder also holds a ``CLIPImageProcessorPil`` (resize and crop to 32x32, CLIP's
    normalisation) and the tokenizer of :func:`build_tiny_clip_tokenizer`, so
    ``CLIPModel``, ``AutoImageProcessor`` and ``CLIPProcessor`` all load from it.

    Args:
        folder: Where to save it; created if missing; reused when already complete.
        seed: Seed of the random weights.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from transformers import CLIPModel
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = build_tiny_clip(Path(tmp) / "clip")
        ...     CLIPModel.from_pretrained(folder).config.projection_dim
        16
    """
    return _build(Path(folder), kind="clip", seed=seed, save=_save_clip)


def build_tiny_dinov2(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build a tiny random-weight ``Dinov2Model`` (32x32 input, 8x8 patches, 32-d tokens) and save it.

    The folder also holds a ``BitImageProcessorPil`` with DINOv2's ImageNet normalisation,
    so ``AutoModel`` and ``AutoImageProcessor`` load from it.

    Args:
        folder: Where to save it; created if missing; reused when already complete.
        seed: Seed of the random weights.

    Returns:
        ``folder`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from transformers import AutoModel
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = build_tiny_dinov2(Path(tmp) / "dinov2")
        ...     type(AutoModel.from_pretrained(folder)).__name__
        'Dinov2Model'
    """
    return _build(Path(folder), kind="dinov2", seed=seed, save=_save_dinov2)


def is_tiny_model(folder: str | os.PathLike[str], kind: str | None = None, *, seed: int | None = None) -> bool:
    """Tell whether ``folder`` holds a complete tiny model (of ``kind`` and ``seed`` when given).

    ``kind`` is ``"stable-diffusion"``, ``"clip"`` or ``"dinov2"``.

    Example:
        >>> is_tiny_model("/nonexistent/folder")
        False
    """
    marker = _read_marker(Path(folder))
    if marker is None or marker.get("format") != _FORMAT:
        return False
    return (kind is None or marker.get("kind") == kind) and (seed is None or marker.get("seed") == seed)


# ----------------------------------------------------------------------------- building


def _build(folder: Path, *, kind: str, seed: int, save: Callable[[Path, int], None]) -> Path:
    """Build with ``save`` into a temporary sibling, then move it to ``folder`` (idempotent)."""
    if is_tiny_model(folder, kind, seed=seed):
        return folder
    if folder.exists():
        if not folder.is_dir():
            raise ConfigurationError(f"Cannot build a tiny {kind} model at {str(folder)!r}: it is a file.")
        if any(folder.iterdir()) and _read_marker(folder) is None:
            raise ConfigurationError(
                f"Cannot build a tiny {kind} model in {str(folder)!r}: the folder is not empty and does not "
                "hold a tiny model built by imagerepainter. Pass an empty or missing folder."
            )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
    try:
        save(staging, seed)
        marker = {"kind": kind, "seed": seed, "format": _FORMAT, "builder": "imagerepainter.testing.tiny_models"}
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if folder.exists():  # an older build (other seed or format) made by us: replace it
            if is_tiny_model(folder, kind, seed=seed):  # another process finished first
                return folder
            retired = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex}")
            folder.rename(retired)
            shutil.rmtree(retired, ignore_errors=True)
        try:
            staging.rename(folder)
        except OSError:
            if is_tiny_model(folder, kind, seed=seed):  # lost a race with another process
                return folder
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save_stable_diffusion(folder: Path, seed: int) -> None:
    torch = require("torch", extra="diffusers", purpose="building a tiny Stable Diffusion model")
    diffusers = require("diffusers", extra="diffusers", purpose="building a tiny Stable Diffusion model")
    transformers = require("transformers", extra="diffusers", purpose="building a tiny Stable Diffusion model")

    tokenizer = build_tiny_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = diffusers.UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=4,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            norm_num_groups=32,
        )
        vae = diffusers.AutoencoderKL(
            block_out_channels=(32, 64),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            sample_size=64,
            norm_num_groups=32,
        )
        text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(**clip_text_config(tokenizer)))
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
    )
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)


def _save_clip(folder: Path, seed: int) -> None:
    torch = require("torch", extra="metrics", purpose="building a tiny CLIP model")
    transformers = require("transformers", extra="metrics", purpose="building a tiny CLIP model")

    tokenizer = build_tiny_clip_tokenizer()
    config = transformers.CLIPConfig(
        text_config=clip_text_config(tokenizer, projection_dim=16),
        vision_config={**TINY_CLIP_VISION, "projection_dim": 16},
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.CLIPModel(config)
    model.save_pretrained(folder)
    transformers.CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _save_dinov2(folder: Path, seed: int) -> None:
    torch = require("torch", extra="metrics", purpose="building a tiny DINOv2 model")
    transformers = require("transformers", extra="metrics", purpose="building a tiny DINOv2 model")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Dinov2Model(transformers.Dinov2Config(**TINY_DINOV2))
    model.save_pretrained(folder)
    transformers.BitImageProcessorPil(
        size={"shortest_edge": 32},
        crop_size={"height": 32, "width": 32},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)


def clip_text_config(tokenizer: Any, **sizes: Any) -> dict[str, Any]:
    """A CLIP text tower config (``CLIPTextConfig``'s fields) that matches ``tokenizer``.

    The vocabulary size and the special token ids come from ``tokenizer``; the tower is
    :data:`TINY_TOWER` with a 32-d projection unless ``sizes`` says otherwise, so a
    full-size tower is the same call with its own sizes.

    Example:
        >>> config = clip_text_config(build_tiny_clip_tokenizer(), projection_dim=16)
        >>> config["vocab_size"] == config["eos_token_id"] + 1, config["hidden_size"], config["projection_dim"]
        (True, 32, 16)
    """
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": len(tokenizer),
        **TINY_TOWER,
        "max_position_embeddings": 77,
        "projection_dim": 32,
        **sizes,
    }


# ----------------------------------------------------------------------------- tokenizer vocabulary


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _byte_level_bpe(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return a CLIP BPE vocabulary and merges in which each of ``words`` is one token.

    Merges are added word by word, left to right, after applying the merges known so far;
    since BPE applies lower-ranked merges first, a word made whole earlier stays whole.
    """
    symbols = list(_byte_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    byte_map = _byte_to_unicode()
    for word in dict.fromkeys(w.lower() for w in words if w):
        text = "".join(byte_map[b] for b in word.encode("utf-8"))
        pieces = _apply_merges([*text[:-1], text[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = [pair[0] + pair[1], *pieces[2:]]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, merges


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply BPE merges (lowest rank first) to ``pieces``, as the tokenizer will."""
    while len(pieces) > 1:
        candidates = [(ranks[pair], i) for i, pair in enumerate(itertools.pairwise(pieces)) if pair in ranks]
        if not candidates:
            break
        _, i = min(candidates)
        pieces = [*pieces[:i], pieces[i] + pieces[i + 1], *pieces[i + 2 :]]
    return pieces
