"""Optional dependencies, imported on first use with an error that names the extra.

``import imagerepainter`` must stay light: torch, diffusers, transformers and
langchain-openai are imported only by the code paths that need them, through
:func:`require`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["EXTRAS", "Need", "is_available", "require", "require_all"]

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
        error = MissingDependencyError(
            f"The optional dependency {root!r} is needed{why} but is not installed. "
            f'Install it with: pip install "imagerepainter[{extra}]"'
        )
        error.extras = (extra,)
        raise error from exc


def _listed(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def is_available(module: str) -> bool:
    """Tell whether ``module`` can be imported, without importing it (a dotted name imports its parents).

    Example:
        >>> is_available("json"), is_available("json.no_such_module"), is_available("no_such_package")
        (True, False, False)
    """
    try:
        for name in (module.split(".")[0], module):
            if name in sys.modules:  # imported already, or set to None to make its import fail
                if sys.modules[name] is None:
                    return False
            elif importlib.util.find_spec(name) is None:
                return False
    except (ImportError, ValueError):  # a parent that fails to import, or a finder that refuses the name
        return False
    return True


@dataclass(frozen=True)
class Need:
    """Optional modules that one part of a run needs, and the extra of ``imagerepainter`` that installs them."""

    what: str
    """Who needs them, as a message names it: ``"the 'paper' scorer"``."""
    modules: tuple[str, ...]
    extra: str


def require_all(needs: Iterable[Need]) -> None:
    """Check that every module of ``needs`` is installed, without importing any; name all that are missing at once.

    One message lists each part that lacks something and gives one ``pip install`` with every
    extra they need, so a user installs once instead of meeting the missing extras one at a time.

    Raises:
        MissingDependencyError: some modules are missing; its ``extras`` lists the extras to install.

    Example:
        >>> require_all([Need("the 'x' scorer", ("json",), "metrics")])  # all installed: nothing happens
        >>> try:
        ...     require_all([Need("the 'x' scorer", ("no_such_a", "json"), "metrics"),
        ...                  Need("the 'y' MLLM", ("no_such_b",), "openai")])
        ... except MissingDependencyError as exc:
        ...     print(exc, exc.extras)
        Not installed: the 'x' scorer needs no_such_a (extra metrics); the 'y' MLLM needs no_such_b (extra openai). \
Install them with: pip install "imagerepainter[metrics,openai]" ('metrics', 'openai')
    """
    gaps = [(need, missing) for need in needs if (missing := [m for m in need.modules if not is_available(m)])]
    if not gaps:
        return
    parts = "; ".join(f"{need.what} needs {_listed(missing)} (extra {need.extra})" for need, missing in gaps)
    extras = tuple(dict.fromkeys(need.extra for need, _ in gaps))
    them = "them" if sum(len(missing) for _, missing in gaps) > 1 else "it"
    error = MissingDependencyError(
        f'Not installed: {parts}. Install {them} with: pip install "imagerepainter[{",".join(extras)}]"'
    )
    error.extras = extras
    raise error
