"""The paper's loop, inside: what ``Repainter`` drives.

Decisions are pure functions, each in a module of its own: :mod:`~imagerepainter.loop.routing`
(which node comes next), :mod:`~imagerepainter.loop.convergence` (when the score has settled),
:mod:`~imagerepainter.loop.selection` (which candidate is best), :mod:`~imagerepainter.loop.understanding`
(the Image Understanding Tree) and :mod:`~imagerepainter.loop.prompts` / :mod:`~imagerepainter.loop.schemas`
(what the MLLM is asked and how it answers). :mod:`~imagerepainter.loop.state` is the graph's state,
:mod:`~imagerepainter.loop.graph` wires the nodes of :mod:`~imagerepainter.loop.nodes` (thin adapters
between the state and the backends, helped by :mod:`~imagerepainter.loop.calls`,
:mod:`~imagerepainter.loop.batching` and
:mod:`~imagerepainter.loop.sizing`); :mod:`~imagerepainter.loop.history` records each round and
:mod:`~imagerepainter.loop.review` pauses for a person.

Nothing here is imported by ``import imagerepainter``; the front door is :class:`imagerepainter.Repainter`.
"""
