"""Backend specs: strings such as ``"openai:gpt-4o-mini"`` resolved to backend objects.

A spec is ``provider[:model][?option=value&...]``. A passed-in object always wins and is
used as is. Options after ``?`` become keyword arguments of the backend, so device and dtype
stay explicit: ``"diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16"``.

Options are checked when the spec is resolved (when ``Repainter`` is built), not when the
backend is first used: an option the backend does not take is a
:class:`~imagerepainter.errors.ConfigurationError` that names it, lists the accepted ones and
suggests the closest (``temprature`` -> ``temperature``); values are converted to the type
the backend declares (``batch_size=4`` is an int) with the same kind of error when they cannot
be; and a ``device`` this torch cannot use (``cuda`` on a machine without CUDA) is refused
before anything is loaded. The accepted options of a built-in backend are the keyword
arguments of its class (``DiffusersT2I.from_pretrained``, ``CLIPScorer``, ...); for
``openai:`` MLLM specs, the fields of ``ChatOpenAI`` and their aliases.

======================  ===========================================================
kind                    specs
======================  ===========================================================
MLLM                    ``openai:<model>`` (ChatOpenAI; ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``
                        are read by ChatOpenAI itself), ``sandbox``; or any LangChain chat model
text-to-image           ``diffusers:<hub id or folder>``, ``openai:<gpt-image-1 | dall-e-3>``,
                        ``sandbox``; or a pipeline, a TextToImage, or a plain callable
scorer                  ``paper`` (0.5 CLIP + 0.5 DINOv2), ``clip[:<id or folder>]``,
                        ``dinov2[:<id or folder>]``, ``ssim``, ``psnr``, ``sandbox``
======================  ===========================================================

Third-party packages add providers through the ``imagerepainter.backends`` entry-point
group: an entry named ``<kind>.<provider>`` (kind ``mllm``, ``t2i`` or ``scorer``) pointing
at a factory ``(model: str | None, **options) -> backend``. Entry points load lazily, only
when a spec names a provider that is not built in.

Example:
    >>> parse_spec("diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16")
    ('diffusers', 'stabilityai/sdxl-turbo', {'device': 'cuda', 'torch_dtype': 'float16'})
    >>> try:
    ...     resolve_scorer("clpi")
    ... except UnknownBackendError as exc:
    ...     print(exc.suggestions)
    ('clip',)
    >>> try:
    ...     resolve_scorer("ssim?kernel=7")
    ... except ConfigurationError as exc:
    ...     print(str(exc).split(" Accepted")[0])
    Unknown option 'kernel' in the 'ssim' scorer spec. Did you mean 'kernel_size'?
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Callable
from importlib import metadata
from typing import Any, Literal
from urllib.parse import parse_qsl

from .._secrets import redact
from ..errors import ConfigurationError, UnknownBackendError
from .base import MLLM, Scorer, TextToImage

__all__ = [
    "BackendKind",
    "available_backends",
    "parse_spec",
    "register_backend",
    "resolve_mllm",
    "resolve_scorer",
    "resolve_t2i",
]

BackendKind = Literal["mllm", "t2i", "scorer"]
Factory = Callable[..., Any]
ENTRY_POINT_GROUP = "imagerepainter.backends"


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """Split ``provider:model?k=v`` into ``(provider, model or None, options)``."""
    head, _, query = spec.strip().partition("?")
    provider, _, model = head.partition(":")
    return provider.lower(), (model or None), dict(parse_qsl(query, keep_blank_values=True))


# ----------------------------------------------------------------------------- options
# Spec options arrive as strings; each built-in factory checks their names against what its
# backend accepts and converts their values before building anything.

Converter = Callable[[str, str], Any]
"""``(value, option name) -> converted value``, raising ConfigurationError."""


def _as_is(value: str, name: str) -> Any:
    return value


def _to_int(value: str, name: str) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"Option {name!r} must be a whole number, got {value!r}.") from None


def _to_float(value: str, name: str) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"Option {name!r} must be a number, got {value!r}.") from None


def _to_bool(value: str, name: str) -> Any:
    from .._loading import optional_bool

    return optional_bool(value, f"Option {name!r}")


def _optional(convert: Converter) -> Converter:
    def converter(value: str, name: str) -> Any:
        return None if str(value).strip().lower() in {"none", "null"} else convert(value, name)

    return converter


_BY_ANNOTATION: dict[str, Converter] = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "int|None": _optional(_to_int),
    "float|None": _optional(_to_float),
    "bool|None": _optional(_to_bool),
}


def _converter(annotation: Any) -> Converter:
    """The converter for a parameter annotation (a string under ``from __future__ import annotations``)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return _BY_ANNOTATION.get(text.replace(" ", ""), _as_is)


