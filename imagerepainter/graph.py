"""The graph factory: the ImageRepainter loop as a LangGraph ``StateGraph``.

```mermaid
graph TD
  __start__ --> start
  start -.->|no prompt given| describe
  start -.->|prompt given| generate
  describe -.->|variants needed| propose
  describe -.-> generate
  propose --> generate --> score
  score -.->|stop reason| finish
  score -.->|go on| critique
  critique -.->|combined| generate
  critique -.->|variants missing| propose
  critique -.->|separate calls| revise
  revise -.->|variants needed| propose
  critique -.->|judged match| finish
  finish --> __end__
```

The loop's bound is enforced by routing (the convergence policy always applies
``max_rounds``); the recursion limit that :func:`recursion_limit` computes is only a backstop.
Images travel through the state as refs into the image store.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from .backends.base import MLLM, Scorer, TextToImage
from .config import RepainterConfig
from .images import ImageStore
from .nodes import LoopNodes, RunContext
from .routing import route_after_critique, route_after_score, route_start, route_to_round
from .state import RepaintInput, RepaintOutput, RepaintState

__all__ = ["NODES_PER_ROUND", "ROUND_CLOSING_NODE", "build_graph", "recursion_limit"]

NODES_PER_ROUND = 5
"""propose, generate, score, critique and revise: the most steps one round takes."""

ROUND_CLOSING_NODE = "score"
"""The node that closes a round: once its step is checkpointed, the round is in the results."""


def recursion_limit(config: RepainterConfig) -> int:
    """A LangGraph ``recursion_limit`` that a run within ``config.max_rounds`` never reaches."""
    return NODES_PER_ROUND * config.max_rounds + 8


def build_graph(
    *,
    mllm: MLLM,
    t2i: TextToImage,
    scorer: Scorer,
    store: ImageStore,
    config: RepainterConfig,
    history: BaseStore | None = None,
) -> tuple[StateGraph[Any, Any, Any, Any], LoopNodes]:
    """Build the uncompiled loop graph and the nodes object it is closed over.

    ``config`` is the base config. A run's settings travel as LangGraph runtime context
    (:class:`~imagerepainter.nodes.RunContext`, validated once by ``Repainter``); a parent graph
    that passes no context gets ``config`` refined by the input's ``overrides``. Whether the
    critique and revision are one call or two is a per-run setting, so both edges exist.

    Each run's rounds, critiques and call log go to the LangGraph store the graph is compiled
    with (``compile(store=...)``), or to ``history`` when it runs without one.

    Returns:
        The ``StateGraph`` (compile it with your checkpointer and store) and the :class:`LoopNodes`.
    """
    nodes = LoopNodes(mllm=mllm, t2i=t2i, scorer=scorer, store=store, config=config, history=history)
    graph = StateGraph(RepaintState, context_schema=RunContext, input_schema=RepaintInput, output_schema=RepaintOutput)
    graph.add_node("start", nodes.start)
    graph.add_node("describe", nodes.describe)
    graph.add_node("propose", nodes.propose)
    graph.add_node("generate", nodes.generate)
    graph.add_node("score", nodes.score)
    graph.add_node("critique", nodes.critique)
    graph.add_node("revise", nodes.revise)
    graph.add_node("finish", nodes.finish)

    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", partial(_after_start, nodes), ["describe", "propose", "generate"])
    graph.add_conditional_edges("describe", partial(_to_round, nodes), ["propose", "generate"])
    graph.add_edge("propose", "generate")
    graph.add_edge("generate", "score")
    graph.add_conditional_edges("score", route_after_score, ["critique", "finish"])
    graph.add_conditional_edges(
        "critique", partial(_after_critique, nodes), ["propose", "generate", "revise", "finish"]
    )
    # the cycle: a revised prompt starts the next round
    graph.add_conditional_edges("revise", partial(_to_round, nodes), ["propose", "generate"])
    graph.add_edge("finish", END)
    return graph, nodes


def _to_round(nodes: LoopNodes, state: dict[str, Any]) -> str:
    """Start a round: through ``propose`` when it needs variants nobody proposed, else straight to ``generate``.

    Routing reads the recorded settings (no runtime: LangGraph also routes in ``update_state``,
    without context).
    """
    _, wanted = nodes.round_plan(state, nodes._config(state, None))  # type: ignore[arg-type]
    return route_to_round(state.get("round_prompts"), wanted)


def _after_start(nodes: LoopNodes, state: dict[str, Any]) -> str:
    after = route_start(state)
    return _to_round(nodes, state) if after == "round" else after


def _after_critique(nodes: LoopNodes, state: dict[str, Any]) -> str:
    cfg = nodes._config(state, None)  # type: ignore[arg-type]
    after = route_after_critique(state, combined=cfg.combined_critique)
    return _to_round(nodes, state) if after == "round" else after
