"""The environment manifest of an evaluation: what computed its numbers, recorded with them.

A score is only comparable with another computed the same way. Each call of
:func:`~imagerepainter.bench.evaluate` that computes cases records a manifest in the results
database (the ``environments`` entry of its ``meta`` table, one per call: a history), and the
leaderboard shows the latest one and every change between calls. A manifest holds:

* ``python`` and ``platform``;
* ``packages``: the installed versions of this package and of what computes the numbers
  (:data:`ENVIRONMENT_PACKAGES`; ``None`` for one not installed), read from package metadata
  without importing anything;
* ``torch_runtime``: CUDA and cuDNN versions and the GPU names, only when torch was already
  loaded by a backend (a sandbox run never imports torch to fill it in), and the GPUs only when
  CUDA was initialised;
* ``backends``: per text-to-image model (``t2i:<name>``), loop scorer (``scorer``) and metric
  (``metric:<name>``), the class, model, device and dtype it really used;
* ``mllm``: per MLLM, each model name and ``system_fingerprint`` the API returned
  (:meth:`~imagerepainter.backends.langchain_mllm.ChatModelMLLM.served_by`).

Every text passes through :func:`~imagerepainter._secrets.redact` (the package's one rule for
credentials): no key or token reaches the database or a report.

:func:`environment_changes` compares two manifests field by field (dotted names such as
``packages.torch``); a field only one of them has (a model added later, torch not loaded yet)
is not a change.

Example:
    >>> old = {"packages": {"torch": "2.4.0", "numpy": "2.1.0"}, "python": "3.12.3 (CPython)"}
    >>> new = {"packages": {"torch": "2.5.1", "numpy": "2.1.0"}, "python": "3.12.3 (CPython)"}
    >>> for change in environment_changes(old, new):
    ...     print(change)
    packages.torch: 2.4.0 → 2.5.1
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from .._loading import library_versions
from .._secrets import redact

if TYPE_CHECKING:
    from .store import ResultsStore

__all__ = [
    "ENVIRONMENT_PACKAGES",
    "EnvironmentChange",
    "EnvironmentLog",
    "EnvironmentSection",
    "collect_environment",
    "describe_changes",
    "environment_changes",
    "environment_section",
    "flatten_manifest",
    "manifest_groups",
    "merge_environment",
    "recorded_environments",
    "torch_runtime",
    "worker_environment",
]

ENVIRONMENT_PACKAGES = (
    "imagerepainter",
    "torch",
    "torchvision",
    "diffusers",
    "transformers",
    "accelerate",
    "safetensors",
    "langchain-core",
    "langchain-openai",
    "langgraph",
    "openai",
    "pillow",
    "numpy",
    "scikit-image",
    "lpips",
    "dreamsim",
)
"""The distributions whose versions a manifest records."""

META_KEY = "environments"
"""The results database's ``meta`` entry holding the history of manifests."""

_HISTORY = 100
"""Most manifests kept (the oldest are dropped first)."""

_PLACEMENT = ("class", "name", "model", "device", "dtype")

log = logging.getLogger("imagerepainter.bench")


class EnvironmentChange(BaseModel):
    """One field of the manifest that differs between two evaluation calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    """Its dotted name, e.g. ``packages.torch`` or ``backends.t2i:sdxl.dtype``."""
    old: str | None
    new: str | None
    run: int | None = None
    """In a leaderboard: the recorded call (1 = the first) whose environment changed it."""

    def __str__(self) -> str:
        return f"{self.field}: {self.old} → {self.new}"


class EnvironmentSection(BaseModel):
    """The environment in a leaderboard: the latest manifest, how many calls recorded one, and every change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    manifest: dict[str, Any]
    """The manifest of the latest evaluation call that computed cases."""
    recorded_at: str | None = None
    """When it was recorded (UTC, ISO 8601)."""
    runs: int = 1
    """How many evaluation calls recorded a manifest."""
    changes: list[EnvironmentChange] = Field(default_factory=list)
    """Each field that changed from one recorded call to the next, oldest first."""


# ----------------------------------------------------------------------------- collecting


def torch_runtime() -> dict[str, Any] | None:
    """CUDA, cuDNN and GPU names from torch if a backend already loaded it, else ``None`` (never imports it).

    GPU names are read only once CUDA is initialised (a backend used it): asking would start it.
    """
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "version"):
        return None
    info: dict[str, Any] = {"cuda": getattr(torch.version, "cuda", None)}
    try:
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        info["cudnn"] = None if cudnn is None else str(cudnn)
        if torch.cuda.is_initialized():
            info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a half-installed torch must not break an evaluation that records it
        pass
    return info


