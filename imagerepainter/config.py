"""Every knob of the loop, in one validated, frozen pydantic model.

Precedence, with nothing implicit: keyword overrides given to ``Repainter.run`` beat the
:class:`RepainterConfig` given to ``Repainter``, which beats the preset's values. The
library never reads environment variables here; only the command line does.

Two presets:

* ``"default"`` — our loop: stops on convergence, keeps the global best, shows the
  critique the history of earlier rounds, and asks for critique, revised prompt and the
  next round's variants in one call.
* ``"paper"`` — the published ImageRepainter settings: 3 rounds x 3 paraphrases, no early
  stop, critique without history, separate critique and revise calls.

Example:
    >>> cfg = RepainterConfig.from_preset("paper")
    >>> cfg.max_rounds, cfg.variants, cfg.combined_critique
    (3, 3, False)
    >>> cfg.with_overrides(max_rounds=5).max_rounds
    5
    >>> cfg.with_overrides(review=["critique", "prompt"]).review
    ('prompt', 'critique')
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._memo import LRU
from .errors import ConfigurationError, close_names, did_you_mean

__all__ = ["GenerationConfig", "PresetName", "RepainterConfig", "PRESETS", "recorded_config", "remember_config"]

PresetName = Literal["default", "paper"]


def _not_a_bool(value: Any) -> Any:
    """Refuse ``True``/``False`` for an integer setting: Python counts them as 1 and 0, so
    ``max_rounds=True`` would quietly mean one round."""
    if isinstance(value, bool):
        raise ValueError("a whole number is needed, not a bool")  # the message adds the value
    return value


class GenerationConfig(BaseModel):
    """Arguments passed to the text-to-image backend for every candidate (diffusers' names).

    ``None`` leaves the choice to the backend (the pipeline's own default).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    height: int | None = Field(default=None, ge=8, le=4096)
    """Image height in pixels."""
    width: int | None = Field(default=None, ge=8, le=4096)
    """Image width in pixels."""
    num_inference_steps: int | None = Field(default=None, ge=1, le=1000)
    """Denoising steps."""
    guidance_scale: float | None = Field(default=None, ge=0.0, le=50.0)
    """Classifier-free guidance scale."""
    negative_prompt: str | None = None
    """What the image should not contain (ignored by backends that do not support it)."""

    _ints = field_validator("height", "width", "num_inference_steps", mode="before")(_not_a_bool)


class RepainterConfig(BaseModel):
    """Settings of one regeneration loop. Frozen: derive changed copies with :meth:`with_overrides`."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    preset: PresetName = "default"
    """Which preset these settings started from (recorded in results)."""

    # -- rounds and candidates
    max_rounds: int = Field(default=6, ge=1, le=100)
    """Hard cap on rounds; the loop's own bound, enforced by routing."""
    variants: int = Field(default=3, ge=1, le=16)
    """Candidates rendered per round (K); with ``adaptive_variants``, the most per round."""
    adaptive_variants: bool = True
    """Render one candidate per round while the critique keeps improving the score, and
    ``variants`` candidates in a round that follows a round without improvement (see
    :func:`~imagerepainter.loop.convergence.round_size`). Measured in the sandbox world, scores
    improve with critique rounds far more than with extra candidates of the same prompt, so
    this reaches a given score with fewer images. Off: every round renders ``variants``."""
    include_current_prompt: Literal["never", "first_round", "always"] = "always"
    """Whether the current prompt itself is one of a round's K candidates. The authors' code
    renders only paraphrases ("never"); rendering the prompt the critique just revised
    ("always") wastes nothing and keeps its edits intact."""

    # -- stopping
    target_score: float | None = Field(default=None, allow_inf_nan=False)
    """Stop as soon as the best score reaches this value (in the scorer's direction); a finite number."""
    min_delta: float = Field(default=0.005, ge=0.0, allow_inf_nan=False)
    """An improvement of the best score smaller than this counts as no improvement."""
    patience: int | None = Field(default=2, ge=1)
    """Stop after this many rounds without improvement; ``None`` never stops on a plateau."""
    stop_on_match: bool = False
    """Stop when the model judges the round's best image a match of the reference."""
    max_images: int | None = Field(default=None, ge=1)
    """Budget: most text-to-image images per run. A round that would exceed it is not started;
    a budget below one round is refused before the run starts."""
    max_mllm_calls: int | None = Field(default=None, ge=1)
    """Budget: most calls to the multimodal model per run. A round whose calls would exceed it
    is not started; a budget below what describing (up to ``5 + max_objects`` calls) and
    round 1 may take is refused before the run starts."""
    max_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Budget: wall-clock seconds per run, checked between rounds."""

    # -- human review
    review: tuple[Literal["prompt", "critique"], ...] = ()
    """Pause the run for a person (LangGraph ``interrupt``): ``"prompt"`` before each round renders
    (approve, edit or stop), ``"critique"`` after each critique (approve, edit or stop). Answer with
    ``Repainter.resume(thread_id, review=...)`` (see :mod:`imagerepainter.loop.review`); pausing needs a
    checkpointer (``Repainter`` always has one). Empty: never pause."""

    # -- understanding and critique
    max_objects: int = Field(default=5, ge=0, le=20)
    """Most objects in the Image Understanding Tree (the paper uses 5)."""
    prompt_style: Literal["sd", "natural"] = "sd"
    """Prompt style the T2I model likes: comma-separated Stable Diffusion tags or natural sentences."""
    prompt_words: int | None = Field(default=70, ge=5, le=500)
    """Ask for prompts of at most about this many words (CLIP's text encoder reads 77 tokens);
    ``None`` sets no limit (the authors' code sets none)."""
    system_prompt: bool = True
    """Send the library's short system message with every request (the authors' code sends none)."""
    critique_sees_prompt: bool = True
    """Show the critique the prompt that drew the image it looks at (the authors' code shows it
    only the two images)."""
    critique_history: bool = True
    """Show the critique the prompts, scores and critiques of earlier rounds."""
    combined_critique: bool = True
    """Ask for critique, revised prompt and next variants in one call (else separate calls)."""
    mllm_image_max_side: int = Field(default=768, ge=64, le=4096)
    """Images sent to the model are resized so their longest side is at most this."""
    mllm_image_format: Literal["jpeg", "png"] = "jpeg"
    """How images are encoded for the model. ``"jpeg"`` (quality 95, full-resolution colour) is
    visually lossless, 4 to 5 times smaller on the wire and about 15 times faster to encode
    than PNG; ``"png"`` is lossless, as the authors' code sends its files (the ``paper`` preset)."""
    max_concurrency: int = Field(default=8, ge=1, le=64)
    """Most model requests in flight at once (independent IUT calls run concurrently)."""

    # -- generation and reproducibility
    seed: int = Field(default=0, ge=0, lt=2**32)
    """Base seed; candidate ``i`` of round ``r`` uses a seed derived from it, recorded with the candidate."""
    vary_seed: bool = True
    """Give every candidate its own seed. False uses ``seed`` for every image, so score
    differences come from prompts alone."""
    generation: GenerationConfig = GenerationConfig()
    """Arguments for the text-to-image backend."""

    # -- input guard
    max_reference_pixels: int = Field(default=40_000_000, ge=1)
    """References with more pixels are refused (decompression-bomb guard)."""

    _ints = field_validator(
        "max_rounds",
        "variants",
        "patience",
        "max_images",
        "max_mllm_calls",
        "max_objects",
        "prompt_words",
        "mllm_image_max_side",
        "max_concurrency",
        "seed",
        "max_reference_pixels",
        mode="before",
    )(_not_a_bool)

    @field_validator("review", mode="before")
    @classmethod
    def _review_points(cls, value: Any) -> Any:
        """``"prompt"`` alone is ``("prompt",)``; the points are kept once each, in the order a round reaches them."""
        if isinstance(value, str):
            value = (value,)
        if isinstance(value, (list, tuple, set, frozenset)):
            order = {"prompt": 0, "critique": 1}
            return tuple(sorted(set(value), key=lambda v: (order.get(v, 2), str(v))))
        return value

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> RepainterConfig:
        """Return the settings of preset ``name`` (``"default"`` or ``"paper"``) with ``overrides``."""
        if name not in PRESETS:
            raise ConfigurationError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return PRESETS[name].with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> RepainterConfig:
        """Return a copy with ``overrides`` applied and validated.

        Nested generation settings may be given flat (``height=512``) or as
        ``generation={...}``. Unknown names raise :class:`ConfigurationError` with a suggestion.
        """
        if not overrides:
            return self
        data = self.model_dump()
        gen_fields = set(GenerationConfig.model_fields)
        for key, value in overrides.items():
            if key in type(self).model_fields:
                if key == "generation" and isinstance(value, dict):
                    data["generation"] = {**data["generation"], **value}
                elif key == "generation" and isinstance(value, GenerationConfig):
                    data["generation"] = value.model_dump()
                else:
                    data[key] = value
            elif key in gen_fields:
                data["generation"][key] = value
            else:
                known = sorted(set(type(self).model_fields) | gen_fields)
                hint = did_you_mean(close_names(key, known))
                raise ConfigurationError(f"Unknown setting {key!r}.{hint} Known settings: {', '.join(known)}.")
        return self.validated(data)

    @classmethod
    def validated(cls, data: dict[str, Any]) -> RepainterConfig:
        """Validate ``data`` into a config, turning pydantic's error into a :class:`ConfigurationError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
                for err in exc.errors()
            )
            raise ConfigurationError(f"Invalid settings: {problems}.") from None

    def candidates_in_round(self, round_index: int, size: int | None = None) -> tuple[bool, int]:
        """Return ``(current prompt included, number of new variants)`` for round ``round_index``
        (1-based) rendering ``size`` candidates (default ``variants``)."""
        size = self.variants if size is None else size
        include = self.include_current_prompt == "always" or (
            self.include_current_prompt == "first_round" and round_index == 1
        )
        return include, size - 1 if include else size


PRESETS: dict[str, RepainterConfig] = {
    "default": RepainterConfig(),
    "paper": RepainterConfig(
        preset="paper",
        max_rounds=3,
        variants=3,
        include_current_prompt="never",
        adaptive_variants=False,
        prompt_words=None,
        system_prompt=False,
        critique_sees_prompt=False,
        mllm_image_max_side=4096,
        mllm_image_format="png",
        patience=None,
        critique_history=False,
        combined_critique=False,
        max_objects=5,
    ),
}
"""The named presets; ``RepainterConfig.from_preset(name)`` returns a copy with overrides."""


_KNOWN = LRU[str, RepainterConfig](64)
"""Settings this process validated, by their JSON dump: a run's nodes read them back from the state."""


def remember_config(cfg: RepainterConfig) -> dict[str, Any]:
    """Record an already validated config so :func:`recorded_config` returns it as is; return its dump
    (what a run records in its state, ``state["config"]``)."""
    dumped = cfg.model_dump(mode="json")
    _KNOWN.put(json.dumps(dumped, sort_keys=True), cfg)
    return dumped


def recorded_config(dumped: dict[str, Any]) -> RepainterConfig:
    """The settings ``dumped`` records: validated at most once per distinct value in a process, and
    not at all when this process remembered them (:func:`remember_config`)."""
    key = json.dumps(dumped, sort_keys=True)
    known = _KNOWN.get(key)
    return known if known is not None else _KNOWN.put(key, RepainterConfig.model_validate_json(key))
