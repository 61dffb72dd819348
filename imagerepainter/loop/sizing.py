"""How a run's reference decides its sizes, before any model is called.

Three decisions, each made once, from the reference and the text-to-image model's
:class:`~imagerepainter.backends.base.T2ICapabilities`:

* **The rendered size** (:func:`fit_to_reference`). A run that sets no ``width`` / ``height``
  renders at the reference's aspect ratio at the model's native pixel count, clamped to the
  model's side limits and multiples. Any shape works: a 1x300 line renders as a 14x4096 image for
  the sandbox, a 20000x20 strip as 4096x8, the closest shapes the limits allow; the run's
  ``notes`` say so.
* **The reference's size** (:func:`reference_side`). No step looks at the reference larger than
  the largest of: the image side sent to the MLLM (``mllm_image_max_side``), and the rendered
  size (what candidates are compared at; embedding scorers look at a few hundred pixels). A
  larger reference is reduced to that as it is read
  (:func:`~imagerepainter.images.load_image`'s ``max_side``), so a 36-megapixel photograph costs
  what its reduced copy costs, and the run's ``notes`` give the original's size and the SHA-256
  of its bytes.
* **Recorded sizes** (:func:`repair_recorded_size`). Run folders written before sizes were
  clamped may hold a size the settings refuse (``height=4434``); reading them brings it within
  the limits, keeping its shape, so they resume.

Example:
    >>> from imagerepainter.config import RepainterConfig
    >>> from imagerepainter.sandbox import SandboxT2I
    >>> cfg, note = fit_to_reference(RepainterConfig(), (1, 300), SandboxT2I())
    >>> (cfg.generation.width, cfg.generation.height), note.split(":")[0]
    ((14, 4096), 'The reference is 1x300 (aspect 0.003333)')
    >>> reference_side(cfg)
    4096
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..backends.base import SIDE_LIMITS, TextToImage, check_generation_settings, fit_size, side_limits, size_clamped
from ..config import RepainterConfig, recorded_config
from ..errors import ConfigurationError
from ..images import ORIGINAL_INFO, ImageInput, load_image
from .convergence import check_budgets

__all__ = [
    "SizedReference",
    "check_run_inputs",
    "config_from_state",
    "fit_to_reference",
    "reduction_note",
    "reference_side",
    "repair_recorded_size",
    "settings_for_reference",
    "side_for_run",
    "size_for_reference",
]

logger = logging.getLogger(__name__)


def fit_to_reference(
    config: RepainterConfig, reference_size: tuple[int, int], t2i: Any
) -> tuple[RepainterConfig, str | None]:
    """The run's settings rendering at the reference's shape, and a note when the model's limits changed it.

    The run renders at the reference's aspect ratio at the model's native pixel count when it
    sets no size and the backend declares one; an explicit ``width`` or ``height`` wins. Sides
    stay within the model's limits and multiples (:func:`~imagerepainter.backends.base.fit_size`).
    """
    gen = config.generation
    capabilities = t2i.capabilities
    native = getattr(capabilities, "native_pixels", None)
    if gen.width is not None or gen.height is not None or not native:
        return config, None
    low, high = side_limits(capabilities)
    multiple = getattr(capabilities, "size_multiple", 8)
    width, height = fit_size(*reference_size, native_pixels=native, multiple=multiple, min_side=low, max_side=high)
    # the values are computed within their bounds: a copy, not a second validation
    config = config.model_copy(update={"generation": gen.model_copy(update={"width": width, "height": height})})
    if not size_clamped(*reference_size, native_pixels=native, min_side=low, max_side=high):
        return config, None
    ref_w, ref_h = reference_size
    note = (
        f"The reference is {ref_w}x{ref_h} (aspect {ref_w / ref_h:.4g}): {getattr(t2i, 'name', 'the model')} renders "
        f"sides from {low} to {high} pixels in multiples of {multiple}, so this run renders {width}x{height} "
        f"(aspect {width / height:.4g}), the closest shape those limits allow."
    )
    return config, note


def reference_side(config: RepainterConfig) -> int:
    """The longest side any step of a run with ``config`` looks at the reference with.

    That is the larger of the image side sent to the MLLM and the rendered size's longest side
    (candidates are compared at about that size); while the rendered size is not known (no
    ``width`` and ``height``, e.g. before the model is built), the largest any model renders.

    Example:
        >>> from imagerepainter.config import RepainterConfig
        >>> reference_side(RepainterConfig().with_overrides(width=512, height=320)), reference_side(RepainterConfig())
        (768, 4096)
    """
    gen = config.generation
    rendered = max(gen.width, gen.height) if gen.width is not None and gen.height is not None else SIDE_LIMITS[1]
    return max(config.mllm_image_max_side, rendered)


def side_for_run(config: RepainterConfig, t2i: Any) -> Callable[[tuple[int, int]], int]:
    """:func:`reference_side` for a reference of a given upright size, once the rendered size is fitted
    to it: what :func:`~imagerepainter.images.load_image` reduces to, decided from the file's header.

    Example:
        >>> from imagerepainter.sandbox import SandboxT2I
        >>> side_for_run(RepainterConfig(), SandboxT2I())((7360, 4912))
        768
    """
    return lambda size: reference_side(fit_to_reference(config, size, t2i)[0])


def reduction_note(image: Image.Image) -> str | None:
    """What :func:`~imagerepainter.images.load_image` reduced ``image`` from, in words; ``None`` if nothing.

    Example:
        >>> from imagerepainter.images import load_image
        >>> small = load_image(Image.new("RGB", (3000, 2000)), max_side=768)
        >>> reduction_note(small).split(";")[0]
        'The reference (3000x2000) was reduced to 768x512, the largest size any step of the run uses'
    """
    original = image.info.get(ORIGINAL_INFO)
    if not isinstance(original, dict):
        return None
    return (
        f"The reference ({original['width']}x{original['height']}) was reduced to {image.width}x{image.height}, "
        f"the largest size any step of the run uses; the SHA-256 of the original's "
        f"{original.get('sha256_of', 'bytes')} is {original['sha256']}."
    )


def repair_recorded_size(dumped: dict[str, Any]) -> dict[str, Any]:
    """``dumped`` settings (``RepainterConfig.model_dump``) with a generation size the settings refuse
    brought within :data:`~imagerepainter.backends.base.SIDE_LIMITS`, keeping its shape as closely as they allow.

    Versions before sizes were clamped could record such a size (a 1x300 reference rendered at
    15x4434); their folders then resume at the repaired size. Anything else is returned as is.

    Example:
        >>> repair_recorded_size({"generation": {"width": 15, "height": 4434}})["generation"]
        {'width': 14, 'height': 4096}
        >>> repair_recorded_size({"generation": {"width": 512, "height": 512}})["generation"]
        {'width': 512, 'height': 512}
    """
    gen = dumped.get("generation")
    if not isinstance(gen, dict):
        return dumped
    width, height = gen.get("width"), gen.get("height")
    sides = [v for v in (width, height) if isinstance(v, int) and not isinstance(v, bool)]
    low, high = SIDE_LIMITS
    if not sides or all(low <= v <= high for v in sides):
        return dumped
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        multiple = next(m for m in (64, 32, 16, 8, 1) if width % m == 0 and height % m == 0)
        width, height = fit_size(width, height, native_pixels=width * height, multiple=multiple)
    else:  # one side given: bring it within the limits
        width, height = (None if v is None else min(high, max(low, v)) for v in (width, height))
    logger.warning(
        "The recorded generation size %sx%s is outside %s-%s pixels (written by an older version); using %sx%s.",
        gen.get("width"),
        gen.get("height"),
        low,
        high,
        width,
        height,
    )
    return {**dumped, "generation": {**gen, "width": width, "height": height}}


def config_from_state(dumped: dict[str, Any]) -> RepainterConfig:
    """The settings a state recorded (``state["config"]``): validated at most once per distinct value
    in a process, and not at all when this process prepared the run
    (:func:`~imagerepainter.config.recorded_config`). A generation size recorded outside the
    settings' limits (by a version before sizes were clamped) is brought within them
    (:func:`repair_recorded_size`), so such runs resume."""
    return recorded_config(repair_recorded_size(dumped))


def check_run_inputs(
    config: RepainterConfig, reference: ImageInput, prompt: str | None, t2i: TextToImage | None = None
) -> Image.Image:
    """The checks every run makes before anything is called or created: the prompt, the reference
    (read, normalised, and reduced to the largest size the run uses, known from ``t2i`` once it is
    built: :mod:`imagerepainter.loop.sizing`), and budgets that must fit the first round. Returns the reference image.

    ``Repainter`` runs them when it prepares a run; run folders run them before creating a folder.
    """
    if prompt is not None and (not isinstance(prompt, str) or not prompt.strip()):
        raise ConfigurationError("prompt must be a non-empty string, or None to describe the reference.")
    side = reference_side(config) if t2i is None else side_for_run(config, t2i)
    image = load_image(reference, max_pixels=config.max_reference_pixels, max_side=side)
    check_budgets(config, describe=prompt is None)
    return image


@dataclass(frozen=True)
class SizedReference:
    """A run's reference and settings once sized (:func:`size_for_reference`)."""

    config: RepainterConfig
    """The settings, with the rendered size when the run sets none."""
    image: Image.Image
    """The reference, no larger than any step of the run uses."""
    notes: list[str]
    """What was changed on the user's behalf, in words (recorded in the result's ``notes``)."""