def _placement(record: Mapping[str, Any]) -> dict[str, Any]:
    """What of a backend's ``describe()`` record says where and how it computed: class, model, device,
    dtype, and the same of each component of a weighted scorer (``paper``: ``clip`` and ``dinov2``)."""
    out = {key: record[key] for key in _PLACEMENT if record.get(key) is not None}
    for component in record.get("components") or []:
        if isinstance(component, Mapping) and component.get("key"):
            part = {key: component[key] for key in _PLACEMENT if component.get(key) is not None}
            if part:
                out[str(component["key"])] = part
    return out


def _described(backend: Any) -> dict[str, Any]:
    from ..backends.base import describe_backend

    return _placement(describe_backend(backend))


def worker_environment(
    *, t2i: Mapping[str, Any] = {}, scorer: Any = None, metrics: Sequence[Any] = (), mllm: Any = None
) -> dict[str, Any]:
    """The part of a manifest only the process that ran the cases knows: its backends' placement,
    torch's runtime and who answered its MLLM calls (each key present only when known)."""
    backends = {f"t2i:{name}": _described(backend) for name, backend in t2i.items()}
    if scorer is not None:
        backends["scorer"] = _described(scorer)
    for metric in metrics:
        if not getattr(metric, "part", ""):  # a part shares its whole's models
            backends[f"metric:{metric.name}"] = _metric_placement(metric)
    out: dict[str, Any] = {"backends": backends} if backends else {}
    if (runtime := torch_runtime()) is not None:
        out["torch_runtime"] = runtime
    if served := _served(mllm):
        out["mllm"] = served
    return _scrub(out)


def _metric_placement(metric: Any) -> dict[str, Any]:
    """A metric's scorer placement, or the judge's MLLM (describing must never break an evaluation)."""
    try:
        record = metric.describe() if callable(getattr(metric, "describe", None)) else {}
    except Exception:
        return {"class": type(metric).__name__}
    if isinstance(record.get("scorer"), Mapping):
        return _placement(record["scorer"]) or {"name": str(getattr(metric, "spec", metric.name))}
    judge = record.get("judge")
    return {"class": "judge", **({"name": judge["mllm"]} if isinstance(judge, Mapping) and judge.get("mllm") else {})}


def _served(mllm: Any) -> dict[str, list[dict[str, Any]]]:
    """Who answered each MLLM's calls (``mllm``: one resolved MLLM, or a list of them)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for each in mllm if isinstance(mllm, list | tuple) else [mllm]:
        served_by = getattr(each, "served_by", None)
        if answered := (served_by() if callable(served_by) else []):
            out[str(each.name)] = list(answered)
    return out


def collect_environment(*parts: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest of this process now: Python, platform, package versions, torch's runtime when
    loaded, merged with ``parts`` (what :func:`worker_environment` returned; later parts win per backend).

    Example:
        >>> manifest = collect_environment()
        >>> sorted(manifest)[:3], "torch" in manifest["packages"]
        (['packages', 'platform', 'python'], True)
    """
    manifest: dict[str, Any] = {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(terse=True),
        "packages": library_versions(*ENVIRONMENT_PACKAGES),
    }
    if (runtime := torch_runtime()) is not None:
        manifest["torch_runtime"] = runtime
    for part in parts:
        merge_environment(manifest, part)
    if isinstance(manifest.get("backends"), Mapping):
        manifest["backends"] = dict(sorted(manifest["backends"].items()))
    return _scrub(manifest)


def merge_environment(into: dict[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``part`` into the manifest ``into`` (and return it): sections merge by entry, a later
    entry wins, and the lists of who served an MLLM are united (several workers, the describer).

    Example:
        >>> merge_environment({"mllm": {"m": [{"model": "a"}]}}, {"mllm": {"m": [{"model": "b"}, {"model": "a"}]}})
        {'mllm': {'m': [{'model': 'a'}, {'model': 'b'}]}}
    """
    for key, value in part.items():
        mine = into.get(key)
        if not (isinstance(value, Mapping) and isinstance(mine, Mapping)):
            into[key] = value
            continue
        merged = dict(mine)
        for name, entry in value.items():
            if isinstance(entry, list) and isinstance(merged.get(name), list):
                merged[name] = [*merged[name], *(e for e in entry if e not in merged[name])]
            else:
                merged[name] = entry
        into[key] = merged
    return into


def _scrub(value: Any) -> Any:
    """``value`` with every string redacted (keys included): a manifest never holds a credential."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact(str(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


# ----------------------------------------------------------------------------- comparing


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(_text(v)) for v in value)
    return str(value)


def flatten_manifest(manifest: Mapping[str, Any], prefix: str = "") -> dict[str, str | None]:
    """The manifest as ``{dotted field: text}`` (lists joined), as it is compared and shown.

    Example:
        >>> flatten_manifest({"packages": {"torch": None}, "mllm": {"m": [{"model": "x", "system_fingerprint": "fp"}]}})
        {'packages.torch': None, 'mllm.m': 'model=x, system_fingerprint=fp'}
    """
    flat: dict[str, str | None] = {}
    for key, value in manifest.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_manifest(value, name + "."))
        else:
            flat[name] = _text(value)
    return flat


