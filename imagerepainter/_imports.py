"""Optional dependencies, imported on first use with an error that names the extra.

``import imagerepainter`` must stay light: torch, diffusers, transformers and
langchain-openai are imported only by the code paths that need them, through
:func:`require`.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["EXTRAS", "is_available", "require"]

EXTRAS: dict[str, str] = {
    "torch": "diffusers",
    "diffusers": "diffusers",
    "transformers": "metrics",
    "torchmetrics": "metrics",
    "scipy": "bench",
    "langchain_openai": "openai",
    "openai": "openai",
    "langgraph.checkpoint.sqlite": "cli",
}
"""Which extra of ``imagerepainter`` installs each optional module."""


def require(module: str, *, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the fix.

    Args:
        module: Dotted module name, e.g. ``"diffusers"``.
        extra: The ``imagerepainter`` extra that installs it; looked up in :data:`EXTRAS`
            when omitted.
        purpose: What the module is needed for, shown in the message.

    Example:
        >>> require("json").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        root = module.split(".")[0]
        extra = extra or EXTRAS.get(module) or EXTRAS.get(root) or "all"
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"The optional dependency {root!r} is needed{why} but is not installed. "
            f'Install it with: pip install "imagerepainter[{extra}]"'
        ) from exc


def is_available(module: str) -> bool:
    """Tell whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module.split(".")[0]) is not None
