"""A multimodal "model" that answers by looking at pixels: no weights, no network, deterministic.

:class:`SandboxMLLM` implements the :class:`~imagerepainter.backends.base.MLLM` protocol.
It never sees a hidden answer: it perceives the images it is sent
(:mod:`~imagerepainter.sandbox.perception`), words its first description coarsely
(:mod:`~imagerepainter.sandbox.describe`) and critiques finely
(:mod:`~imagerepainter.sandbox.critic`), so the regeneration loop improves round by round.
:func:`answer` is the same logic without the protocol, for serving it over HTTP.

The schema class name says what is asked (see :mod:`imagerepainter.loop.schemas`). The facts of
the request come from the task data of the messages (:attr:`MLLMMessage.task
<imagerepainter.backends.base.MLLMMessage.task>`, the last message that has one), which the
loop fills: the wording of its instructions is free to change. Text that travels without
task data (over HTTP the OpenAI protocol has no place for it) is read by the marker
convention below instead; the loop's instructions still carry those labelled lines, so the
sandbox server answers the loop as the in-process model does.

==========================  =======================  ==================================  =========================
schema                      images                   task keys read                      text markers (fallback)
==========================  =======================  ==================================  =========================
GlobalDescription           reference                —                                   —
GlobalFeatures              reference                —                                   —
ObjectList                  reference                ``max_objects`` (default 5)         "at most N objects"
Person/Animal/ThingDetails  reference                ``object`` (its ``name``)           ``Object:``
Relationships               reference                —                                   —
PromptRewrite               —                        ``description``, ``style``          ``Description:``
PromptVariants              —                        ``prompt``, ``count`` (default 3)   ``Prompt:``, ``Count:``
RevisedPrompt               —                        ``prompt``, ``edits``               ``Prompt:``, ``Edits:``
Critique                    reference, candidate     ``prompt``                          ``Prompt:``
CritiqueAndRevision         reference, candidate     ``prompt``, ``count``, ``history``  ``Prompt:``, ``Count:``
SimilarityRating            reference, regeneration  — (a judge: :mod:`.judge`)          —
ElementVerdicts             regeneration             ``elements`` (its checklist)        ``- <id> [<kind>]`` lines
==========================  =======================  ==================================  =========================

``prompt`` of a critique is the prompt that drew the candidate; without it the model
critiques against what it sees in the candidate. ``history`` lists the earlier rounds: a
revision already tried (a round's prompt or best variant) is not proposed again.

**Marker convention** (text without task data). The text of all messages is joined with blank lines between them. A
marker is a line that starts (after optional spaces) with ``Prompt:``, ``Count:``,
``Object:``, ``Edits:`` or ``Description:`` (any case). Its value is the rest of that line
plus the following lines, up to the first blank line or the next marker line; if a marker
occurs more than once, the last one wins (so put the current prompt after any history).

* ``Edits:`` — one edit per line (``-``, ``*``, ``•`` or ``1.`` bullets are stripped),
  ``;``-separated edits, or a JSON list of strings.
* ``Count:`` — the first integer in the value (default 3).
* ``Object:`` — matched to the names the model gave in ObjectList: exactly (case and
  punctuation ignored), else the name sharing the most words.
* ``Prompt:`` for a critique — the prompt that drew the candidate; without it the model
  critiques against what it sees in the candidate.
* ObjectList's maximum comes from ``at most 5 objects`` (also ``up to``, ``no more than``,
  ``maximum of``; up to three words may sit between the number and ``objects``), else
  from ``5 objects``, else from a bare ``at most 5``; the default is 5.
* PromptRewrite writes sentences when the text outside the description mentions "natural"
  or "sentence(s)" and none of "comma", "tag(s)", "keyword(s)", "stable diffusion";
  otherwise a comma-separated tag list. RevisedPrompt and the critique keep the style of
  the prompt they edit (sentences when it ends with a full stop).

Example:
    >>> from imagerepainter.backends.base import MLLMMessage
    >>> from imagerepainter.loop.schemas import ObjectList, PromptRewrite
    >>> from imagerepainter.sandbox.renderer import render_scene
    >>> from imagerepainter.sandbox.scene import parse_prompt
    >>> prompt = "a large navy circle at 30% 30%, a tiny red star at 80% 80%, white background"
    >>> reference = render_scene(parse_prompt(prompt))
    >>> mllm = SandboxMLLM()
    >>> reply = mllm.structured([MLLMMessage(text="List at most 5 objects.", images=(reference,))], ObjectList)
    >>> [o.name for o in reply.value.objects]  # coarse, and the tiny star is missed
    ['large blue circle at top left']
    >>> mllm.structured([MLLMMessage(text="Description:\\nA large blue circle at top left, white background.")],
    ...                 PromptRewrite).value.prompt
    'a large blue circle at top left, on a white background, flat vector art'
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel

from ..backends.base import MLLMCapabilities, MLLMMessage, MLLMReply, TokenUsage
from ..errors import MLLMError, StructuredOutputError
from ..loop import schemas
from .acuity import blurred, check_acuity
from .colors import basic_name
from .critic import MAX_EDITS, review
from .describe import coarse_shape, fine_shape, is_photo, noticed, object_name, position_words
from .edits import apply_edits, is_natural, prompt_variants, split_edits
from .element_check import check_elements, read_checklist
from .judge import rate
from .perception import Blob, Perception, perceive
from .scene import SIZE_WORDS, Scene, format_size, parse_prompt, with_article

__all__ = ["MARKERS", "SandboxMLLM", "answer", "read_marker"]

SchemaT = TypeVar("SchemaT", bound=BaseModel)

MARKERS: tuple[str, ...] = ("Prompt", "Count", "Object", "Edits", "Description")
"""The marker names whose values the sandbox model reads from request text."""

_MARKER_LINE = re.compile(r"^\s*(" + "|".join(MARKERS) + r")\s*:(.*)$", re.IGNORECASE)
_N = r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten)"
_LIMIT = r"\b(?:at most|up to|no more than|(?:a )?maximum of|max\.?)\s+"
_MAX_OBJECTS = (
    re.compile(_LIMIT + _N + r"\s+(?:[\w-]+\s+){0,3}?(?:objects?|items?|things|elements|entries)\b", re.IGNORECASE),
    re.compile(r"\b" + _N + r"\s+(?:[\w-]+\s+){0,2}?objects\b", re.IGNORECASE),
    re.compile(_LIMIT + _N + r"\b", re.IGNORECASE),
)
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_NUMBER_WORDS |= {"ten": 10}
_IMAGE_TOKENS = 85
_STANDARD = "The sandbox model answers the schemas of imagerepainter.loop.schemas"


def read_marker(text: str, marker: str) -> str | None:
    """The value of ``marker`` in ``text`` under the marker convention (module docstring), or ``None``.

    Example:
        >>> text = "Revise.\\nPrompt: a red circle\\nEdits:\\n- move it\\n- recolour it\\n\\nThanks."
        >>> read_marker(text, "Prompt"), read_marker(text, "Edits"), read_marker(text, "Count")
        ('a red circle', '- move it\\n- recolour it', None)
    """
    value: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _MARKER_LINE.match(line)
        if match is None or match[1].lower() != marker.lower():
            continue
        parts = [match[2].strip()] if match[2].strip() else []
        for follow in lines[i + 1 :]:
            if not follow.strip() or _MARKER_LINE.match(follow):
                break
            parts.append(follow.strip())
        value = "\n".join(parts)
    return value


class _Request:
    """The facts of one request: from its task data (``MLLMMessage.task``) when it has them, else its text.

    In process, the loop hands the sandbox every fact as task data, so the wording of the
    loop's instructions is free to change. Over HTTP only text travels; then the facts are
    read from the labelled lines of the marker convention (module docstring).
    """

    def __init__(self, text: str, task: Mapping[str, Any] | None) -> None:
        self.text = text
        self.task: Mapping[str, Any] = task or {}

    def prompt(self) -> str | None:
        if "prompt" in self.task:
            return str(self.task["prompt"] or "")
        return read_marker(self.text, "Prompt")

    def count(self, default: int = 3) -> int:
        if "count" in self.task:
            return max(0, min(16, int(self.task["count"])))
        match = re.search(r"\d+", read_marker(self.text, "Count") or "")
        return max(0, min(16, int(match[0]))) if match else default

    def max_objects(self, default: int = 5) -> int:
        if "max_objects" in self.task:
            return max(0, min(20, int(self.task["max_objects"])))
        return _max_objects(self.text, default)

    def object_name(self) -> str | None:
        obj = self.task.get("object")
        if isinstance(obj, Mapping) and obj.get("name"):
            return str(obj["name"])
        return read_marker(self.text, "Object")

    def edits(self) -> list[str]:
        if "edits" in self.task:
            return [str(e) for e in self.task["edits"] or [] if str(e).strip()]
        return split_edits(read_marker(self.text, "Edits") or "")

    def description(self) -> str:
        if "description" in self.task:
            return str(self.task["description"])
        return read_marker(self.text, "Description") or self.text

    def natural_requested(self) -> bool:
        if "style" in self.task:
            return self.task["style"] == "natural"
        return _natural_requested(self.text)

    def tried(self) -> set[str]:
        """Prompts of earlier rounds (each round's prompt and best variant), per the history."""
        if "history" in self.task:
            rounds = self.task["history"] or []
            return {str(p) for h in rounds for p in (h.get("prompt"), h.get("best_prompt")) if p}
        return {p for m in _TRIED.finditer(self.text) for p in m.groups() if p}


def _max_objects(text: str, default: int = 5) -> int:
    for pattern in _MAX_OBJECTS:
        match = pattern.search(text)
        if match is not None:
            break
    else:
        return default
    word = match[1].lower()
    return max(0, min(20, _NUMBER_WORDS[word] if word in _NUMBER_WORDS else int(word)))


def _natural_requested(text: str) -> bool:
    description = read_marker(text, "Description")
    outside = (text.replace(description, " ") if description else text).lower()
    if re.search(r"comma|\btags?\b|keywords?|stable diffusion", outside):
        return False
    return bool(re.search(r"\bnatural\b|\bsentences?\b", outside))


def _words(text: str) -> int:
    return len(text.split())


# ----------------------------------------------------------------------------- describing


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _global_description(seen: Perception, max_objects: int) -> str:
    names = [with_article(object_name(b)) for b in noticed(seen, max_objects)]
    bg = basic_name(seen.background)
    kind = "A photograph" if is_photo(seen) else "A flat vector art picture"
    if not names:
        return f"{kind} of a plain {bg} background."
    return f"{kind} of {_join(names)}, on a {bg} background."


def _global_features(seen: Perception, max_objects: int) -> dict[str, str]:
    blobs = noticed(seen, max_objects)
    colors: list[str] = []
    for b in blobs:
        if basic_name(b.color) not in colors:
            colors.append(basic_name(b.color))
    photo = is_photo(seen)
    return {
        "style": "photograph" if photo else "flat vector art with simple geometric forms",
        "lighting": "natural light" if photo else "flat, even lighting without shadows",
        "color_palette": f"{basic_name(seen.background)} background" + (f"; {', '.join(colors)}" if colors else ""),
        "composition": f"{len(blobs)} separate elements seen straight on, against a plain backdrop",
    }


def _find_object(seen: Perception, name: str | None, max_objects: int) -> Blob | None:
    blobs = noticed(seen, max_objects) or list(seen.blobs)
    if not blobs:
        return None
    if not name:
        return blobs[0]
    wanted = " ".join(re.findall(r"[a-z0-9%]+", name.lower()))
    for b in blobs:
        if object_name(b) == wanted:
            return b
    words = set(wanted.split())

    def overlap(b: Blob) -> float:
        have = set(object_name(b).split())
        return len(words & have) / max(1, len(words | have))

    return max(blobs, key=overlap)


def _details(schema_name: str, blob: Blob | None, seen: Perception) -> dict[str, Any]:
    if blob is None:
        base: dict[str, Any] = {
            "color": basic_name(seen.background),
            "material": "unknown",
            "position": "fills the frame",
            "texture": "uniform",
            "size": "fills the frame",
        }
    else:
        shape = coarse_shape(blob)
        base = {
            "color": basic_name(blob.color),
            "material": "photographed surface" if is_photo(seen) else "flat colour fill",
            "position": position_words(blob),
            "texture": "smooth and uniform",
            "size": format_size(shape.size) if shape.size in SIZE_WORDS.values() else "medium",
        }
    if schema_name == "PersonDetails":
        return base | {"posture": "not visible", "expression": "not visible", "clothing": "not visible"}
    if schema_name == "AnimalDetails":
        return base | {"species": "unknown", "posture": "still", "expression": "not visible"}
    return base | {"function": "decorative element", "state": "static"}


def _relationships(seen: Perception, max_objects: int) -> list[str]:
    blobs = noticed(seen, max_objects)
    out = []
    for a, b in itertools.pairwise(blobs):
        dx, dy = b.x - a.x, b.y - a.y
        horizontal = "left of" if dx > 0 else "right of"
        rel = horizontal if abs(dx) >= abs(dy) else "above" if dy > 0 else "below"
        out.append(f"the {object_name(a)} is {rel} the {object_name(b)}")
    return out[:4]


# ----------------------------------------------------------------------------- answering


def _styled(scene: Scene, natural: bool) -> str:
    return scene.to_prompt("natural" if natural else "sd")


def _critique(
    request: _Request, images: Sequence[Image.Image], *, combined: bool, max_edits: int, acuity: float = 1.0
) -> dict[str, Any]:
    reference, candidate = blurred(perceive(images[0]), acuity), blurred(perceive(images[1]), acuity)
    prompt = request.prompt()
    if prompt:
        scene = parse_prompt(prompt)
    else:
        scene = Scene(candidate.background, tuple(fine_shape(b) for b in candidate.blobs))
    result = review(reference, candidate, scene, max_edits=max_edits)
    out: dict[str, Any] = {
        "style": result.notes("style"),
        "composition": result.notes("composition"),
        "content": result.notes("content"),
        "edits": list(result.edits),
        "is_match": result.is_match,
    }
    if combined:
        tried = request.tried() | {prompt or ""}
        edits, revised = _untried_revision(scene, [f.edit for f in result.findings], max_edits, tried, prompt or "")
        out["edits"] = edits
        out["revised_prompt"] = revised
        out["variants"] = prompt_variants(revised, request.count())
    return out


_TRIED = re.compile(r"^- round \d+: prompt: (.*?); best score [^;]*?(?:; best variant: (.*?))?; critique: ", re.M)
"""A round in the request's history (see ``prompts.HISTORY_ROUND``): its prompt and best variant."""


def _untried_revision(
    scene: Scene, edits: list[str], max_edits: int, tried: set[str], prompt: str
) -> tuple[list[str], str]:
    """The weightiest edits whose revised prompt was not tried before (per the history).

    The same image and prompt give the same critique; when the history shows that its revision
    was already tried (and did no better), leave out one edit, then try single edits.
    """
    natural = is_natural(prompt)
    top = edits[:max_edits]
    options = [top, *(edits[:i] + edits[i + 1 : max_edits + 1] for i in range(len(top))), *([e] for e in edits)]
    for option in options:
        revised = _styled(apply_edits(scene, option), natural)
        if revised not in tried:
            return option, revised
    return top, _styled(apply_edits(scene, top), natural)


def answer(
    schema_name: str,
    text: str,
    images: Sequence[Image.Image] = (),
    json_schema: dict[str, Any] | None = None,
    *,
    task: Mapping[str, Any] | None = None,
    max_edits: int = MAX_EDITS,
    acuity: float = 1.0,
) -> dict[str, Any]:
    """Answer one request, transport-neutrally: the dict validates against ``schemas.<schema_name>``.

    Args:
        schema_name: Name of a schema class of :mod:`imagerepainter.loop.schemas`.
        text: The request text (all messages joined; see the marker convention).
        images: The request's images in order (reference first, then the candidate).
        json_schema: The JSON schema sent on the wire; unused (the name decides), accepted for servers.
        task: The request's facts (``MLLMMessage.task``); what it holds is read from it, not from ``text``.
        max_edits: Most edits a critique proposes.
        acuity: How sharply the images are seen, in (0, 1]; 1 sees every detail (see
            :mod:`~imagerepainter.sandbox.acuity`).

    Raises:
        StructuredOutputError: ``schema_name`` is not a schema the sandbox knows.
        MLLMError: The request lacks the images its schema needs.
    """
    del json_schema
    needs = {"Critique": 2, "CritiqueAndRevision": 2, "SimilarityRating": 2}
    needs |= {"PromptRewrite": 0, "PromptVariants": 0, "RevisedPrompt": 0}
    if schema_name not in _known():
        raise StructuredOutputError(
            f"{_STANDARD}; it cannot answer {schema_name!r}. Known: {', '.join(sorted(_known()))}.",
            backend="sandbox",
            schema=schema_name,
            attempts=1,
            raw_output=None,
        )
    wanted = needs.get(schema_name, 1)
    if len(images) < wanted:
        raise MLLMError(
            f"The sandbox model needs {wanted} image(s) to answer {schema_name} (reference first, then the "
            f"candidate); the request carried {len(images)}.",
            backend="sandbox",
        )
    request = _Request(text, task)
    if schema_name == "PromptRewrite":
        return {"prompt": _styled(parse_prompt(request.description()), request.natural_requested())}
    if schema_name == "PromptVariants":
        return {"prompts": prompt_variants(request.prompt() or "", request.count())}
    if schema_name == "RevisedPrompt":
        prompt = request.prompt() or ""
        return {"prompt": _styled(apply_edits(parse_prompt(prompt), request.edits()), is_natural(prompt))}
    if schema_name == "SimilarityRating":
        return rate(blurred(perceive(images[0]), acuity), blurred(perceive(images[1]), acuity))
    if schema_name == "ElementVerdicts":
        return check_elements(blurred(perceive(images[0]), acuity), read_checklist(text, task))
    if schema_name in ("Critique", "CritiqueAndRevision"):
        combined = schema_name == "CritiqueAndRevision"
        return _critique(request, images, combined=combined, max_edits=max_edits, acuity=acuity)
    seen = blurred(perceive(images[0]), acuity)
    n = request.max_objects()
    if schema_name == "GlobalDescription":
        return {"description": _global_description(seen, n)}
    if schema_name == "GlobalFeatures":
        return _global_features(seen, n)
    if schema_name == "ObjectList":
        return {"objects": [{"name": object_name(b), "type": "object"} for b in noticed(seen, n)]}
    if schema_name == "Relationships":
        return {"relationships": _relationships(seen, n)}
    # PersonDetails, AnimalDetails, ThingDetails
    blob = _find_object(seen, request.object_name(), max(n, 20))
    return _details(schema_name, blob, seen)


def _known() -> list[str]:
    return [n for n in schemas.__all__ if n not in ("DetectedObject", "ObjectType", "ElementVerdict")]


class SandboxMLLM:
    """The sandbox multimodal model (:class:`~imagerepainter.backends.base.MLLM`); see the module docstring.

    Args:
        max_edits: Most edits one critique proposes (fewer edits make the loop need more rounds).
        acuity: How sharply it sees, in (0, 1]: 1 (the default) sees every detail it measures; as it
            falls it misses small objects, dulls colours to coarser names and rounds positions,
            sizes and counts, deterministically per (image, acuity) (see
            :mod:`~imagerepainter.sandbox.acuity`). Describers of graded acuity are describers of
            known, graded strength, for checking a benchmark of describers (``sandbox?acuity=0.5``).

    Raises:
        ConfigurationError: ``acuity`` is outside (0, 1].
    """

    name = "sandbox"
    capabilities = MLLMCapabilities(max_images_per_call=2, accepts_images=True)

    def __init__(self, *, max_edits: int = MAX_EDITS, acuity: float = 1.0) -> None:
        self.max_edits = max_edits
        self.acuity = check_acuity(acuity)

    def __repr__(self) -> str:
        return f"SandboxMLLM(max_edits={self.max_edits}, acuity={self.acuity})"

    def structured(self, messages: Sequence[MLLMMessage], schema: type[SchemaT]) -> MLLMReply[SchemaT]:
        """Answer ``messages`` with an instance of ``schema`` (chosen by the schema's class name)."""
        text = "\n\n".join(m.text for m in messages)
        images = [image for m in messages for image in m.images]
        task = next((m.task for m in reversed(messages) if m.task is not None), None)
        data = answer(schema.__name__, text, images, task=task, max_edits=self.max_edits, acuity=self.acuity)
        value = schema.model_validate(data)
        usage = TokenUsage(
            input_tokens=_words(text) + _IMAGE_TOKENS * len(images),
            output_tokens=_words(json.dumps(data)),
        )
        return MLLMReply(value=value, usage=usage, requests=1)
