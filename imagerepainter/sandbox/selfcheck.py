"""A stand-alone regeneration loop over the sandbox pieces, to check that the world behaves.

:func:`sandbox_selfcheck` draws a hidden scene, renders it as the reference, and runs the
loop the library runs — describe (Image Understanding Tree) → rewrite → render K
candidates → score → critique and revise — using only the sandbox model, renderer and
scorer, with the request texts following the marker convention of
:mod:`imagerepainter.sandbox.mllm`. It returns the best score of every round, which should
rise as the critique fixes the coarse first description.

Example:
    >>> scores = sandbox_selfcheck(0, rounds=4)
    >>> len(scores), scores[-1] > scores[0]
    (4, True)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..backends.base import GenerationRequest, MLLMMessage
from ..schemas import (
    Critique,
    CritiqueAndRevision,
    GlobalDescription,
    GlobalFeatures,
    ObjectList,
    PromptRewrite,
    PromptVariants,
    Relationships,
    RevisedPrompt,
    ThingDetails,
)
from .mllm import SandboxMLLM
from .renderer import SandboxT2I, render_scene
from .scene import random_scene
from .scorer import SandboxScorer

__all__ = ["describe_reference", "sandbox_selfcheck"]


def describe_reference(mllm: SandboxMLLM, reference: Image.Image, *, max_objects: int = 5) -> str:
    """Build the Image Understanding Tree of ``reference`` and assemble it into one description text."""

    def ask(schema, text, images=(reference,)):  # type: ignore[no-untyped-def]
        return mllm.structured([MLLMMessage(text=text, images=tuple(images))], schema).value

    glob = ask(GlobalDescription, "Describe the image in one sentence.")
    feats = ask(GlobalFeatures, "Describe the style, lighting, colour palette and composition.")
    objects = ask(ObjectList, f"List the most salient objects, at most {max_objects} objects.").objects
    lines = [
        f"Global: {glob.description}",
        f"Style: {feats.style}. Lighting: {feats.lighting}. Colour palette: {feats.color_palette}. "
        f"Composition: {feats.composition}.",
        "Objects:",
    ]
    for obj in objects:
        d = ask(ThingDetails, f"Describe this object of the image.\nObject: {obj.name}")
        lines.append(
            f"- {obj.name} ({obj.type}): color {d.color}; position {d.position}; size {d.size}; "
            f"material {d.material}; texture {d.texture}"
        )
    if len(objects) > 1:
        rel = ask(Relationships, "How do these objects relate?\n" + "\n".join(o.name for o in objects))
        lines += ["Relationships:", *(f"- {r}" for r in rel.relationships)]
    return "\n".join(lines)


def sandbox_selfcheck(
    seed: int,
    *,
    rounds: int = 6,
    variants: int = 3,
    size: int = 256,
    combined: bool = True,
) -> list[float]:
    """Run the sandbox loop on a random hidden scene and return the best score of each round.

    Args:
        seed: Draws the hidden scene and the candidates' seeds.
        rounds: Rounds to run (no early stop).
        variants: Candidates per round: the current prompt plus ``variants - 1`` variants.
        size: Width and height of the reference and the candidates.
        combined: Critique, revise and vary in one request (``CritiqueAndRevision``); else
            ``Critique`` then ``RevisedPrompt`` then ``PromptVariants`` (the paper's way).
    """
    mllm, t2i, scorer = SandboxMLLM(), SandboxT2I(default_size=size), SandboxScorer()
    scene = random_scene(np.random.default_rng(seed))
    reference = render_scene(scene, size, size, seed=10_000 + seed)
    prepared = scorer.prepare(reference)

    def text_only(schema, text):  # type: ignore[no-untyped-def]
        return mllm.structured([MLLMMessage(text=text)], schema).value

    description = describe_reference(mllm, reference)
    prompt = text_only(PromptRewrite, f"Rewrite as a text-to-image prompt.\nDescription:\n{description}").prompt
    prompts = [prompt, *text_only(PromptVariants, f"Rephrase.\nPrompt: {prompt}\nCount: {variants - 1}").prompts]
    best_scores: list[float] = []
    for r in range(rounds):
        requests = [
            GenerationRequest(prompt=p, seed=seed * 1000 + r * 16 + i, height=size, width=size)
            for i, p in enumerate(prompts)
        ]
        images = [g.image for g in t2i.generate(requests)]
        scores = scorer.score(prepared, images)
        best = int(np.argmax(scores))
        best_scores.append(scores[best])
        if r == rounds - 1:
            break
        text = f"Compare the images.\nPrompt: {prompts[best]}\nCount: {variants - 1}"
        msg = [MLLMMessage(text=text, images=(reference, images[best]))]
        if combined:
            cr = mllm.structured(msg, CritiqueAndRevision).value
            prompts = [cr.revised_prompt, *cr.variants]
        else:
            critique = mllm.structured(msg, Critique).value
            edits = "\n".join(f"- {e}" for e in critique.edits)
            revised = text_only(RevisedPrompt, f"Apply the edits.\nPrompt: {prompts[best]}\nEdits:\n{edits}").prompt
            prompts = [revised, *text_only(PromptVariants, f"Prompt: {revised}\nCount: {variants - 1}").prompts]
    return best_scores
