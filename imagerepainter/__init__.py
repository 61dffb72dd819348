"""imagerepainter: regenerate a reference image with a multimodal LLM and a text-to-image model.

The ImageRepainter loop of Meng et al., "Image Regeneration: Evaluating Text-to-Image Model
via Generating Identical Image with Multimodal Large Language Models" (AAAI 2025), as a
LangGraph state machine: the MLLM describes the reference, the T2I model renders prompt
variants, a scorer compares them with the reference, and the MLLM critiques the best and
revises the prompt until the score converges.

    >>> import imagerepainter
    >>> imagerepainter.RepainterConfig.from_preset("paper").max_rounds
    3

Importing this package is light: torch, diffusers and transformers load only when a
backend that needs them is used, and the public names below load on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_LAZY: dict[str, str] = {
    "Repainter": "imagerepainter.repainter",
    "RepaintEvent": "imagerepainter.repainter",
    "RepaintResult": "imagerepainter.results",
    "Round": "imagerepainter.results",
    "Candidate": "imagerepainter.results",
    "CritiqueResult": "imagerepainter.results",
    "RepainterConfig": "imagerepainter.config",
    "GenerationConfig": "imagerepainter.config",
    "build_graph": "imagerepainter.loop.graph",
    "load_image": "imagerepainter.images",
    "MemoryImageStore": "imagerepainter.images",
    "DirectoryImageStore": "imagerepainter.images",
    "available_backends": "imagerepainter.backends.registry",
    "RepainterError": "imagerepainter.errors",
    "ConfigurationError": "imagerepainter.errors",
    "UnknownBackendError": "imagerepainter.errors",
    "CapabilityError": "imagerepainter.errors",
    "InvalidImageError": "imagerepainter.errors",
    "ImageTooLargeError": "imagerepainter.errors",
    "ImageNotFoundError": "imagerepainter.errors",
    "MetricUnavailableError": "imagerepainter.errors",
    "ThreadInUseError": "imagerepainter.errors",
    "ReviewError": "imagerepainter.errors",
    "Description": "imagerepainter.results",
    "IncompleteRunError": "imagerepainter.errors",
    "MissingDependencyError": "imagerepainter.errors",
    "BackendError": "imagerepainter.errors",
    "BatchError": "imagerepainter.errors",
    "MLLMError": "imagerepainter.errors",
    "StructuredOutputError": "imagerepainter.errors",
    "GenerationError": "imagerepainter.errors",
}

__all__ = [
    "__version__",
    "BackendError",
    "BatchError",
    "Candidate",
    "CapabilityError",
    "ConfigurationError",
    "CritiqueResult",
    "Description",
    "DirectoryImageStore",
    "GenerationConfig",
    "GenerationError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "IncompleteRunError",
    "InvalidImageError",
    "MLLMError",
    "MemoryImageStore",
    "MetricUnavailableError",
    "MissingDependencyError",
    "RepaintEvent",
    "RepaintResult",
    "Repainter",
    "RepainterConfig",
    "RepainterError",
    "ReviewError",
    "Round",
    "StructuredOutputError",
    "ThreadInUseError",
    "UnknownBackendError",
    "available_backends",
    "build_graph",
    "load_image",
]

if TYPE_CHECKING:
    from .backends.registry import available_backends
    from .config import GenerationConfig, RepainterConfig
    from .errors import (
        BackendError,
        BatchError,
        CapabilityError,
        ConfigurationError,
        GenerationError,
        ImageNotFoundError,
        ImageTooLargeError,
        IncompleteRunError,
        InvalidImageError,
        MetricUnavailableError,
        MissingDependencyError,
        MLLMError,
        RepainterError,
        ReviewError,
        StructuredOutputError,
        ThreadInUseError,
        UnknownBackendError,
    )
    from .images import DirectoryImageStore, MemoryImageStore, load_image
    from .loop.graph import build_graph
    from .repainter import Repainter, RepaintEvent
    from .results import Candidate, CritiqueResult, Description, RepaintResult, Round


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagerepainter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
