"""Instruction templates, kept as data (never f-strings inside nodes).

Every template is a :class:`str.format` string. Values the model must read back exactly
are put on their own labelled lines (``Prompt:``, ``Count:``, ``Object:``, ``Edits:``,
``Description:``, ``History:``), each label once, so that a model finds them. The same facts
travel as data on each request (``MLLMMessage.task``), which is what in-process rule-based
models (the sandbox, the fakes) read, so the wording here can change freely; only the sandbox
served over HTTP, where a request carries text alone, still reads the labelled lines.
``PROMPT_VERSION`` is recorded with every result: change it when a template changes, because
results depend on the wording.

Example:
    >>> print(VARIANTS.format(count=2, prompt="a red cat", style=STYLE_HINTS["sd"]).splitlines()[-1])
    Count: 2
"""

from __future__ import annotations

__all__ = [
    "CRITIQUE",
    "CRITIQUE_AND_REVISE",
    "GLOBAL_DESCRIPTION",
    "GLOBAL_FEATURES",
    "HISTORY",
    "HISTORY_ROUND",
    "OBJECT_DETAILS",
    "OBJECT_LIST",
    "PROMPT_VERSION",
    "RELATIONSHIPS",
    "REVISE",
    "REWRITE",
    "STYLE_HINTS",
    "SYSTEM",
    "VARIANTS",
]

PROMPT_VERSION = "2026.11-3"

SYSTEM = (
    "You help regenerate a reference image with a text-to-image model. You look closely at images, "
    "describe exactly what is visible, and write prompts a text-to-image model follows well. "
    "Answer only with the requested structure."
)

STYLE_HINTS = {
    "sd": (
        "Write it as a Stable Diffusion prompt: comma-separated descriptors, the most important first, "
        "with subject, style, colours, composition and context{limit}."
    ),
    "natural": "Write it as one or two plain, precise sentences, the most important first{limit}.",
}
"""How prompts should be written, per ``prompt_style``; ``{limit}`` is :data:`WORD_LIMIT` or empty."""

WORD_LIMIT = ", under about {words} words"


def style_hint(style: str, words: int | None) -> str:
    """The style instruction for ``style``, asking for at most about ``words`` words (``None``: no limit).

    Example:
        >>> style_hint("natural", 60)
        'Write it as one or two plain, precise sentences, the most important first, under about 60 words.'
    """
    return STYLE_HINTS[style].format(limit="" if words is None else WORD_LIMIT.format(words=words))


# -- Image Understanding Tree (each sent with the reference image)

GLOBAL_DESCRIPTION = (
    "Describe the image in one sentence: the main subject or scene first, then the key elements "
    "(objects, colours, lighting), then the style, then the mood."
)

GLOBAL_FEATURES = (
    "Describe the image's overall style, lighting, colour palette (include the background) and composition."
)

OBJECT_LIST = (
    "List the most salient objects in the image, most important first, at most {max_objects} objects. "
    "Give each a short name and its type: person, animal or object."
)

OBJECT_DETAILS = (
    "Describe one object in the image in detail: its colour, material, position in the frame, texture and size, "
    "and the attributes its type asks for.\n"
    "Object: {name}\n"
    "Type: {type}"
)

RELATIONSHIPS = (
    "State how these objects relate to each other, as short phrases: actions ('the dog chases the ball') "
    "and spatial relations ('the cup is left of the plate').\n"
    "Objects: {names}"
)

# -- text-only prompt work

REWRITE = (
    "Rewrite this structured description of an image into a prompt for a text-to-image model. "
    "Keep every key detail: subject, colours, positions, sizes, style. {style}\n"
    "Description: {description}"
)

VARIANTS = (
    "Write {count} variations of this text-to-image prompt. Each must keep every detail of the original "
    "and stay a complete prompt; vary wording and emphasis. {style}\n"
    "Prompt: {prompt}\n"
    "Count: {count}"
)

REVISE = (
    "Update this text-to-image prompt by applying the suggested modifications, keeping everything else. {style}\n"
    "Suggestions: {suggestions}\n"
    "Prompt: {prompt}\n"
    "Edits: {edits}"
)

# -- critique (sent with the reference first and the candidate second)

CRITIQUE = (
    "The first image is the reference. The second was generated from a text-to-image prompt. Compare them and "
    "say what to change in the prompt so the second image becomes more like the first: 1) style (artistic "
    "style, lighting, colour palette), 2) composition (placement, sizes, framing), 3) content (missing, extra "
    "or wrong objects and details). Give concrete, actionable edits.{history}{prompt_line}"
)

PROMPT_LINE = "\nPrompt: {prompt}"
"""The critique's last line when ``critique_sees_prompt`` is on: the prompt that drew the second image."""

CRITIQUE_AND_REVISE = (
    "The first image is the reference. The second was generated from the prompt below. Compare them: "
    "1) style (artistic style, lighting, colour palette), 2) composition (placement, sizes, framing), "
    "3) content (missing, extra or wrong objects and details). Give concrete edits, then the prompt with the "
    "edits applied, and {count} alternative phrasings of that revised prompt. {style}{history}\n"
    "Prompt: {prompt}\n"
    "Count: {count}"
)

HISTORY = "\nHistory: earlier rounds, oldest first (do not repeat edits that did not help):\n{rounds}"
"""Appended to a critique when ``critique_history`` is on."""

HISTORY_ROUND = "- round {round}: prompt: {prompt}; best score {score}{variant}; critique: {critique}"