def size_for_reference(config: RepainterConfig, image: Image.Image, t2i: TextToImage) -> SizedReference:
    """Size a run to its reference (already read by :func:`check_run_inputs`): the rendered size fitted
    to the reference and the model's limits, the reference reduced to what the run uses, both
    checked before any paid call.

    Raises:
        ConfigurationError: the backend cannot render with these generation settings.
    """
    original = image.info.get(ORIGINAL_INFO)
    shape = (original["width"], original["height"]) if isinstance(original, dict) else image.size
    config, size_note = fit_to_reference(config, shape, t2i)
    check_generation_settings(t2i, config.generation)
    side = reference_side(config)
    if max(image.size) > side:  # the rendered size is now known: reduce further (cheap, from the first reduction)
        image = load_image(image, max_pixels=config.max_reference_pixels, max_side=side)
    notes = [note for note in (size_note, reduction_note(image)) if note]
    return SizedReference(config, image, notes)


def settings_for_reference(config: RepainterConfig, reference: Image.Image, t2i: TextToImage) -> RepainterConfig:
    """A run's settings once its reference is read: sized to the reference (when the run sets no
    size) and checked against what the text-to-image backend accepts.

    Raises:
        ConfigurationError: the backend cannot render with these generation settings.
    """
    return size_for_reference(config, reference, t2i).config
