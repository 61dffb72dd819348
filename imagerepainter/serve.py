"""The loop as a graph a LangGraph server serves: ``langgraph dev`` loads :func:`make_graph` (``langgraph.json``).

A remote client (``langgraph_sdk``, LangGraph Studio) sends JSON and reads JSON back, so the
served graph wraps the loop between two nodes:

```mermaid
graph LR
  __start__ --> load --> repaint --> export --> __end__
```

* ``load`` reads the input's ``image`` (:class:`ServeInput`): a base64 ``data:`` URL, a path on
  the server inside ``IMAGEREPAINTER_IMAGE_ROOTS``, or an ``http(s)`` URL when
  ``IMAGEREPAINTER_ALLOW_URLS`` is on. It checks the image, the prompt and the per-run
  ``overrides`` before any model is called: bad input ends the run with a typed
  :class:`~imagerepainter.errors.RepainterError` (``InvalidImageError``, ``ConfigurationError``)
  whose message the client reads.
* ``repaint`` is the loop itself (:meth:`Repainter.as_graph <imagerepainter.Repainter.as_graph>`)
  as a subgraph. It uses the server's checkpointer and store: the run's checkpoints and its
  history (rounds, critiques, calls) live where the server keeps its threads. Its progress
  events reach the client through the ``custom`` stream mode (``stream_subgraphs=True``).
* ``export`` turns the finished run into :class:`ServeOutput`: the best image as a PNG data URL,
  its prompt and score, every round's scores and the stop reason.

The backends are chosen by environment variables, read when the graph is first built (so
secrets stay in the environment; spec strings carry none):

==============================  ==================================================================
variable                        meaning (default)
==============================  ==================================================================
``IMAGEREPAINTER_MLLM``         MLLM spec, e.g. ``openai:gpt-4o-mini`` (``sandbox``)
``IMAGEREPAINTER_T2I``          text-to-image spec, e.g. ``diffusers:stabilityai/sdxl-turbo`` (``sandbox``)
``IMAGEREPAINTER_SCORER``       scorer spec (``sandbox`` when MLLM and T2I are sandbox specs, else ``paper``)
``IMAGEREPAINTER_PRESET``       ``default`` or ``paper`` (``default``)
``IMAGEREPAINTER_IMAGE_ROOTS``  folders (``os.pathsep``-separated) whose files a client may name (none)
``IMAGEREPAINTER_ALLOW_URLS``   ``1`` lets the server download ``http(s)`` references (off)
``IMAGEREPAINTER_IMAGE_DIR``    keep images in this folder (``DirectoryImageStore``) instead of memory
==============================  ==================================================================

API keys come from the variables the backends read themselves (``OPENAI_API_KEY``...), never
from a spec; error messages never repeat them.

Example:
    In-process, without a server (the sandbox world is the default):

    >>> from imagerepainter.images import to_data_url
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> graph = served_graph()
    >>> out = graph.invoke({"image": to_data_url(render_scene(random_scene(4))), "overrides": {"max_rounds": 2}})
    >>> out["best_image"].startswith("data:image/png;base64,"), len(out["rounds"]) <= 2, out["finished"]
    (True, True, True)
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired

from typing_extensions import TypedDict

from ._secrets import shown
from .backends.registry import default_scorer
from .errors import ConfigurationError
from .image_sources import ImageSourcePolicy, read_source
from .images import ImageRef, to_data_url
from .loop.state import CandidateRecord, Usage

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from .repainter import Repainter

__all__ = [
    "RoundSummary",
    "ServeInput",
    "ServeOutput",
    "ServeSettings",
    "build_served_graph",
    "make_graph",
    "served_graph",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class ServeInput(TypedDict):
    """What a client sends to start a run."""

    image: str
    """The reference: a data URL (``data:image/png;base64,...``), a path on the server inside
    ``IMAGEREPAINTER_IMAGE_ROOTS``, or an ``http(s)`` URL when ``IMAGEREPAINTER_ALLOW_URLS`` is on."""
    prompt: NotRequired[str | None]
    """Start from this prompt instead of describing the reference."""
    overrides: NotRequired[dict[str, Any]]
    """Settings for this run only, e.g. ``{"max_rounds": 3}`` (:class:`~imagerepainter.config.RepainterConfig`)."""


class RoundSummary(TypedDict):
    """One round as a client sees it."""

    index: int
    prompt: str
    scores: list[float | None]
    """Each candidate's score (``None`` for a blocked image)."""
    best_score_so_far: float | None


class ServeOutput(TypedDict, total=False):
    """What a finished run returns to a client: JSON only, the best image as a PNG data URL."""

    best_image: str | None
    """The best candidate as ``data:image/png;base64,...`` (``None`` when no image could be scored)."""
    best_prompt: str | None
    best_score: float | None
    higher_is_better: bool
    initial_prompt: str
    rounds: list[RoundSummary]
    stop_reason: str | None
    finished: bool
    run_id: str
    usage: Usage


class _ServeState(ServeInput, ServeOutput, total=False):
    """Between the nodes: the input, the loop's input and output keys, and the client's output."""

    reference: ImageRef
    config: dict[str, Any]
    notes: list[str]
    round: int
    best: CandidateRecord | None
    timings: dict[str, float]


