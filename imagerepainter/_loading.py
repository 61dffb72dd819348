"""Process-wide model cache and Hugging Face loading helpers (embedding scorers, diffusers backend).

Loading CLIP or DINOv2 takes seconds and hundreds of megabytes, so a model is loaded once
per process and shared by every scorer instance (and every run) that asks for the same
``(scorer class, model, device, dtype)``. Loading is lazy, thread-safe, and happens at most
once per key even when several threads ask at the same moment.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Hashable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from ._imports import require
from ._secrets import shown
from .errors import ConfigurationError

__all__ = [
    "cached_model_keys",
    "clear_model_cache",
    "get_or_load",
    "hub_offline",
    "library_versions",
    "load_pretrained",
    "model_key",
    "optional_bool",
    "positive_float",
    "positive_int",
    "resolve_dtype",
]

T = TypeVar("T")

_lock = threading.Lock()
_entries: dict[Hashable, Any] = {}
_key_locks: dict[Hashable, threading.Lock] = {}


def get_or_load(key: Hashable, loader: Callable[[], T]) -> T:
    """Return the value cached under ``key``, calling ``loader`` once if there is none.

    Concurrent callers with the same key wait for the first one's load instead of loading
    again; callers with other keys are not blocked. A failed load caches nothing.

    Example:
        >>> calls, _ = [], clear_model_cache()  # models other code loaded in this process are not counted
        >>> get_or_load(("doc", 1), lambda: calls.append(1) or "model")
        'model'
        >>> get_or_load(("doc", 1), lambda: calls.append(1) or "other")
        'model'
        >>> len(calls), clear_model_cache()
        (1, 1)
    """
    with _lock:
        if key in _entries:
            return _entries[key]  # type: ignore[no-any-return]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _lock:
            if key in _entries:
                return _entries[key]  # type: ignore[no-any-return]
        value = loader()
        with _lock:
            _entries[key] = value
        return value


def clear_model_cache() -> int:
    """Forget every cached model (they are freed once no scorer uses them); return how many there were."""
    with _lock:
        count = len(_entries)
        _entries.clear()
        _key_locks.clear()
    return count


def cached_model_keys() -> list[Hashable]:
    """The keys of the models loaded so far in this process."""
    with _lock:
        return list(_entries)


def model_key(kind: str, model: str, device: str, dtype: str) -> tuple[str, str, str, str]:
    """Cache key of a model: a local folder is keyed by its absolute path, so spellings of it agree."""
    folder = Path(model).expanduser()
    name = str(folder.resolve()) if folder.is_dir() else model
    return (kind, name, device, dtype)


def hub_offline() -> bool:
    """Tell whether Hugging Face downloads are disabled.

    Reads ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` at call time (``huggingface_hub``
    reads them only once, at import), so setting the variable later still takes effect.
    """
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers and diffusers
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def resolve_dtype(torch_dtype: Any, *, extra: str = "metrics") -> Any:
    """Turn ``None`` (float32), a name such as ``"float16"`` / ``"bf16"``, or a ``torch.dtype`` into a ``torch.dtype``.

    Example:
        >>> str(resolve_dtype("bf16")), str(resolve_dtype(None))
        ('torch.bfloat16', 'torch.float32')
    """
    torch = require("torch", extra=extra)
    if torch_dtype is None:
        return torch.float32
    if isinstance(torch_dtype, torch.dtype):
        return torch_dtype
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16", "float": "float32"}
    name = str(torch_dtype).removeprefix("torch.")
    name = aliases.get(name, name)
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigurationError(
            f"Unknown torch_dtype {torch_dtype!r}; use 'float32', 'float16', 'bfloat16' or a torch.dtype."
        )
    return dtype


def dtype_name(dtype: Any) -> str:
    """``torch.float16`` -> ``"float16"``."""
    return str(dtype).removeprefix("torch.")


def library_versions(*names: str) -> dict[str, str | None]:
    """Installed versions of ``names`` (``None`` when missing), read without importing them.

    Example:
        >>> library_versions("pillow", "no-such-distribution")["no-such-distribution"] is None
        True
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _looks_like_path(model: str) -> bool:
    """True for strings that can only be file-system paths, never Hub ids (``org/name``)."""
    return (
        model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1 or Path(model).expanduser().exists()
    )


def load_pretrained(load: Callable[[bool], T], model: str, *, what: str, local_files_only: bool | None = None) -> T:
    """Call ``load(local_files_only)`` for a local folder or Hub id, turning "not found" into a clear error.

    A Hub id is first looked up in the local cache only (no network at all); the Hub is
    contacted only if that fails and downloads are allowed (``local_files_only`` is not
    True and ``HF_HUB_OFFLINE`` is not set).

    Args:
        load: Does the actual ``from_pretrained`` calls, passing on ``local_files_only``.
        model: A Hub id such as ``"openai/clip-vit-base-patch32"`` or a local folder.
        what: Human name of the model, for messages (e.g. ``"CLIP"``).
        local_files_only: True never downloads; None follows ``HF_HUB_OFFLINE``.

    Raises:
        ConfigurationError: The folder does not exist, or the model is neither cached
            nor downloadable; the message says how to fix it.
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        return load(True)
    if _looks_like_path(model):
        raise ConfigurationError(
            f"The {what} model folder {model!r} does not exist (or is not a folder). "
            "Pass an existing folder made with save_pretrained, or a Hugging Face Hub id."
        )
    offline = hub_offline() if local_files_only is None else local_files_only
    try:
        return load(True)
    except OSError as exc:
        cause: BaseException = exc
    if not offline:
        try:
            return load(False)
        except OSError as exc:
            cause = exc
    reason = (
        "it is not in the local Hugging Face cache and downloads are disabled (HF_HUB_OFFLINE is set)"
        if offline and local_files_only is None
        else "it is not in the local Hugging Face cache and downloads are disabled (local_files_only=True)"
        if offline
        else "it is not in the local Hugging Face cache and could not be downloaded"
    )
    raise ConfigurationError(
        f"Could not load the {what} model {model!r}: {reason}. To fix it, download it once while online "
        f"(`hf download {model}`, or run without HF_HUB_OFFLINE), or pass the path of a local folder "
        f"that holds the model. Cause: {type(cause).__name__}: {_first_line(cause)}"
    ) from cause


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1 (spec strings such as ``"clip?batch_size=8"`` give strings)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ConfigurationError(f"{name} must be a whole number of at least 1, got {value!r}.")
    return number


def positive_float(value: Any, name: str) -> float:
    """``value`` as a positive finite float (spec strings give strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigurationError(f"{name} must be a positive finite number, got {value!r}.")
    return number


def optional_bool(value: Any, name: str) -> bool | None:
    """``None``, a bool, or a spec-string spelling of one (``"true"``, ``"0"``, ...) as ``bool | None``."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {shown(value)}.")


def check_device(device: Any, *, extra: str, purpose: str | None = None) -> str:
    """Return ``device`` as a string after checking that this torch can use it.

    Asking for CUDA (or Apple's MPS) where torch has none would otherwise surface as torch's
    bare ``AssertionError("Torch not compiled with CUDA enabled")`` deep inside loading or the
    first generation. Checking when the backend is built turns it into a
    :class:`~imagerepainter.errors.ConfigurationError` before any paid call.

    Args:
        device: What the caller was given, e.g. ``"cuda:1"``.
        extra: The extra that installs torch for the caller, named if torch is missing.
        purpose: What needs the device, for that message (``"the 'paper' scorer"``).

    Raises:
        ConfigurationError: ``device`` is not a torch device, or names a CUDA / MPS device
            this machine does not have.
        MissingDependencyError: torch is not installed.

    Example:
        >>> check_device("cpu", extra="metrics", purpose="CLIP similarity")
        'cpu'
    """
    torch = require("torch", extra=extra, purpose=purpose or f"device={device!r}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"device={device!r} is not a torch device ({exc}); use e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'."
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigurationError(
                f"device={device!r} asks for CUDA, but torch {torch.__version__} sees no CUDA GPU here "
                "(torch.cuda.is_available() is False). Use device='cpu', or install a CUDA build of torch on a "
                "machine with an NVIDIA GPU."
            )
        if parsed.index is not None and parsed.index >= count:
            raise ConfigurationError(
                f"device={device!r} asks for CUDA GPU {parsed.index}, but torch sees only {count} "
                f"(cuda:0 to cuda:{count - 1})."
            )
    if parsed.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigurationError(
                f"device={device!r} asks for Apple's MPS, which this torch {torch.__version__} cannot use here. "
                "Use device='cpu'."
            )
    return str(device)
