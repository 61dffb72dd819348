"""The graph factory: the ImageRepainter loop as a LangGraph ``StateGraph``.

```mermaid
graph TD
  __start__ --> start
  start -.->|no prompt given| describe
  start -.->|prompt given| generate
  describe -.->|variants needed| propose
  describe -.-> generate
  propose -.-> generate --> score
  score -.->|stop reason| finish
  score -.->|go on| critique
  critique -.->|combined| generate
  critique -.->|variants missing| propose
  critique -.->|separate calls| revise
  revise -.->|variants needed| propose
  critique -.->|judged match| finish
  finish --> __end__
  describe -.->|review prompt| review_prompts
  propose -.->|review prompt| review_prompts
  review_prompts -.-> generate
  review_prompts -.->|stopped| finish
  critique -.->|review critique| review_critique
  review_critique -.->|next round| generate
  review_critique -.->|revise| revise
  review_critique -.->|stopped| finish
```

The two review nodes are entered only when the run's ``review`` setting
asks for them: a run without review takes exactly the steps it took before they existed. Every
edge into a round (``start``, ``describe``, ``critique``, ``review_critique``, ``revise``) goes to
``propose``, ``generate`` or ``review_prompts`` by the same rule (:func:`~imagerepainter.loop.routing.route_to_round`).

The loop's bound is enforced by routing (the convergence policy always applies
``max_rounds``); the recursion limit that :func:`recursion_limit` computes is only a backstop.
Images travel through the state as refs into the image store.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from ..backends.base import MLLM, Scorer, TextToImage
from ..config import RepainterConfig
from ..images import ImageStore
from .nodes import Admit, LoopNodes, RunContext
from .routing import (
    route_after_critique,
    route_after_critique_review,
    route_after_prompt_review,
    route_after_propose,
    route_after_score,
    route_start,
    route_to_round,
)
from .state import RepaintInput, RepaintOutput, RepaintState

__all__ = ["NODES_PER_ROUND", "ROUND_CLOSING_NODE", "build_graph", "recursion_limit"]

NODES_PER_ROUND = 5
"""propose, generate, score, critique and revise: the most steps one round takes (without review;
each review point adds one)."""

ROUND_CLOSING_NODE = "score"
"""The node that closes a round: once its step is checkpointed, the round is in the results."""


def recursion_limit(config: RepainterConfig) -> int:
    """A LangGraph ``recursion_limit`` that a run within ``config.max_rounds`` never reaches."""
    return (NODES_PER_ROUND + len(config.review)) * config.max_rounds + 8


def build_graph(
    *,
    mllm: MLLM,
    t2i: TextToImage,
    scorer: Scorer,
    store: ImageStore,
    config: RepainterConfig,
    history: BaseStore | None = None,
    admit: Admit | None = None,
) -> tuple[StateGraph[Any, Any, Any, Any], LoopNodes]:
    """Build the uncompiled loop graph and the nodes object it is closed over.

    ``config`` is the base config. A run's settings travel as LangGraph runtime context
    (:class:`~imagerepainter.loop.nodes.RunContext`, validated once by ``Repainter``); a parent graph
    that passes no context gets ``config`` refined by the input's ``overrides``. Whether the
    critique and revision are one call or two is a per-run setting, so both edges exist.

    Each run's rounds, critiques and call log go to the LangGraph store the graph is compiled
    with (``compile(store=...)``), or to ``history`` when it runs without one.

    The input's ``reference`` is an image ref into ``store``; with ``admit`` (``Repainter`` passes
    its :meth:`~imagerepainter.Repainter.admit_reference`), the ``start`` node also takes a path,
    bytes, a PIL image or a data URL and puts the image in the store itself.

    Returns:
        The ``StateGraph`` (compile it with your checkpointer and store) and the :class:`LoopNodes`.
    """
    nodes = LoopNodes(mllm=mllm, t2i=t2i, scorer=scorer, store=store, config=config, history=history, admit=admit)
    graph = StateGraph(RepaintState, context_schema=RunContext, input_schema=RepaintInput, output_schema=RepaintOutput)
    graph.add_node("start", nodes.start)
    graph.add_node("describe", nodes.describe)
    graph.add_node("propose", nodes.propose)
    graph.add_node("generate", nodes.generate)
    graph.add_node("score", nodes.score)
    graph.add_node("critique", nodes.critique)
    graph.add_node("revise", nodes.revise)
    graph.add_node("review_prompts", nodes.review_prompts)
    graph.add_node("review_critique", nodes.review_critique)
    graph.add_node("finish", nodes.finish)

    to_round = ["propose", "generate", "review_prompts"]
    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", partial(_after_start, nodes), ["describe", *to_round])
    graph.add_conditional_edges("describe", partial(_to_round, nodes), to_round)
    graph.add_conditional_edges("propose", partial(_after_propose, nodes), ["review_prompts", "generate"])
    graph.add_conditional_edges("review_prompts", route_after_prompt_review, ["generate", "finish"])
    graph.add_edge("generate", "score")
    graph.add_conditional_edges("score", route_after_score, ["critique", "finish"])
    graph.add_conditional_edges(
        "critique", partial(_after_critique, nodes), [*to_round, "review_critique", "revise", "finish"]
    )
    graph.add_conditional_edges(
        "review_critique", partial(_after_critique_review, nodes), [*to_round, "revise", "finish"]
    )
    # the cycle: a revised prompt starts the next round
    graph.add_conditional_edges("revise", partial(_to_round, nodes), to_round)
    graph.add_edge("finish", END)
    return graph, nodes


def _recorded(nodes: LoopNodes, state: dict[str, Any]) -> RepainterConfig:
    """The run's settings as routing reads them: recorded in the state (no runtime: LangGraph also
    routes in ``update_state``, without context)."""
    return nodes.settings(state)  # type: ignore[arg-type]


def _to_round(nodes: LoopNodes, state: dict[str, Any]) -> str:
    """Start a round: through ``propose`` when it needs variants nobody proposed, then (with review)
    through ``review_prompts``, then ``generate``."""
    cfg = _recorded(nodes, state)
    _, wanted = nodes.round_plan(state, cfg)  # type: ignore[arg-type]
    return route_to_round(state.get("round_prompts"), wanted, review="prompt" in cfg.review)


def _after_propose(nodes: LoopNodes, state: dict[str, Any]) -> str:
    return route_after_propose(review="prompt" in _recorded(nodes, state).review)


def _after_start(nodes: LoopNodes, state: dict[str, Any]) -> str:
    after = route_start(state)
    return _to_round(nodes, state) if after == "round" else after


def _after_critique(nodes: LoopNodes, state: dict[str, Any]) -> str:
    cfg = _recorded(nodes, state)
    after = route_after_critique(state, combined=cfg.combined_critique, review="critique" in cfg.review)
    return _to_round(nodes, state) if after == "round" else after


def _after_critique_review(nodes: LoopNodes, state: dict[str, Any]) -> str:
    after = route_after_critique_review(state)
    return _to_round(nodes, state) if after == "round" else after