def manifest_groups(manifest: Mapping[str, Any]) -> dict[str, dict[str, str | None]]:
    """The manifest as groups of facts for a page: ``system`` (Python, platform), then one group per
    section (``packages``, ``backends``, ...), each entry's value as one text.

    Example:
        >>> manifest_groups({"python": "3.12", "backends": {"t2i:a": {"device": "cuda", "dtype": "float16"}}})
        {'system': {'python': '3.12'}, 'backends': {'t2i:a': 'device=cuda, dtype=float16'}}
    """
    groups: dict[str, dict[str, str | None]] = {"system": {}}
    for key, value in manifest.items():
        if isinstance(value, Mapping):
            groups[key] = {str(name): _text(entry) for name, entry in value.items()}
        else:
            groups["system"][key] = _text(value)
    return {name: facts for name, facts in groups.items() if facts}


def environment_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[EnvironmentChange]:
    """Each field both manifests have whose value differs, in ``new``'s order."""
    before, after = flatten_manifest(old), flatten_manifest(new)
    return [
        EnvironmentChange(field=name, old=before[name], new=value)
        for name, value in after.items()
        if name in before and before[name] != value
    ]


# ----------------------------------------------------------------------------- recording


def recorded_environments(store: ResultsStore) -> list[dict[str, Any]]:
    """The recorded history: one ``{"recorded_at", "cases", "manifest"}`` per evaluation call, oldest first."""
    history = store.get_meta(META_KEY, default=[])
    return [entry for entry in history if isinstance(entry, dict) and isinstance(entry.get("manifest"), dict)]


def environment_section(store: ResultsStore) -> EnvironmentSection | None:
    """What the leaderboard shows of the recorded history, or ``None`` when nothing was recorded."""
    history = recorded_environments(store)
    if not history:
        return None
    changes = [
        change.model_copy(update={"run": index + 1})
        for index in range(1, len(history))
        for change in environment_changes(history[index - 1]["manifest"], history[index]["manifest"])
    ]
    latest = history[-1]
    return EnvironmentSection(
        manifest=latest["manifest"], recorded_at=latest.get("recorded_at"), runs=len(history), changes=changes
    )


class EnvironmentLog:
    """The environment of one evaluation call: compared with the last recorded one when it starts,
    then gathered from the cases' workers, and recorded once the call computed something."""

    def __init__(self, store: ResultsStore) -> None:
        self.store = store
        history = recorded_environments(store)
        self.previous: dict[str, Any] | None = history[-1]["manifest"] if history else None
        self._gathered: dict[str, Any] = {}

    def start(self) -> list[EnvironmentChange]:
        """What already differs from the last recorded call (versions, Python), logged as a warning."""
        if self.previous is None:
            return []
        changes = environment_changes(self.previous, collect_environment())
        if changes:
            log.warning(
                "The environment changed since this evaluation last computed cases: %s",
                "; ".join(map(str, changes)),
            )
        return changes

    def add(self, part: Mapping[str, Any] | None) -> None:
        """Keep what a worker reported with a case (see :func:`worker_environment`)."""
        if part:
            merge_environment(self._gathered, part)

    def finish(self, *, cases: int, mllm: Any = None) -> list[EnvironmentChange]:
        """Record the manifest of this call (when it computed ``cases``) and return how it differs from the last."""
        manifest = collect_environment(self._gathered, worker_environment(mllm=mllm))
        if cases:
            entry = {"recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cases": cases}
            history = [*recorded_environments(self.store), {**entry, "manifest": manifest}]
            self.store.set_meta(META_KEY, history[-_HISTORY:])
        return [] if self.previous is None else environment_changes(self.previous, manifest)


def describe_changes(changes: Iterable[EnvironmentChange]) -> str:
    """Changes as one line each, for a terminal."""
    return "\n".join(f"  {change}" for change in changes)
