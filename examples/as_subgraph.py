"""Embed the loop as a node of a larger LangGraph application.

python examples/as_subgraph.py
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from imagerepainter import Repainter
from imagerepainter.sandbox import random_scene, render_scene

rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=3)


class App(TypedDict, total=False):
    reference: dict[str, Any]  # an ImageRef into rp.store
    run_id: str  # declare it to read the whole result back with rp.result_from(state)
    best: dict[str, Any]
    stop_reason: str
    caption: str


def caption(state: App) -> App:
    return {"caption": f"Regenerated with: {state['best']['prompt']}"}


app = StateGraph(App)
app.add_node("repaint", rp.as_graph())  # input RepaintInput, output RepaintOutput
app.add_node("caption", caption)
app.add_edge(START, "repaint")
app.add_edge("repaint", "caption")
app.add_edge("caption", END)

graph = app.compile()
state: dict[str, Any] = {}
for namespace, mode, chunk in graph.stream(
    {"reference": rp.store.put(render_scene(random_scene(6), seed=6))},
    stream_mode=["custom", "values"],
    subgraphs=True,  # the loop's own events reach the parent through its custom stream
):
    event = Repainter.event_from(chunk) if mode == "custom" else None
    if event is not None and event.kind == "round":
        print(f"round {event.round}: best so far {event.data['best_score']:.3f}")
    if mode == "values" and not namespace:  # the parent's own state
        state = chunk
print(state["stop_reason"], "|", state["caption"])
result = rp.result_from(state)  # the rounds, read back from the loop's history by its run_id
print(len(result.rounds), "rounds; best prompt:", result.best.prompt if result.best else None)
