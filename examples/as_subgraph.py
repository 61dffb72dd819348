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

out = app.compile().invoke({"reference": rp.store.put(render_scene(random_scene(6), seed=6))})
print(out["stop_reason"], "|", out["caption"])
