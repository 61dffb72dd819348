"""Parent LangGraph graphs around the loop, for the tests that embed ``Repainter.as_graph()``."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from imagerepainter import Repainter

__all__ = ["loop_in_a_parent"]


def loop_in_a_parent(rp: Repainter, state_schema: type[Any]) -> StateGraph[Any, Any, Any, Any]:
    """An uncompiled parent graph ``START → repaint → END`` whose ``repaint`` node is ``rp``'s loop.

    ``state_schema`` is the parent's state: the keys it declares are all that it passes in and
    reads back from the loop (``reference`` in, ``run_id``, ``best`` and the like out).
    """
    parent = StateGraph(state_schema)
    parent.add_node("repaint", rp.as_graph())
    parent.add_edge(START, "repaint")
    parent.add_edge("repaint", END)
    return parent
