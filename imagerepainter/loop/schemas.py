"""The structured answers the loop asks the multimodal model for.

Each class is one kind of request. Its name is the schema name the model sees (the
``json_schema`` name or the tool name on the wire), and its field descriptions are part of
the instruction. Fields have no defaults so that OpenAI's strict JSON-schema mode accepts
them.

Image Understanding Tree (IUT) requests, each sent with the reference image:

* :class:`GlobalDescription`, :class:`GlobalFeatures`, :class:`ObjectList`
* one of :class:`PersonDetails`, :class:`AnimalDetails`, :class:`ThingDetails` per object
* :class:`Relationships` when there is more than one object

Text-only requests: :class:`PromptRewrite` (the IUT rewritten in the T2I model's style),
:class:`PromptVariants`, :class:`RevisedPrompt`. Critique requests (reference and
candidate images): :class:`Critique` (paper preset) and :class:`CritiqueAndRevision`
(default preset, one round trip instead of two or three). The benchmark's judge metric asks
for a :class:`SimilarityRating` of a reference and a regeneration, and its ``elements`` metric
for :class:`ElementVerdicts` on a regeneration (see :mod:`imagerepainter.loop.elements`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AnimalDetails",
    "Critique",
    "CritiqueAndRevision",
    "DetectedObject",
    "ElementVerdict",
    "ElementVerdicts",
    "GlobalDescription",
    "GlobalFeatures",
    "ObjectList",
    "PersonDetails",
    "PromptRewrite",
    "PromptVariants",
    "Relationships",
    "RevisedPrompt",
    "SimilarityRating",
    "ThingDetails",
    "ObjectType",
]

ObjectType = Literal["person", "animal", "object"]


def _empty(annotation: Any) -> Any:
    if annotation is bool:
        return False
    return [] if get_origin(annotation) is list else ""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    _optional: ClassVar[tuple[str, ...]] = ()
    """Fields a model may leave out or set to null: they are filled with an empty value when
    parsing, instead of failing the answer. The JSON schema on the wire still requires them
    (OpenAI's strict mode allows no defaults)."""

    @model_validator(mode="before")
    @classmethod
    def _fill_optional(cls, data: Any) -> Any:
        if isinstance(data, dict):
            missing = [n for n in cls._optional if data.get(n) is None]
            if missing:
                data = {**data, **{n: _empty(cls.model_fields[n].annotation) for n in missing}}
        return data


class GlobalDescription(_Answer):
    """One sentence describing the whole image."""

    description: str = Field(
        description="One sentence: main subject or scene first, then key elements (objects, colours, "
        "lighting), then style, then mood."
    )


class GlobalFeatures(_Answer):
    """Image-wide visual features."""

    _optional: ClassVar[tuple[str, ...]] = ("style", "lighting", "color_palette", "composition")

    style: str = Field(description="Artistic or photographic style, e.g. 'photorealistic', 'flat vector art'.")
    lighting: str = Field(description="Light sources, direction and quality.")
    color_palette: str = Field(description="Dominant colours, including the background colour.")
    composition: str = Field(description="Framing, viewpoint and where the main elements sit.")


class DetectedObject(_Answer):
    """One salient object in the image."""

    name: str = Field(description="Short noun phrase naming the object, e.g. 'red umbrella'.")
    type: ObjectType = Field(description="'person', 'animal' or 'object'.")


class ObjectList(_Answer):
    """The most salient objects, most important first."""

    _optional: ClassVar[tuple[str, ...]] = ("objects",)

    objects: list[DetectedObject] = Field(description="The most salient objects, most important first.")


_DETAIL_FIELDS = ("color", "material", "position", "texture", "size")


class _Details(_Answer):
    color: str = Field(description="Colours of the object.")
    material: str = Field(description="What it is made of, or its surface (skin, fur, metal, ...).")
    position: str = Field(description="Where it is in the frame, e.g. 'top left', 'centre foreground'.")
    texture: str = Field(description="Surface texture.")
    size: str = Field(description="Its size relative to the frame, e.g. 'small', 'large', 'fills the frame'.")


class PersonDetails(_Details):
    """Attributes of a person in the image."""

    _optional: ClassVar[tuple[str, ...]] = (*_DETAIL_FIELDS, "posture", "expression", "clothing")

    posture: str = Field(description="Pose or action.")
    expression: str = Field(description="Facial expression.")
    clothing: str = Field(description="Clothing and accessories.")


class AnimalDetails(_Details):
    """Attributes of an animal in the image."""

    _optional: ClassVar[tuple[str, ...]] = (*_DETAIL_FIELDS, "species", "posture", "expression")

    species: str = Field(description="Species or breed.")
    posture: str = Field(description="Pose or action.")
    expression: str = Field(description="Expression or demeanour.")


class ThingDetails(_Details):
    """Attributes of an inanimate object in the image."""

    _optional: ClassVar[tuple[str, ...]] = (*_DETAIL_FIELDS, "function", "state")

    function: str = Field(description="What the object is for.")
    state: str = Field(description="Its state, e.g. 'open', 'worn', 'lit'.")


class Relationships(_Answer):
    """How the objects relate to each other."""

    _optional: ClassVar[tuple[str, ...]] = ("relationships",)

    relationships: list[str] = Field(
        description="Short statements such as 'the cat sits on the chair' or 'the lamp is left of the sofa'."
    )


class PromptRewrite(_Answer):
    """A description rewritten as a text-to-image prompt."""

    prompt: str = Field(description="The text-to-image prompt, and nothing else.")


class PromptVariants(_Answer):
    """Alternative phrasings of one prompt."""

    prompts: list[str] = Field(description="The requested number of prompt variants, each a complete prompt.")


class RevisedPrompt(_Answer):
    """A prompt updated with suggested edits."""

    prompt: str = Field(description="The revised text-to-image prompt, and nothing else.")


class Critique(_Answer):
    """Differences between the reference (first image) and a candidate (second image)."""

    _optional: ClassVar[tuple[str, ...]] = ("style", "composition", "content", "edits", "is_match")

    style: str = Field(description="Differences in artistic style, lighting and colour palette.")
    composition: str = Field(description="Differences in object placement, sizes and framing.")
    content: str = Field(description="Missing, extra or wrong objects, details and atmosphere.")
    edits: list[str] = Field(description="Concrete, actionable edits to the prompt, most important first.")
    is_match: bool = Field(description="True only if the two images are essentially the same picture.")


class CritiqueAndRevision(Critique):
    """A critique, the revised prompt and alternative phrasings of it, in one answer."""

    _optional: ClassVar[tuple[str, ...]] = (*Critique._optional, "variants")

    revised_prompt: str = Field(description="The current prompt with the edits applied.")
    variants: list[str] = Field(description="The requested number of alternative phrasings of the revised prompt.")


class SimilarityRating(_Answer):
    """A judge's 1-5 ratings of how closely the second image (a regeneration) matches the first (the reference)."""

    aesthetic: int = Field(
        ge=1,
        le=5,
        description="Aesthetic similarity, 1-5: style, colour palette, lighting and rendering. "
        "5 = indistinguishable, 4 = same look with small differences, 3 = clearly related look, "
        "2 = a few shared traits, 1 = unrelated.",
    )
    semantic: int = Field(
        ge=1,
        le=5,
        description="Semantic similarity, 1-5: the same objects, attributes, counts, positions and relations. "
        "5 = the same scene, 4 = one minor difference, 3 = main subject right but several differences, "
        "2 = only some elements shared, 1 = different content.",
    )
    rationale: str = Field(description="One or two sentences naming the largest differences.")


class ElementVerdict(_Answer):
    """Whether one element of the reference's checklist is in the image."""

    id: str = Field(description="The element's id, exactly as listed (e.g. 'e03').")
    verdict: Literal["yes", "partly", "no"] = Field(
        description="'yes': the element is there as described; 'partly': there but not quite as described "
        "(a near colour, a neighbouring position, one of two attributes); 'no': absent or clearly different."
    )
    reason: str = Field(description="A few words on what the image shows instead, or why it matches.")


class ElementVerdicts(_Answer):
    """A verdict on every element of a checklist, checked on one image."""

    _optional: ClassVar[tuple[str, ...]] = ("verdicts",)

    verdicts: list[ElementVerdict] = Field(description="One verdict per listed element, in the listed order.")
