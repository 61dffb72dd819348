"""Embed the loop as a node of a larger LangGraph application, and make that application survive a kill.

    python examples/as_subgraph.py                # in memory
    python examples/as_subgraph.py --folder DIR   # persistent: stop it (Ctrl-C, kill -9), run it again

With ``--folder``, DIR keeps the parent's checkpoints (``checkpoint.sqlite``, a ``SqliteSaver``),
the loop's history of rounds and critiques (``history.sqlite``, a ``SqliteStore``) and the images
(``images/``, a ``DirectoryImageStore``). Run it again on the same DIR: an unfinished run
continues from its last checkpoint (finished rounds are not rendered again), a finished one is
read back.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from imagerepainter import DirectoryImageStore, Repainter, RepaintResult
from imagerepainter.sandbox import random_scene, render_scene

SETTINGS: dict[str, Any] = {"max_rounds": 4, "patience": None}
THREAD = {"configurable": {"thread_id": "app"}}  # the parent's thread: the same one resumes it
# each step is saved before the next one starts, so a kill loses only the step in flight
RESUMABLE: dict[str, Any] = {"config": THREAD, "durability": "sync"}


class App(TypedDict, total=False):
    reference: dict[str, Any]  # an ImageRef into rp.store
    run_id: str  # declare it to read the whole result back with rp.result_from(state)
    best: dict[str, Any]
    stop_reason: str
    caption: str


def caption(state: App) -> App:
    return {"caption": f"Regenerated with: {state['best']['prompt']}"}


def build_app(rp: Repainter, **compile_options: Any) -> Any:
    """The parent graph: ``repaint`` (the loop, input RepaintInput, output RepaintOutput), then ``caption``."""
    app = StateGraph(App)
    app.add_node("repaint", rp.as_graph())
    app.add_node("caption", caption)
    app.add_edge(START, "repaint")
    app.add_edge("repaint", "caption")
    app.add_edge("caption", END)
    return app.compile(**compile_options)


def stream_rounds(graph: Any, graph_input: dict[str, Any] | None, **options: Any) -> dict[str, Any]:
    """Run the parent (``graph_input=None`` resumes its thread), print each round, return its final state."""
    state: dict[str, Any] = {}
    for namespace, mode, chunk in graph.stream(
        graph_input,
        stream_mode=["custom", "values"],
        subgraphs=True,  # the loop's own events reach the parent through its custom stream
        **options,
    ):
        event = Repainter.event_from(chunk) if mode == "custom" else None
        if event is not None and event.kind == "round":
            print(f"round {event.round}: best so far {event.data['best_score']:.3f}", flush=True)
        if mode == "values" and not namespace:  # the parent's own state
            state = chunk
    return state


def reference() -> Any:
    return render_scene(random_scene(6), seed=6)


def in_memory() -> RepaintResult:
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", **SETTINGS)
    state = stream_rounds(build_app(rp), {"reference": rp.store.put(reference())})
    print(state["stop_reason"], "|", state["caption"])
    return rp.result_from(state)  # the rounds, read back from the loop's history by its run_id


@contextlib.contextmanager
def persistent_app(folder: Path, *, t2i: Any = "sandbox") -> Iterator[tuple[Repainter, Any]]:
    """A Repainter and its parent graph whose run lives in ``folder``: any process opening it sees the same run."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore

    folder.mkdir(parents=True, exist_ok=True)
    checkpoints = sqlite3.connect(folder / "checkpoint.sqlite", check_same_thread=False)
    records = sqlite3.connect(folder / "history.sqlite", check_same_thread=False, isolation_level=None)
    try:
        history = SqliteStore(records)
        history.setup()
        rp = Repainter(
            mllm="sandbox",
            t2i=t2i,
            scorer="sandbox",
            store=DirectoryImageStore(folder / "images"),  # images outlive the process
            history=history,  # rp.result_from(state) reads the rounds from here
            **SETTINGS,
        )
        # The loop, a subgraph, checkpoints with the parent's checkpointer and records its history
        # in the parent's store: give the parent both.
        yield rp, build_app(rp, checkpointer=SqliteSaver(checkpoints), store=history)
    finally:
        records.close()
        checkpoints.close()


def in_folder(folder: Path, *, t2i: Any = "sandbox") -> RepaintResult:
    """Start the run in ``folder``, continue it where a killed process left it, or read the finished one."""
    with persistent_app(folder, t2i=t2i) as (rp, graph):
        saved = graph.get_state(THREAD)
        if saved.next:  # stopped mid-run: continue from the last checkpoint
            print("resuming", flush=True)
            state = stream_rounds(graph, None, **RESUMABLE)
        elif saved.values:  # finished earlier
            print("finished earlier", flush=True)
            state = dict(saved.values)
        else:
            state = stream_rounds(graph, {"reference": rp.store.put(reference())}, **RESUMABLE)
        print(state["stop_reason"], "|", state["caption"])
        return rp.result_from(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--folder", type=Path, help="keep the run here, so it survives a kill")
    args = parser.parse_args()
    result = in_folder(args.folder) if args.folder else in_memory()
    print(len(result.rounds), "rounds; best prompt:", result.best.prompt if result.best else None)


if __name__ == "__main__":
    main()
