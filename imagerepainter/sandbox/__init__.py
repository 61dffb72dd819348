"""An offline world of flat shapes, to run, demonstrate and test the loop with no model at all.

Three backends that need only numpy and Pillow and answer in milliseconds:

* :class:`SandboxT2I` — a text-to-image "model" that parses the prompt into a
  :class:`Scene` of shapes and draws it (seeds add a pixel of jitter); with ``fidelity``
  below 1 (spec ``sandbox?fidelity=0.6``) it follows the prompt less faithfully by degree
  (:func:`misread`): models of known, graded strength for checking a benchmark;
* :class:`SandboxMLLM` — a multimodal "model" that answers every schema of
  :mod:`imagerepainter.loop.schemas` by *perceiving* the pixels it is sent: a coarse first
  description (basic colours, 3x3 grid, small shapes missed), then fine critiques with
  concrete edits, so the score rises over rounds; as a judge it rates a regeneration
  against its reference (``SimilarityRating``, :mod:`.judge`) by comparing what it sees in
  both. :func:`answer` is the same logic for an HTTP server (:mod:`.mllm`);
* :class:`SandboxScorer` — a perceptual similarity in pure numpy (1.0 for identical images).

:func:`random_scene` draws hidden references; :func:`sandbox_selfcheck` runs the whole loop
on one and returns the best score of every round.

Example:
    >>> from imagerepainter.sandbox import random_scene, render_scene, SandboxScorer
    >>> reference = render_scene(random_scene(3), seed=1)
    >>> scorer = SandboxScorer()
    >>> scorer.score(scorer.prepare(reference), [reference])
    [1.0]
    >>> scores = sandbox_selfcheck(3, rounds=4)
    >>> scores[-1] > scores[0]
    True
"""

from __future__ import annotations

from .colors import PALETTE, format_color, parse_color
from .critic import Review, review
from .edits import apply_edits, prompt_variants
from .fidelity import misread
from .mllm import MARKERS, SandboxMLLM, answer, read_marker
from .perception import Blob, Perception, perceive
from .renderer import SandboxT2I, render_scene
from .scene import KINDS, Scene, Shape, parse_prompt, random_scene
from .scorer import SandboxScorer, similarity
from .selfcheck import describe_reference, sandbox_selfcheck

__all__ = [
    "KINDS",
    "MARKERS",
    "PALETTE",
    "Blob",
    "Perception",
    "Review",
    "SandboxMLLM",
    "SandboxScorer",
    "SandboxT2I",
    "Scene",
    "Shape",
    "answer",
    "apply_edits",
    "describe_reference",
    "format_color",
    "parse_color",
    "parse_prompt",
    "perceive",
    "prompt_variants",
    "random_scene",
    "read_marker",
    "misread",
    "render_scene",
    "review",
    "sandbox_selfcheck",
    "similarity",
]