def _keyword_options(target: Callable[..., Any], *, skip: tuple[str, ...] = ("model",)) -> dict[str, Converter]:
    """The keyword arguments ``target`` takes by name (``**kwargs`` excluded), with their converters."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        name: _converter(param.annotation)
        for name, param in inspect.signature(target).parameters.items()
        if param.kind in named and name not in skip and name != "self"
    }


def _check_options(label: str, options: dict[str, str], accepted: dict[str, Converter]) -> dict[str, Any]:
    """Return ``options`` converted, or raise ConfigurationError for the first option ``accepted`` lacks.

    Example:
        >>> _check_options("'x'", {"size": "3"}, {"size": _to_int, "seed": _to_int})
        {'size': 3}
    """
    for name in options:
        if name not in accepted:
            listed = sorted(set(accepted) - _SECRET_OPTIONS)  # secrets are refused in any spec
            close = difflib.get_close_matches(name, listed, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            known = f"Accepted options: {', '.join(listed)}." if listed else "It takes no options."
            raise ConfigurationError(f"Unknown option {name!r} in the {label} spec.{hint} {known}")
    return {name: accepted[name](value, name) for name, value in options.items()}


def _check_device(options: dict[str, Any], *, extra: str) -> None:
    if "device" in options:
        from .._loading import check_device

        options["device"] = check_device(options["device"], extra=extra)


# ----------------------------------------------------------------------------- factories
# Each factory imports its backend lazily, so listing providers costs nothing.


def _openai_chat(model: str | None, **options: Any) -> MLLM:
    from .._imports import require
    from ..backends.langchain_mllm import ChatModelMLLM

    lc_openai = require("langchain_openai", extra="openai", purpose="the 'openai:' MLLM backend")
    options = _check_options("'openai:' MLLM", options, _chat_openai_options(lc_openai.ChatOpenAI))
    options.setdefault("max_retries", 0)  # ChatModelMLLM retries; don't multiply attempts
    if options.get("base_url") and not os.environ.get("OPENAI_API_KEY"):
        options.setdefault("api_key", "EMPTY")  # local servers (vLLM, Ollama, sandbox) need no key
    if not options.get("base_url") and not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
        raise ConfigurationError(
            "The 'openai:' MLLM needs an API key: set OPENAI_API_KEY, or point it at an OpenAI-compatible server "
            "with OPENAI_BASE_URL or base_url (e.g. --base-url http://127.0.0.1:8000/v1)."
        )
    try:
        chat = lc_openai.ChatOpenAI(model=model or "gpt-4o-mini", **options)
    except Exception as exc:  # the client validates its options when it is built
        problems = _validation_problems(exc) or str(exc)
        raise ConfigurationError(f"Invalid option in the 'openai:' MLLM spec: {redact(problems)}") from None
    return ChatModelMLLM(chat, name=f"openai:{model or 'gpt-4o-mini'}")


_CHAT_OPENAI_NOT_OPTIONS = frozenset(
    {"model", "model_name", "client", "async_client", "root_client", "root_async_client", "http_client"}
    | {"http_async_client", "http_socket_options", "callbacks", "custom_get_token_ids", "rate_limiter", "cache"}
)
"""ChatOpenAI fields that a spec cannot set: the model (it precedes ``?``) and Python objects."""


def _chat_openai_options(chat_openai: Any) -> dict[str, Converter]:
    """ChatOpenAI's fields and their aliases (``base_url``, ``timeout``, ...), except the model (it precedes ``?``)."""
    accepted: dict[str, Converter] = {}
    for name, field in chat_openai.model_fields.items():
        for key in (name, field.alias):
            if key and key not in _CHAT_OPENAI_NOT_OPTIONS:
                accepted[key] = _as_is  # pydantic converts "0.5" for a float field itself
    for name in ("timeout", "request_timeout"):  # typed float | tuple | Any: a string would stay a string
        if name in accepted:
            accepted[name] = _to_float
    return accepted


