"""Check that the sandbox world behaves: the library's own loop, run on a hidden scene.

:func:`sandbox_selfcheck` draws a hidden scene, renders it as the reference, and runs
:class:`~imagerepainter.Repainter` on it with the sandbox model, renderer and scorer — the
same loop, nodes and seeds as any run, with no early stop. It returns the best score of every
round, which should rise as the critique fixes the coarse first description.
:func:`describe_reference` is the loop's first step alone: the Image Understanding Tree of a
reference, assembled into the text the loop rewrites into its first prompt.

Example:
    >>> scores = sandbox_selfcheck(0, rounds=4)
    >>> len(scores), scores[-1] > scores[0]
    (4, True)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from PIL import Image

from .mllm import SandboxMLLM
from .renderer import SandboxT2I, render_scene
from .scene import random_scene
from .scorer import SandboxScorer

if TYPE_CHECKING:
    from ..repainter import Repainter

__all__ = ["describe_reference", "sandbox_selfcheck"]


def _repainter(mllm: Any, size: int = 256, **settings: Any) -> Repainter:
    from ..repainter import Repainter  # the sandbox sits below the loop; import it when used

    return Repainter(mllm=mllm, t2i=SandboxT2I(default_size=size), scorer=SandboxScorer(), **settings)


def describe_reference(mllm: Any, reference: Image.Image, *, max_objects: int = 5) -> str:
    """The loop's description of ``reference``: its Image Understanding Tree as one text.

    Runs one round of :class:`~imagerepainter.Repainter` with ``mllm`` (any MLLM or spec) and
    returns :func:`~imagerepainter.loop.understanding.assemble_prompt` of the tree it built.

    Example:
        >>> from imagerepainter.sandbox import render_scene, parse_prompt
        >>> reference = render_scene(parse_prompt("a large navy circle at top left, white background"))
        >>> description = describe_reference(SandboxMLLM(), reference)
        >>> description.startswith("flat vector art"), "a large blue circle at top left" in description
        (True, True)
    """
    from ..loop.understanding import UnderstandingTree, assemble_prompt

    result = _repainter(mllm, max_rounds=1, variants=1, max_objects=max_objects).run(reference, progress=False)
    return assemble_prompt(cast("UnderstandingTree", result.understanding or {}))


def sandbox_selfcheck(
    seed: int,
    *,
    rounds: int = 6,
    variants: int = 3,
    size: int = 256,
    combined: bool = True,
) -> list[float]:
    """Run the loop on a random hidden scene and return the best score of each round.

    Args:
        seed: Draws the hidden scene; the run's seed (its candidates' seeds derive from it).
        rounds: Rounds to run (no early stop).
        variants: Candidates per round.
        size: Width and height of the reference and the candidates.
        combined: Critique, revise and vary in one request (``CritiqueAndRevision``); else
            ``Critique`` then ``RevisedPrompt`` then ``PromptVariants`` (the paper's way).
    """
    reference = render_scene(random_scene(seed), size, size, seed=10_000 + seed)
    rp = _repainter(
        SandboxMLLM(),
        size,
        max_rounds=rounds,
        variants=variants,
        combined_critique=combined,
        patience=None,
        seed=seed,
    )
    result = rp.run(reference, progress=False)
    return [r.best.score for r in result.rounds if r.best is not None and r.best.score is not None]
