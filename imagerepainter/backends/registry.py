"""Backend specs: strings such as ``"openai:gpt-4o-mini"`` resolved to backend objects.

A spec is ``provider[:model][?option=value&...]``. A passed-in object always wins and is
used as is. Options after ``?`` become keyword arguments of the backend, so device and dtype
stay explicit: ``"diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16"``.

The registry is a table: each row (:class:`BackendEntry`) names the backend's factory by import
path (imported only when a spec uses it) and where its options are declared. Options are
checked in one place, for built-in and third-party backends alike, when the spec is resolved
(when ``Repainter`` is built), not when the backend is first used: an option the backend does
not take is a :class:`~imagerepainter.errors.ConfigurationError` that names it, lists the
accepted ones and suggests the closest (``temprature`` -> ``temperature``); values are
converted to the type the backend declares (``batch_size=4`` is an int) with the same kind of
error when they cannot be (a value that may be a secret is never quoted back); and a
``device`` this torch cannot use (``cuda`` on a machine without CUDA) is refused before
anything is loaded. The accepted options are the named keyword arguments of the factory (its
``**kwargs`` are not options: they would swallow typos), of the callable given as ``options``,
or the fields (and aliases) of a pydantic model given as ``options``. Credentials
(``api_key``, ``token``...) are refused in any spec: specs are recorded in results.

======================  ===========================================================
kind                    specs
======================  ===========================================================
MLLM                    ``openai:<model>`` (ChatOpenAI; ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``
                        are read by ChatOpenAI itself), ``sandbox``; or any LangChain chat model
text-to-image           ``diffusers:<hub id or folder>``, ``openai:<gpt-image-1 | dall-e-3>``,
                        ``sandbox``; or a pipeline, a TextToImage, or a plain callable
scorer                  ``paper`` (0.5 CLIP + 0.5 DINOv2), ``clip[:<id or folder>]``,
                        ``dinov2[:<id or folder>]``, ``ssim``, ``psnr``, ``lpips``, ``dreamsim``
                        (distances: lower is better), ``sandbox``, ``blend:<blend.json>`` (a
                        blend fitted to people's judgments); the benchmark's metrics are these
                        same rows (``--metrics`` takes the same names, and the MLLM ``judge``)
======================  ===========================================================

Third-party packages add providers through the ``imagerepainter.backends`` entry-point
group: an entry named ``<kind>.<provider>`` (kind ``mllm``, ``t2i`` or ``scorer``) pointing
at a factory or class called as ``factory(model, **options)`` (``model`` is None when the
spec names none). Its typed keyword arguments are its options, checked like a built-in's.
Entry points are read only when a spec names a provider that is not built in, and the
factory is imported only when a spec uses it.

Example:
    >>> parse_spec("diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16")
    ('diffusers', 'stabilityai/sdxl-turbo', {'device': 'cuda', 'torch_dtype': 'float16'})
    >>> try:
    ...     resolve_scorer("clpi")
    ... except UnknownBackendError as exc:
    ...     print(exc.suggestions)
    ('clip', 'lpips')
    >>> try:
    ...     resolve_scorer("ssim?kernel=7")
    ... except ConfigurationError as exc:
    ...     print(str(exc).split(" Accepted")[0])
    Unknown option 'kernel' in the 'ssim' scorer spec. Did you mean 'kernel_size'?
    >>> accepted_options("t2i", "sandbox")["default_size"]
    'int'
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, Union
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError

from .._imports import EXTRAS, Need, require_all
from .._secrets import is_secret_name, may_hold_secret, redact, shown
from ..errors import ConfigurationError, MissingDependencyError, UnknownBackendError, close_names, did_you_mean
from .base import MLLM, Scorer, TextToImage

__all__ = [
    "BackendEntry",
    "BackendKind",
    "JUDGE_IS_NOT_A_LOOP_SCORER",
    "accepted_options",
    "available_backends",
    "backend_entries",
    "check_backends",
    "check_installed",
    "check_options",
    "check_spec",
    "default_scorer",
    "needs",
    "parse_spec",
    "register_backend",
    "register_entry",
    "resolve_mllm",
    "resolve_scorer",
    "resolve_t2i",
]

BackendKind = Literal["mllm", "t2i", "scorer"]
Factory = Callable[..., Any]
ENTRY_POINT_GROUP = "imagerepainter.backends"
_KIND_NAMES = {"mllm": "MLLM", "t2i": "text-to-image backend", "scorer": "scorer"}
_KIND_LABELS = {"mllm": "MLLM", "t2i": "text-to-image", "scorer": "scorer"}
JUDGE_IS_NOT_A_LOOP_SCORER = (
    "'judge' is a benchmark metric, not a loop scorer: it asks an MLLM for 1-5 ratings, too coarse to "
    "select between a round's candidates or to see a plateau, paid per image, and the loop's own MLLM "
    "would grade its own prompts. Score the loop with an image scorer (paper, clip, dinov2, ssim, psnr, "
    "lpips, dreamsim, sandbox, blend:PATH) and judge the results with 'imagerepainter eval --metrics judge'."
)
"""Why ``--scorer judge`` is refused (the judge is a metric only: :mod:`imagerepainter.bench.metrics`)."""


def parse_spec(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """Split ``provider:model?k=v`` into ``(provider, model or None, options)``."""
    head, _, query = spec.strip().partition("?")
    provider, _, model = head.partition(":")
    return provider.lower(), (model or None), dict(parse_qsl(query, keep_blank_values=True))


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class BackendEntry:
    """One row of the registry: how specs ``<provider>[:model]?...`` of ``kind`` build a backend.

    Example:
        >>> entry = BackendEntry("scorer", "ssim", "imagerepainter.scorers:SSIMScorer", model="none")
        >>> entry.label, entry.load_factory().__name__
        ("'ssim' scorer", 'SSIMScorer')
    """

    kind: BackendKind
    provider: str
    factory: str | Factory
    """What builds the backend: ``"module:attribute"`` (imported when a spec uses it) or a callable."""
    options: str | Factory | type[BaseModel] | None = None
    """Where the accepted options are declared: None for the factory's own keyword arguments,
    else a callable (its keyword arguments) or a pydantic model (its fields and aliases), either
    as an object or as ``"module:attribute"``."""
    model: Literal["optional", "required", "none"] = "optional"
    """Whether the spec names a model: passed first as ``factory(model, **options)`` unless
    ``"none"`` (``factory(**options)``; a spec naming a model is then refused)."""
    default_model: str | None = None
    """The model when the spec names none."""
    requires: tuple[str, ...] = ()
    """Optional modules the backend needs; missing ones are an error naming the extra to install."""
    extra: str | None = None
    """The extra of ``imagerepainter`` that installs :attr:`requires` (else looked up in ``EXTRAS``)."""
    device_extra: str | None = None
    """Check a ``device`` option against this machine's torch; the extra named if torch is missing.
    Without it, a ``device`` naming CUDA or MPS is still checked when torch is installed."""
    shared: bool = False
    """One backend per process for the same spec (models that take seconds and gigabytes to load)."""
    hidden: frozenset[str] = frozenset()
    """Declared options that a spec cannot set (Python objects such as a client)."""
    higher_is_better: bool | None = None
    """Scorers: which way their values are better, declared so that listings and metric checks know it
    before anything is built (``None``: declared by the object the factory builds, e.g. a plug-in's)."""
    convert: Mapping[str, str] = field(default_factory=dict)
    """Types (``"int"``, ``"float"``, ``"bool"``) for options of an ``options`` model whose own type
    would keep a string (``timeout``); other fields are converted by the model when it is built."""

    @property
    def label(self) -> str:
        """How messages name the backend: ``"'ssim' scorer"``."""
        return f"'{self.provider}' {_KIND_LABELS[self.kind]}"

    @property
    def need(self) -> Need:
        """What the backend needs installed, for :func:`~imagerepainter._imports.require_all`."""
        extra = self.extra or next((EXTRAS[m] for m in self.requires if m in EXTRAS), "all")
        return Need(f"the '{self.provider}' {_KIND_NAMES[self.kind]}", self.requires, extra)

    def load_factory(self) -> Factory:
        """The factory, imported now if the row names it by path (after checking :attr:`requires`)."""
        require_all([self.need])
        return _load(self.factory, self)

    def accepted(self) -> dict[str, str]:
        """The options a spec may set, each with its type (``"int"``, ``"float"``, ``"bool"``, ``"str"``)."""
        source = self.load_factory() if self.options is None else _load(self.options, self)
        if isinstance(source, type) and issubclass(source, BaseModel):
            accepted: dict[str, str] = {}
            for name, info in source.model_fields.items():
                for key in (name, info.alias):
                    if key and key not in self.hidden and name not in self.hidden:
                        accepted[key] = self.convert.get(key) or self.convert.get(name) or "str"
            return accepted
        options = _keyword_options(source, skip_first=self.model != "none")
        return {name: kind for name, kind in options.items() if name not in self.hidden}


def _load(target: Any, entry: BackendEntry) -> Any:
    """Import ``"package.module:attribute.attribute"``; any other value is returned as is."""
    if not isinstance(target, str):
        return target
    module_name, _, attributes = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for attribute in filter(None, attributes.split(".")):
            value = getattr(value, attribute)
    except ImportError as exc:
        raise MissingDependencyError(
            f"The {entry.label} backend ({target}) cannot be imported: {exc}. Install the package that provides it."
        ) from None
    except AttributeError:
        raise ConfigurationError(f"The {entry.label} backend points at {target!r}, which does not exist.") from None
    return value


_CHAT_OPENAI_HIDDEN = frozenset(
    {"model", "model_name", "client", "async_client", "root_client", "root_async_client", "http_client"}
    | {"http_async_client", "http_socket_options", "callbacks", "custom_get_token_ids", "rate_limiter", "cache"}
)
"""ChatOpenAI fields that a spec cannot set: the model (it precedes ``?``) and Python objects."""

_METRICS = ("torch", "transformers")
_PERCEPTUAL = ("torch", "torchvision")
_BUILT_IN: tuple[BackendEntry, ...] = (
    BackendEntry(
        "mllm",
        "openai",
        "imagerepainter.backends.langchain_mllm:openai_chat_mllm",
        options="langchain_openai:ChatOpenAI",
        hidden=_CHAT_OPENAI_HIDDEN,
        convert={"timeout": "float", "request_timeout": "float"},  # typed float | tuple | Any: would stay a string
        requires=("langchain_openai",),
        extra="openai",
        default_model="gpt-4o-mini",
    ),
    BackendEntry("mllm", "sandbox", "imagerepainter.sandbox:SandboxMLLM", model="none"),
    BackendEntry(
        "t2i",
        "diffusers",
        "imagerepainter.backends.diffusers_t2i:DiffusersT2I.from_pretrained",
        model="required",
        requires=("torch", "diffusers", "transformers"),  # transformers: the pipelines' text encoders
        extra="diffusers",
        device_extra="diffusers",
        shared=True,  # Repainters built from the same spec share the pipeline (calls to it are serialised)
    ),
    BackendEntry(
        "t2i",
        "openai",
        "imagerepainter.backends.openai_images:OpenAIImagesT2I",
        requires=("openai",),
        extra="openai",
        default_model="gpt-image-2",
        hidden=frozenset({"client"}),
    ),
    BackendEntry("t2i", "sandbox", "imagerepainter.sandbox:SandboxT2I", model="none"),
    BackendEntry(
        "scorer",
        "paper",
        "imagerepainter.scorers:paper_scorer",
        model="none",
        requires=_METRICS,
        extra="metrics",
        device_extra="metrics",
        higher_is_better=True,
    ),
    *(
        BackendEntry(
            "scorer",
            name,
            f"imagerepainter.scorers:{factory}",
            requires=_METRICS,
            extra="metrics",
            device_extra="metrics",
            higher_is_better=True,  # cosines
        )
        for name, factory in (("clip", "CLIPScorer"), ("dinov2", "DINOv2Scorer"))
    ),
    BackendEntry("scorer", "ssim", "imagerepainter.scorers:SSIMScorer", model="none", higher_is_better=True),  # numpy
    BackendEntry("scorer", "psnr", "imagerepainter.scorers:PSNRScorer", model="none", higher_is_better=True),  # numpy
    *(
        BackendEntry(
            "scorer",
            name,
            f"imagerepainter.scorers.perceptual:{factory}",
            model="none",
            requires=(*_PERCEPTUAL, name),
            extra="perceptual",
            device_extra="perceptual",
            higher_is_better=False,  # distances
        )
        for name, factory in (("lpips", "LPIPSScorer"), ("dreamsim", "DreamSimScorer"))
    ),
    BackendEntry("scorer", "sandbox", "imagerepainter.sandbox:SandboxScorer", model="none", higher_is_better=True),
    BackendEntry("scorer", "blend", "imagerepainter.human.blend:load_blend", model="required", higher_is_better=True),
)

_REGISTRY: dict[str, dict[str, BackendEntry]] = {"mllm": {}, "t2i": {}, "scorer": {}}
"""Built-in rows and those added in code (:func:`register_backend`); they win over entry points."""
for _row in _BUILT_IN:
    _REGISTRY[_row.kind][_row.provider] = _row
_PLUGINS: dict[str, dict[str, BackendEntry]] = {"mllm": {}, "t2i": {}, "scorer": {}}
"""Rows read from the ``imagerepainter.backends`` entry points of the packages on ``sys.path``."""
_plugins_path: tuple[str, ...] | None = None


def register_backend(
    kind: BackendKind,
    provider: str,
    factory: str | Factory,
    *,
    options: str | Factory | type[BaseModel] | None = None,
    model: Literal["optional", "required", "none"] = "optional",
) -> None:
    """Register ``factory`` for specs ``<provider>[:model]`` of ``kind`` (overrides a built-in).

    ``factory`` (a callable or ``"module:attribute"``) is called as ``factory(model, **options)``
    (``factory(**options)`` with ``model="none"``). Its named keyword arguments are the options a
    spec may set, converted to their annotated types, unless ``options`` declares them (see
    :class:`BackendEntry`).

    Example:
        >>> def make(model, *, batch_size: int = 1):
        ...     from imagerepainter.sandbox import SandboxT2I
        ...     return SandboxT2I()
        >>> register_backend("t2i", "doc-example", make)
        >>> try:
        ...     resolve_t2i("doc-example?bach_size=2")
        ... except ConfigurationError as exc:
        ...     print(str(exc))
        Unknown option 'bach_size' in the 'doc-example' text-to-image spec. Did you mean 'batch_size'? \
Accepted options: batch_size.
    """
    if kind not in _REGISTRY:
        raise ConfigurationError(f"kind must be one of {sorted(_REGISTRY)}, not {kind!r}.")
    register_entry(BackendEntry(kind, provider.lower(), factory, options=options, model=model))


def register_entry(entry: BackendEntry) -> BackendEntry | None:
    """Add ``entry`` to the table (replacing a row for the same kind and provider); return the row it replaced.

    Example:
        >>> from imagerepainter.sandbox import SandboxScorer
        >>> previous = register_entry(BackendEntry("scorer", "sandbox", SandboxScorer, model="none"))
        >>> previous.factory, register_entry(previous).factory is SandboxScorer
        ('imagerepainter.sandbox:SandboxScorer', True)
    """
    if entry.kind not in _REGISTRY:
        raise ConfigurationError(f"kind must be one of {sorted(_REGISTRY)}, not {entry.kind!r}.")
    previous = _REGISTRY[entry.kind].get(entry.provider)
    _REGISTRY[entry.kind][entry.provider] = entry
    return previous


def available_backends() -> dict[str, list[str]]:
    """Return the registered providers of each kind (entry points included)."""
    _load_entry_points()
    return {kind: sorted({*_REGISTRY[kind], *_PLUGINS[kind]}) for kind in _REGISTRY}


def backend_entries() -> list[BackendEntry]:
    """Every row of the registry (entry points included), by kind then provider."""
    _load_entry_points()
    rows = []
    for kind, table in _REGISTRY.items():
        merged = {**_PLUGINS[kind], **table}
        rows += [merged[name] for name in sorted(merged)]
    return rows


def accepted_options(kind: BackendKind, provider: str) -> dict[str, str]:
    """The options specs of ``provider`` accept, with their types (imports the backend's module)."""
    return _entry(kind, provider.lower(), provider).accepted()


def _load_entry_points() -> None:
    """Read the entry points again whenever ``sys.path`` has changed (installed packages are found on it)."""
    global _plugins_path
    if _plugins_path == tuple(sys.path):
        return
    _plugins_path = tuple(sys.path)
    for table in _PLUGINS.values():
        table.clear()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        kind, _, provider = ep.name.partition(".")
        provider = provider.lower()
        if kind in _PLUGINS and provider and provider not in _PLUGINS[kind]:
            _PLUGINS[kind][provider] = BackendEntry(kind, provider, ep.value)  # type: ignore[arg-type]


def check_installed(
    *, mllm: Any = None, t2i: Any = None, scorer: Any = None, also: tuple[Need, ...] = (), specs: Iterable[Any] = ()
) -> None:
    """Check, before anything is imported or built, that the backends' packages are installed (the
    package's one missing-extras check: the loop, run folders and the benchmark call it).

    A spec string is looked up in the table (objects, unknown providers and ``None`` are left to
    :func:`resolve_mllm` and its siblings); every missing module of every backend (those named, then
    each ``(kind, spec)`` of ``specs``) and of ``also`` is named in **one** error with one ``pip install``.

    Raises:
        MissingDependencyError: something is missing; ``extras`` lists what to install.

    Example:
        >>> check_installed(mllm="sandbox", t2i="sandbox", scorer="ssim")  # nothing optional: no error
    """
    found = [needs("mllm", mllm), needs("t2i", t2i), needs("scorer", scorer), *(needs(k, s) for k, s in specs)]
    require_all(dict.fromkeys([*(need for need in found if need is not None), *also]))  # each need once


def check_spec(kind: BackendKind, spec: Any, *, device_here: bool = True) -> None:
    """Check a spec string as far as this machine can, without building, loading or calling anything.

    The provider must be known (else :class:`UnknownBackendError` with the closest names), the
    model given or not as the backend wants, no credential in it; and its options must be ones the
    backend takes, with values of the declared types. Options of a backend whose packages are not
    installed cannot be read here: :func:`check_installed` names what to install for it. An MLLM
    spec naming a LangChain chat-model provider (``anthropic:<model>``) is left to LangChain.
    Objects and ``None`` are not specs: nothing to check. With ``device_here=False`` (the backend
    will run on another machine, e.g. a Ray actor) a ``device`` is not checked against this one.

    Raises:
        UnknownBackendError: no backend answers to the spec's provider.
        ConfigurationError: a bad model part, an unknown option or a value of the wrong type.

    Example:
        >>> check_spec("t2i", "sandbox?fidelity=0.6")  # fine: returns None
        >>> try:
        ...     check_spec("t2i", "sandbx")
        ... except UnknownBackendError as exc:
        ...     print(str(exc).split(" Known")[0])
        Unknown text-to-image backend 'sandbx'. Did you mean 'sandbox'?
    """
    if not isinstance(spec, str):
        return
    try:
        checked = _check(kind, spec, options_too=False)
    except UnknownBackendError:
        provider, model, _ = parse_spec(spec)
        if kind == "mllm" and model and provider in _langchain_providers():
            return
        raise
    from .._imports import is_available

    if all(is_available(module) for module in checked.entry.requires):
        check_options(checked.entry, parse_spec(spec)[2], device_here=device_here)


def check_backends(*, mllm: Any, t2i: Any, scorer: Any = None, also: tuple[Need, ...] = ()) -> Any:
    """Check the three backends before anything is built, in the order that names the real problem first.

    1. every spec the caller gave (:func:`check_spec`): a typo is named as a typo, with the closest names;
    2. the scorer: ``scorer`` if given, else :func:`default_scorer` of the checked MLLM and T2I;
    3. the packages of what is really used (:func:`check_installed`), all missing extras in one error.

    Returns:
        The scorer to use (``scorer`` itself when given).

    Example:
        >>> check_backends(mllm="sandbox", t2i="sandbox?fidelity=0.6")  # no torch needed for the sandbox
        'sandbox'
    """
    check_spec("mllm", mllm)
    check_spec("t2i", t2i)
    chosen = default_scorer(mllm, t2i) if scorer is None else scorer
    check_spec("scorer", chosen)
    check_installed(mllm=mllm, t2i=t2i, scorer=chosen, also=also)
    return chosen


def needs(kind: BackendKind, spec: Any) -> Need | None:
    """What the backend a spec string names needs installed, without importing anything.

    ``None`` for objects, for providers the table does not know (their own error comes when
    they are resolved) and for backends that need nothing optional.

    Example:
        >>> needs("scorer", "paper?device=cpu")
        Need(what="the 'paper' scorer", modules=('torch', 'transformers'), extra='metrics')
        >>> needs("scorer", "ssim") is None
        True
    """
    if not isinstance(spec, str):
        return None
    provider = parse_spec(spec)[0]
    _load_entry_points()
    entry = _REGISTRY[kind].get(provider) or _PLUGINS[kind].get(provider)
    return entry.need if entry is not None and entry.requires else None


def _entry(kind: BackendKind, provider: str, spec: str) -> BackendEntry:
    if provider in _REGISTRY[kind]:
        return _REGISTRY[kind][provider]
    _load_entry_points()
    table = {**_PLUGINS[kind], **_REGISTRY[kind]}
    if kind == "scorer" and provider == "judge" and provider not in table:
        raise ConfigurationError(JUDGE_IS_NOT_A_LOOP_SCORER)
    if provider not in table:
        chat = _langchain_providers() if kind == "mllm" else ()
        close = close_names(provider, [*sorted(table), *chat], cutoff=0.5)
        hint = did_you_mean(close)
        also = (
            "; or a LangChain chat-model provider with a model (anthropic:<model>, ollama:<model>, ...)" if chat else ""
        )
        raise UnknownBackendError(
            f"Unknown {_KIND_NAMES[kind]} {redact(spec)!r}.{hint} Known: {', '.join(sorted(table))}{also}.",
            spec=spec,
            suggestions=close,
        )
    return table[provider]


def _langchain_providers() -> tuple[str, ...]:
    """The providers LangChain's ``init_chat_model`` knows (none when LangChain is not installed)."""
    try:
        from langchain.chat_models.base import _BUILTIN_PROVIDERS
    except ImportError:
        return ()
    return tuple(sorted(_BUILTIN_PROVIDERS))


# ----------------------------------------------------------------------------- options
# Spec options arrive as strings. Their names are checked against what the backend declares,
# their values converted to the declared types, here and nowhere else.


def _keyword_options(target: Callable[..., Any], *, skip_first: bool) -> dict[str, str]:
    """The keyword arguments ``target`` takes by name (``**kwargs`` excluded), with their types.

    ``skip_first`` drops the first positional parameter: the model, which precedes ``?``.
    """
    params = list(inspect.signature(target).parameters.values())
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if skip_first and params and params[0].kind != inspect.Parameter.KEYWORD_ONLY:
        params = params[1:]
    hints = _type_hints(target)
    return {
        p.name: _type_name(hints.get(p.name, p.annotation))
        for p in params
        if p.kind in named and p.name not in ("self", "model")
    }


def _type_hints(target: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of ``target`` (its ``__init__`` for a class), or {} when they cannot be resolved."""
    function = target.__init__ if isinstance(target, type) else target  # type: ignore[misc]
    try:
        return typing.get_type_hints(function)
    except Exception:  # a forward reference that does not resolve: fall back to the text of the annotation
        return {}


_SCALARS: dict[Any, str] = {int: "int", float: "float", bool: "bool"}
_NONE_WORDS = {"none", "null"}


def _type_name(annotation: Any) -> str:
    """``"int"``, ``"float"``, ``"bool"`` (with ``"|None"`` when optional) or ``"str"`` (kept as given).

    Example:
        >>> [_type_name(a) for a in (int, float | None, "Optional[bool]", "int | None", "str", "Any")]
        ['int', 'float|None', 'bool|None', 'int|None', 'str', 'str']
    """
    if isinstance(annotation, str):  # unresolved: read the text
        text = annotation.replace(" ", "")
        optional = text.startswith("Optional[")
        parts = [p for p in text.removeprefix("Optional[").removesuffix("]" if optional else "").split("|") if p]
        optional = optional or "None" in parts
        rest = [p for p in parts if p != "None"]
        base = rest[0] if len(rest) == 1 and rest[0] in ("int", "float", "bool") else "str"
        return f"{base}|None" if optional and base != "str" else base
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else ()
    if args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in _SCALARS:
            return _SCALARS[rest[0]] + ("|None" if len(rest) < len(args) else "")
        return "str"
    return _SCALARS.get(annotation, "str")


def _convert(value: str, name: str, kind: str) -> Any:
    """``value`` as type ``kind``, or a ConfigurationError that quotes the value only if it cannot be a secret."""
    base, optional = kind.removesuffix("|None"), kind.endswith("|None")
    if optional and str(value).strip().lower() in _NONE_WORDS:
        return None
    if base == "str":
        return value
    if base == "bool":
        from .._loading import optional_bool

        return optional_bool(value, f"Option {name!r}")  # quotes a bad value only if it cannot be a secret
    try:
        return int(value) if base == "int" else float(value)
    except (TypeError, ValueError):
        what = "a whole number" if base == "int" else "a number"
        raise ConfigurationError(f"Option {name!r} must be {what}, got {_quote(name, value)}.") from None


def _quote(name: str, value: Any) -> str:
    return "a value that is not shown (the option may hold a credential)" if may_hold_secret(name) else shown(value)


def check_options(entry: BackendEntry, options: Mapping[str, str], *, device_here: bool = True) -> dict[str, Any]:
    """Return a spec's ``options`` converted to the types ``entry`` declares, or raise ConfigurationError
    for the first option it does not take (naming the closest) or a value that cannot be converted.
    A ``device`` is checked against this machine's torch unless ``device_here`` is False.

    Example:
        >>> ssim = BackendEntry("scorer", "ssim", "imagerepainter.scorers:SSIMScorer", model="none")
        >>> check_options(ssim, {"kernel_size": "7"})
        {'kernel_size': 7}
    """
    accepted = entry.accepted()
    for name in options:
        if name not in accepted:
            listed = sorted(n for n in accepted if not is_secret_name(n))  # secrets are refused in any spec
            known = f"Accepted options: {', '.join(listed)}." if listed else "It takes no options."
            raise ConfigurationError(
                f"Unknown option {name!r} in the {entry.label} spec.{did_you_mean(close_names(name, listed))} {known}"
            )
    converted = {name: _convert(value, name, accepted[name]) for name, value in options.items()}
    device = converted.get("device")
    if device_here and isinstance(device, str) and (entry.device_extra or _asks_for_an_accelerator(device)):
        from .._loading import check_device

        converted["device"] = check_device(device, extra=entry.device_extra or "all", purpose=f"the {entry.label}")
    return converted


def _asks_for_an_accelerator(device: str) -> bool:
    """A ``device`` of a backend that declares no torch extra (a plugin's) is checked when it names
    CUDA or MPS and torch is installed; other values may mean something else to that backend."""
    from .._imports import is_available

    return device.split(":")[0].strip().lower() in ("cuda", "mps") and is_available("torch")


def _validation_problems(exc: ValidationError) -> str:
    """``option 'x': message (got 'value')`` for each error of a pydantic ValidationError."""
    return "; ".join(_problem(err) for err in exc.errors())


def _problem(err: Any) -> str:
    """One validation error as text; the offending value only for a named option that cannot hold a secret."""
    name = ".".join(str(p) for p in err["loc"])
    if not name:  # a check across options: its input is every option, credentials included
        return str(err["msg"])
    if may_hold_secret(name):
        return f"option {name!r}: {err['msg']}"
    return f"option {name!r}: {err['msg']} (got {shown(err.get('input'))})"


# ----------------------------------------------------------------------------- resolving


@dataclass(frozen=True)
class _Checked:
    """A spec whose name and options were checked: its row, model and converted options."""

    entry: BackendEntry
    model: str | None
    options: dict[str, Any]


def _check(kind: BackendKind, spec: str, *, options_too: bool = True) -> _Checked:
    """Check ``spec`` without building anything: provider, model, credentials and (with ``options_too``) options."""
    provider, model, options = parse_spec(spec)
    if secret := sorted(name for name in options if is_secret_name(name)):
        raise ConfigurationError(
            f"Do not put {', '.join(secret)} in a backend spec: specs are recorded in results and run "
            "folders. Set the key in the environment (e.g. OPENAI_API_KEY) instead."
        )
    if "model" in options:
        raise ConfigurationError(
            f"The model goes before '?' in a spec, not in its options: '{provider}:<model>' (got {redact(spec)!r})."
        )
    entry = _entry(kind, provider, spec)
    if entry.model == "none" and model:
        raise ConfigurationError(f"The {entry.label} takes no model: use {provider!r}, not {redact(spec)!r}.")
    model = model or entry.default_model
    if entry.model == "required" and not model:
        raise ConfigurationError(f"A {provider} spec needs a model: '{provider}:<hub id, name or local folder>'.")
    return _Checked(entry, model, check_options(entry, options) if options_too else {})


def _build(kind: BackendKind, spec: str) -> Any:
    checked_spec = _check(kind, spec, options_too=False)
    entry, model = checked_spec.entry, checked_spec.model
    factory = entry.load_factory()  # a missing package is named before the options are read
    checked = check_options(entry, parse_spec(spec)[2])
    provider = entry.provider

    def build() -> Any:
        try:
            return factory(**checked) if entry.model == "none" else factory(model, **checked)
        except ValidationError as exc:  # a backend that validates its options with pydantic
            raise ConfigurationError(
                f"Invalid option in the {entry.label} spec: {redact(_validation_problems(exc))}"
            ) from None

    if not entry.shared:
        return build()
    from .._loading import get_or_load, model_key

    key = model_key(provider, str(model), str(checked.get("device", "cpu")), str(checked.get("torch_dtype", "float32")))
    return get_or_load((*key, tuple(sorted(checked.items()))), build)


def resolve_mllm(spec: Any) -> MLLM:
    """Return an :class:`MLLM` for ``spec``: a spec string, an MLLM, or a LangChain chat model.

    A spec whose provider is not registered here but is one LangChain's ``init_chat_model`` knows
    (``anthropic:claude-sonnet-4-5``, ``google_genai:gemini-2.5-flash``, ``ollama:qwen2.5vl``, ...)
    builds that chat model, its options passed as keyword arguments; the provider's package is
    yours to install, and a missing one is named.
    """
    if isinstance(spec, str):
        try:
            return _build("mllm", spec)  # type: ignore[no-any-return]
        except UnknownBackendError:
            chat = _init_chat_model(spec)
            if chat is None:
                raise
            from .langchain_mllm import ChatModelMLLM

            return ChatModelMLLM(chat)
    if isinstance(spec, MLLM):
        return spec
    if hasattr(spec, "invoke") and hasattr(spec, "bind"):  # a LangChain chat model
        from .langchain_mllm import ChatModelMLLM

        return ChatModelMLLM(spec)
    raise ConfigurationError(
        f"mllm must be a spec string such as 'openai:gpt-4o-mini', a LangChain chat model or an MLLM, "
        f"not {type(spec).__name__}."
    )


def _init_chat_model(spec: str) -> Any:
    """The chat model LangChain's ``init_chat_model`` builds for ``provider:model?options``, or ``None``
    when LangChain is not installed or does not know the provider."""
    provider, model, options = parse_spec(spec)
    try:
        from langchain.chat_models import init_chat_model
        from langchain.chat_models.base import _BUILTIN_PROVIDERS
    except ImportError:
        return None
    if provider not in _BUILTIN_PROVIDERS or not model:
        return None
    try:
        return init_chat_model(model, model_provider=provider, **options)  # type: ignore[call-overload]
    except ImportError as exc:
        package = _BUILTIN_PROVIDERS[provider][0].replace("_", "-")
        raise MissingDependencyError(
            f"The {provider!r} chat models need the {package!r} package: pip install {package}"
        ) from exc
    except (ValueError, TypeError, ValidationError) as exc:
        raise ConfigurationError(f"Invalid {provider} chat model spec {redact(spec)!r}: {redact(str(exc))}") from None


def resolve_t2i(spec: Any) -> TextToImage:
    """Return a :class:`TextToImage` for ``spec``: a string, a backend, a diffusers pipeline or a callable."""
    if isinstance(spec, str):
        return _build("t2i", spec)  # type: ignore[no-any-return]
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


def default_scorer(mllm: Any, t2i: Any) -> str:
    """The scorer spec used when none is given: ``"sandbox"`` for the sandbox world (the sandbox
    MLLM with any sandbox renderer, options included), whose scorer needs no model, else ``"paper"``.

    Example:
        >>> default_scorer("sandbox", "sandbox?fidelity=0.6"), default_scorer("openai:gpt-4o-mini", "sandbox")
        ('sandbox', 'paper')
    """
    if not (isinstance(mllm, str) and isinstance(t2i, str)):
        return "paper"
    return "sandbox" if parse_spec(mllm)[0] == parse_spec(t2i)[0] == "sandbox" else "paper"


def resolve_scorer(spec: Any) -> Scorer:
    """Return a :class:`Scorer` for ``spec``: a spec string or a scorer object."""
    if isinstance(spec, str):
        return _build("scorer", spec)  # type: ignore[no-any-return]
    if isinstance(spec, Scorer):
        return spec
    raise ConfigurationError(
        f"scorer must be a spec string such as 'paper' or 'clip', or a Scorer, not {type(spec).__name__}."
    )