@dataclass(frozen=True)
class ServeSettings:
    """The served graph's settings, read from the environment (see the module docs)."""

    mllm: str = "sandbox"
    t2i: str = "sandbox"
    scorer: str = "sandbox"
    preset: str = "default"
    image_roots: tuple[str, ...] = ()
    allow_urls: bool = False
    image_dir: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServeSettings:
        """Read the ``IMAGEREPAINTER_*`` variables.

        Example:
            >>> ServeSettings.from_env({"IMAGEREPAINTER_T2I": "sandbox?fidelity=0.6"}).scorer
            'sandbox'
            >>> ServeSettings.from_env({"IMAGEREPAINTER_MLLM": "openai:gpt-4o"}).scorer
            'paper'
            >>> ServeSettings.from_env({}).scorer
            'sandbox'
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(f"IMAGEREPAINTER_{name}", "").strip()

        mllm, t2i = get("MLLM") or "sandbox", get("T2I") or "sandbox"
        allow = get("ALLOW_URLS").lower()
        if allow not in _TRUE | _FALSE:
            raise ConfigurationError(f"IMAGEREPAINTER_ALLOW_URLS must be 1 or 0, got {shown(allow)}.")
        roots = tuple(r for r in get("IMAGE_ROOTS").split(os.pathsep) if r)
        return cls(
            mllm=mllm,
            t2i=t2i,
            scorer=get("SCORER") or default_scorer(mllm, t2i),
            preset=get("PRESET") or "default",
            image_roots=roots,
            allow_urls=allow in _TRUE,
            image_dir=get("IMAGE_DIR") or None,
        )

    def policy(self) -> ImageSourcePolicy:
        """Which references a client may send."""
        return ImageSourcePolicy.of(list(self.image_roots), allow_urls=self.allow_urls, owner="server")


_built: dict[ServeSettings, Any] = {}
_built_lock = threading.Lock()


async def make_graph(config: RunnableConfig | None = None) -> Any:
    """The served graph for the settings in the environment (see :func:`served_graph`).

    ``langgraph.json`` names it (``"imagerepainter.serve:make_graph"``); the server calls it for each
    request and attaches its own checkpointer and store, so the graph is compiled without either.
    It is a coroutine so that building the graph the first time (reading backends, creating the
    image folder) runs in a worker thread, off the server's event loop. ``config`` is the
    request's config (unused: per-run settings travel in the input's ``overrides``).
    """
    return await asyncio.to_thread(served_graph)


def served_graph(settings: ServeSettings | None = None) -> Any:
    """The served graph for ``settings`` (default: read from the environment), built once per process
    and settings; invoke it in your own process, or let :func:`make_graph` hand it to a server."""
    settings = ServeSettings.from_env() if settings is None else settings
    with _built_lock:
        graph = _built.get(settings)
        if graph is None:
            graph = _built[settings] = build_served_graph(_repainter(settings), settings.policy())
    return graph


def _repainter(settings: ServeSettings) -> Repainter:
    from .images import DirectoryImageStore
    from .repainter import Repainter

    store = DirectoryImageStore(Path(settings.image_dir)) if settings.image_dir else None
    return Repainter(mllm=settings.mllm, t2i=settings.t2i, scorer=settings.scorer, preset=settings.preset, store=store)


def build_served_graph(repainter: Repainter, policy: ImageSourcePolicy, *, name: str = "imagerepainter") -> Any:
    """The ``load -> repaint -> export`` graph around ``repainter``'s loop, compiled without a checkpointer.

    Compile-time persistence comes from whoever runs it: a LangGraph server attaches its own; in
    a process of your own, ``graph.copy(update={"checkpointer": ...})`` or run it as a subgraph.
    """
    from langgraph.config import get_store
    from langgraph.graph import END, START, StateGraph

    from .config import remember_config

    def load(state: _ServeState) -> dict[str, Any]:
        """Check everything the client sent and put the reference in the image store; nothing is called yet."""
        if "image" not in state:
            raise ConfigurationError(f"The input needs 'image': {policy.accepted()}.")
        overrides = state.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ConfigurationError(f"'overrides' must be an object of settings, not {type(overrides).__name__}.")
        cfg = repainter.config_for(**overrides)
        admitted = repainter.admit_reference(read_source(state["image"], policy), cfg, prompt=state.get("prompt"))
        return {"reference": admitted.ref, "config": remember_config(admitted.config), "notes": admitted.notes}

    def export(state: _ServeState) -> dict[str, Any]:
        """The finished run for the client: JSON, with the best image as a PNG data URL."""
        # the history is in the store the graph runs with (a server's), else in the Repainter's own
        result = repainter.result_from(dict(state), history=get_store())
        best = result.best
        return {
            "best_image": to_data_url(best.image) if best is not None else None,
            "best_prompt": best.prompt if best is not None else None,
            "best_score": best.score if best is not None else None,
            "higher_is_better": result.higher_is_better,
            "initial_prompt": result.initial_prompt,
            "rounds": [
                RoundSummary(
                    index=r.index,
                    prompt=r.prompt,
                    scores=[c.score for c in r.candidates],
                    best_score_so_far=r.best_score_so_far,
                )
                for r in result.rounds
            ],
            "stop_reason": result.stop_reason,
            "finished": result.finished,
            "run_id": result.run_id,
        }

    graph = StateGraph(_ServeState, input_schema=ServeInput, output_schema=ServeOutput)
    graph.add_node("load", load)
    # The loop without the Repainter's own checkpointer and store: it runs on the parent's (a server's).
    graph.add_node("repaint", repainter.as_graph(own_checkpointer=False))
    graph.add_node("export", export)
    graph.add_edge(START, "load")
    graph.add_edge("load", "repaint")
    graph.add_edge("repaint", "export")
    graph.add_edge("export", END)
    return graph.compile(name=name)
