"""Backend protocols, adapters and the spec registry.

Protocols (:mod:`~imagerepainter.backends.base`): :class:`MLLM`, :class:`TextToImage`,
:class:`Scorer`. Specs (:mod:`~imagerepainter.backends.registry`): one table of providers,
:class:`BackendEntry` rows, options checked in one place. Adapters load lazily:
``ChatModelMLLM`` (any LangChain chat model), ``DiffusersT2I``, ``OpenAIImagesT2I``, ``FunctionT2I``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import (
    MLLM,
    GeneratedImage,
    GenerationRequest,
    MLLMCapabilities,
    MLLMMessage,
    MLLMReply,
    Scorer,
    T2ICapabilities,
    TextToImage,
    TokenUsage,
)
from .registry import (
    BackendEntry,
    accepted_options,
    available_backends,
    backend_entries,
    parse_spec,
    register_backend,
    register_entry,
    resolve_mllm,
    resolve_scorer,
    resolve_t2i,
)

_LAZY = {
    "ChatModelMLLM": ".langchain_mllm",
    "DiffusersT2I": ".diffusers_t2i",
    "OpenAIImagesT2I": ".openai_images",
    "FunctionT2I": ".function_t2i",
    "RetryPolicy": ".retry",
}

__all__ = [
    "MLLM",
    "BackendEntry",
    "GeneratedImage",
    "GenerationRequest",
    "MLLMCapabilities",
    "MLLMMessage",
    "MLLMReply",
    "Scorer",
    "T2ICapabilities",
    "TextToImage",
    "TokenUsage",
    "accepted_options",
    "available_backends",
    "backend_entries",
    "parse_spec",
    "register_backend",
    "register_entry",
    "resolve_mllm",
    "resolve_scorer",
    "resolve_t2i",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