def _validation_problems(exc: BaseException) -> str | None:
    """``option 'x': message (got 'value')`` for each error of a pydantic ValidationError."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return None
    try:
        return "; ".join(_problem(err) for err in errors())
    except Exception:
        return None


_SENSITIVE_OPTIONS = frozenset(
    {"api_key", "openai_api_key", "base_url", "openai_api_base", "default_headers", "default_query", "organization"}
)
"""Options whose values may hold credentials (keys, tokens in URLs or headers): never echoed in errors."""


def _problem(err: Any) -> str:
    """One validation error as text; the offending value only for a named, non-sensitive option."""
    name = ".".join(str(p) for p in err["loc"])
    if not name:  # a check across options: its input is every option, credentials included
        return str(err["msg"])
    if name in _SENSITIVE_OPTIONS:
        return f"option {name!r}: {err['msg']}"
    return f"option {name!r}: {err['msg']} (got {err.get('input')!r})"


def _load(path: str) -> Any:
    """The object at ``"package.module:Name"``, imported when a spec needs it.

    Backends that sit above this module (the sandbox) are named by path, never imported by it.
    """
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _sandbox_mllm(model: str | None, **options: Any) -> MLLM:
    SandboxMLLM = _load("imagerepainter.sandbox.mllm:SandboxMLLM")
    return SandboxMLLM(**_check_options("'sandbox' MLLM", options, _keyword_options(SandboxMLLM)))


def _diffusers(model: str | None, **options: Any) -> TextToImage:
    from .._loading import get_or_load, model_key
    from .diffusers_t2i import DiffusersT2I

    if not model:
        raise ConfigurationError("A diffusers spec needs a model: 'diffusers:<hub id or local folder>'.")
    # Only the named arguments of from_pretrained: its **pipeline_kwargs would swallow typos.
    options = _check_options("'diffusers:' text-to-image", options, _keyword_options(DiffusersT2I.from_pretrained))
    _check_device(options, extra="diffusers")
    # A spec loads its pipeline once per process: Repainters built from the same spec share it
    # (DiffusersT2I serialises calls to its pipeline).
    key = model_key("diffusers", model, str(options.get("device", "cpu")), str(options.get("torch_dtype", "float32")))
    return get_or_load((*key, tuple(sorted(options.items()))), lambda: DiffusersT2I.from_pretrained(model, **options))


def _openai_images(model: str | None, **options: Any) -> TextToImage:
    from .openai_images import OpenAIImagesT2I

    accepted = _keyword_options(OpenAIImagesT2I, skip=("model", "client"))
    return OpenAIImagesT2I(model or "gpt-image-2", **_check_options("'openai:' text-to-image", options, accepted))


def _sandbox_t2i(model: str | None, **options: Any) -> TextToImage:
    SandboxT2I = _load("imagerepainter.sandbox.renderer:SandboxT2I")
    return SandboxT2I(**_check_options("'sandbox' text-to-image", options, _keyword_options(SandboxT2I)))


def _clip(model: str | None, **options: Any) -> Scorer:
    from ..scorers import CLIPScorer

    options = _check_options("'clip' scorer", options, _keyword_options(CLIPScorer))
    _check_device(options, extra="metrics")
    return CLIPScorer(model or "openai/clip-vit-base-patch32", **options)


def _dinov2(model: str | None, **options: Any) -> Scorer:
    from ..scorers import DINOv2Scorer

    options = _check_options("'dinov2' scorer", options, _keyword_options(DINOv2Scorer))
    _check_device(options, extra="metrics")
    return DINOv2Scorer(model or "facebook/dinov2-base", **options)


def _paper(model: str | None, **options: Any) -> Scorer:
    from ..scorers import paper_scorer

    options = _check_options("'paper' scorer", options, _keyword_options(paper_scorer))
    _check_device(options, extra="metrics")
    return paper_scorer(**options)


def _ssim(model: str | None, **options: Any) -> Scorer:
    from ..scorers import SSIMScorer

    return SSIMScorer(**_check_options("'ssim' scorer", options, _keyword_options(SSIMScorer)))


def _psnr(model: str | None, **options: Any) -> Scorer:
    from ..scorers import PSNRScorer

    return PSNRScorer(**_check_options("'psnr' scorer", options, _keyword_options(PSNRScorer)))


def _sandbox_scorer(model: str | None, **options: Any) -> Scorer:
    SandboxScorer = _load("imagerepainter.sandbox.scorer:SandboxScorer")
    return SandboxScorer(**_check_options("'sandbox' scorer", options, _keyword_options(SandboxScorer)))


_REGISTRY: dict[str, dict[str, Factory]] = {
    "mllm": {"openai": _openai_chat, "sandbox": _sandbox_mllm},
    "t2i": {"diffusers": _diffusers, "openai": _openai_images, "sandbox": _sandbox_t2i},
    "scorer": {
        "paper": _paper,
        "clip": _clip,
        "dinov2": _dinov2,
        "ssim": _ssim,
        "psnr": _psnr,
        "sandbox": _sandbox_scorer,
    },
}
_KIND_NAMES = {"mllm": "MLLM", "t2i": "text-to-image backend", "scorer": "scorer"}
_entry_points_loaded = False


def register_backend(kind: BackendKind, provider: str, factory: Factory) -> None:
    """Register ``factory`` for specs ``<provider>[:model]`` of ``kind`` (overrides a built-in)."""
    if kind not in _REGISTRY:
        raise ConfigurationError(f"kind must be one of {sorted(_REGISTRY)}, not {kind!r}.")
    _REGISTRY[kind][provider.lower()] = factory


def available_backends() -> dict[str, list[str]]:
    """Return the registered providers of each kind (entry points included)."""
    _load_entry_points()
    return {kind: sorted(providers) for kind, providers in _REGISTRY.items()}


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        kind, _, provider = ep.name.partition(".")
        if kind in _REGISTRY and provider and provider not in _REGISTRY[kind]:
            _REGISTRY[kind][provider] = _LazyEntryPoint(ep)


class _LazyEntryPoint:
    def __init__(self, ep: metadata.EntryPoint) -> None:
        self.ep = ep

    def __call__(self, model: str | None, **options: Any) -> Any:
        return self.ep.load()(model, **options)


_SECRET_OPTIONS = {"api_key", "openai_api_key", "token", "hf_token", "password"}


def _resolve(kind: BackendKind, spec: str) -> Any:
    provider, model, options = parse_spec(spec)
    if secret := _SECRET_OPTIONS & set(options):
        raise ConfigurationError(
            f"Do not put {', '.join(sorted(secret))} in a backend spec: specs are recorded in results and run "
            "folders. Set the key in the environment (e.g. OPENAI_API_KEY) instead."
        )
    if "model" in options:
        raise ConfigurationError(
            f"The model goes before '?' in a spec, not in its options: '{provider}:<model>' (got {redact(spec)!r})."
        )
    table = _REGISTRY[kind]
    if provider not in table:
        _load_entry_points()
    if provider not in table:
        close = difflib.get_close_matches(provider, list(table), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownBackendError(
            f"Unknown {_KIND_NAMES[kind]} {spec!r}.{hint} Known: {', '.join(sorted(table))}.",
            spec=spec,
            suggestions=tuple(close),
        )
    return table[provider](model, **options)


def resolve_mllm(spec: Any) -> MLLM:
    """Return an :class:`MLLM` for ``spec``: a spec string, an MLLM, or a LangChain chat model."""
    if isinstance(spec, str):
        return _resolve("mllm", spec)
    if isinstance(spec, MLLM):
        return spec
    if hasattr(spec, "invoke") and hasattr(spec, "bind"):  # a LangChain chat model
        from .langchain_mllm import ChatModelMLLM

        return ChatModelMLLM(spec)
    raise ConfigurationError(
        f"mllm must be a spec string such as 'openai:gpt-4o-mini', a LangChain chat model or an MLLM, "
        f"not {type(spec).__name__}."
    )


def resolve_t2i(spec: Any) -> TextToImage:
    """Return a :class:`TextToImage` for ``spec``: a string, a backend, a diffusers pipeline or a callable."""
    if isinstance(spec, str):
        return _resolve("t2i", spec)
    if isinstance(spec, TextToImage):
        return spec
    if isinstance(spec, os.PathLike) or (hasattr(spec, "components") and callable(spec)):  # a folder or a pipeline
        from .diffusers_t2i import DiffusersT2I

        return DiffusersT2I(spec)
    if callable(spec) and not inspect.isclass(spec):
        from .function_t2i import FunctionT2I

        return FunctionT2I(spec)
    raise ConfigurationError(
        f"t2i must be a spec string such as 'diffusers:stabilityai/sdxl-turbo', a diffusers pipeline, a "
        f"TextToImage or a callable, not {type(spec).__name__}."
    )


def resolve_scorer(spec: Any) -> Scorer:
    """Return a :class:`Scorer` for ``spec``: a spec string or a scorer object."""
    if isinstance(spec, str):
        return _resolve("scorer", spec)
    if isinstance(spec, Scorer):
        return spec
    raise ConfigurationError(
        f"scorer must be a spec string such as 'paper' or 'clip', or a Scorer, not {type(spec).__name__}."
    )
