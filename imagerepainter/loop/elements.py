"""Element-level fidelity: the reference's Image Understanding Tree as a checklist, and its score.

The benchmark's ``elements`` metric checks every element of a reference's tree on a regenerated
image, in one structured MLLM call (:class:`~imagerepainter.loop.schemas.ElementVerdicts`). This
module is the pure part of it, no model and no I/O:

* :func:`checklist` turns a tree into a flat list of :class:`Element` s, each with a stable id
  (``e01``, ``e02``... in tree order), a **kind** of :data:`ELEMENT_KINDS` and a text to check;
* :func:`element_request` writes the instruction that lists them;
* :func:`score_verdicts` scores the answer: ``yes`` = 1, ``partly`` = 0.5, ``no`` = 0
  (:data:`VERDICT_SCORES`), the fidelity of each kind is the mean score of its elements, and the
  overall fidelity the mean over every element answered.

What becomes an element, in tree order:

=====================  ==================================================================
tree                   elements (kind)
=====================  ==================================================================
global features        ``style``, ``lighting``, ``palette`` (``color_palette``), ``composition``
the object list        ``count``: how many main objects there are
each object            ``object`` (it is there, whatever its attributes); then one element per
                       attribute: ``color``, ``material``, ``texture``, ``size``, ``position``,
                       ``posture``, ``clothing``, ``expression``, ``species``, ``state``;
                       any other attribute (``function``...) is ``other``
each relationship      ``relation``
=====================  ==================================================================

Empty values (``""``, ``"unknown"``, ``"not visible"``...) are not elements: nothing was seen.

Example:
    >>> tree = {"global_description": "a cat on a mat",
    ...         "global_features": {"style": "photo", "lighting": "", "color_palette": "warm browns",
    ...                             "composition": "centered"},
    ...         "objects": [{"name": "cat", "type": "animal", "attributes": {"color": "ginger",
    ...                      "expression": "not visible"}}],
    ...         "relationships": ["the cat sits on the mat"]}
    >>> [(e.id, e.kind, e.text) for e in checklist(tree)]  # doctest: +NORMALIZE_WHITESPACE
    [('e01', 'style', 'style: photo'), ('e02', 'palette', 'color palette: warm browns'),
     ('e03', 'composition', 'composition: centered'), ('e04', 'count', '1 main object in all'),
     ('e05', 'object', 'cat is present'), ('e06', 'color', 'cat — color: ginger'),
     ('e07', 'relation', 'the cat sits on the mat')]
    >>> scores = score_verdicts(checklist(tree), [{"id": "e05", "verdict": "yes"}, {"id": "e06", "verdict": "partly"}])
    >>> scores.kinds, scores.fidelity, scores.unanswered
    ({'object': 1.0, 'color': 0.5}, 0.75, 5)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .understanding import clean_value

__all__ = [
    "ATTRIBUTE_KINDS",
    "ELEMENTS_INSTRUCTION",
    "ELEMENT_KINDS",
    "GLOBAL_KINDS",
    "VERDICT_SCORES",
    "Element",
    "ElementScores",
    "Verdict",
    "checklist",
    "checklist_lines",
    "element_request",
    "score_verdicts",
]

Verdict = Literal["yes", "partly", "no"]

VERDICT_SCORES: dict[str, float] = {"yes": 1.0, "partly": 0.5, "no": 0.0}
"""What each verdict scores: an element there as described is 1, there but not quite 0.5, absent 0."""

GLOBAL_KINDS: dict[str, str] = {
    "style": "style",
    "lighting": "lighting",
    "color_palette": "palette",
    "composition": "composition",
}
"""The tree's global features and the element kind each becomes."""

ATTRIBUTE_KINDS: dict[str, str] = {
    "color": "color",
    "material": "material",
    "texture": "texture",
    "size": "size",
    "position": "position",
    "posture": "posture",
    "clothing": "clothing",
    "expression": "expression",
    "species": "species",
    "state": "state",
}
"""An object's attributes and the element kind each becomes (any other attribute is ``other``)."""

ELEMENT_KINDS: tuple[str, ...] = (
    "object",
    "count",
    *ATTRIBUTE_KINDS.values(),
    "other",
    "relation",
    *GLOBAL_KINDS.values(),
)
"""Every kind an element can have, in report order (a closed set)."""

ELEMENTS_INSTRUCTION = (
    "You are checking an image against a checklist written from another picture. For each element below, "
    "look at the image and answer whether that element is there as described: 'yes' (there, as described), "
    "'partly' (there but not quite: a near colour, a neighbouring position, a similar pose) or 'no' (absent "
    "or clearly different). Each line is '- <id> [<kind>] <element>'; an object's attribute is written "
    "'<object> — <attribute>: <value>'. Judge only what is visible, each element on its own (an object in "
    "the wrong colour is still present). Answer every id once, in order, with a reason of a few words."
)
"""The instruction of the ``elements`` metric (sent with the regenerated image and the checklist)."""


@dataclass(frozen=True)
class Element:
    """One checkable element of a reference's tree."""

    id: str
    """Stable within its checklist: ``e01``, ``e02``... in tree order."""
    kind: str
    """One of :data:`ELEMENT_KINDS`."""
    text: str
    """What to check, as the MLLM reads it."""
    subject: str | None = None
    """The object an ``object`` or attribute element is about (its name in the tree); None otherwise."""
    value: str | None = None
    """The attribute's or feature's value, or the count; None for objects and relations."""

    def as_task(self) -> dict[str, Any]:
        """The element as plain data (the request's task data, and what a case stores)."""
        return {"id": self.id, "kind": self.kind, "text": self.text, "subject": self.subject, "value": self.value}


def _numbered(items: Iterable[tuple[str, str, str | None, str | None]]) -> list[Element]:
    return [Element(f"e{i:02d}", kind, text, subject, value) for i, (kind, text, subject, value) in enumerate(items, 1)]


def _object_items(obj: Mapping[str, Any]) -> Iterable[tuple[str, str, str | None, str | None]]:
    name = clean_value(obj.get("name")) or "object"
    yield "object", f"{name} is present", name, None
    for key, raw in (obj.get("attributes") or {}).items():
        value = clean_value(raw)
        if value:
            yield ATTRIBUTE_KINDS.get(str(key), "other"), f"{name} — {key}: {value}", name, value


def checklist(tree: Mapping[str, Any] | None) -> list[Element]:
    """The checkable elements of an Image Understanding Tree, in tree order (see the module docstring).

    A tree with nothing in it (or ``None``) gives an empty list.
    """
    tree = tree or {}
    items: list[tuple[str, str, str | None, str | None]] = []
    features = tree.get("global_features") or {}
    for key, kind in GLOBAL_KINDS.items():
        value = clean_value(features.get(key))
        if value:
            items.append((kind, f"{key.replace('_', ' ')}: {value}", None, value))
    objects = [o for o in tree.get("objects") or [] if isinstance(o, Mapping)]
    if objects:
        n = len(objects)
        items.append(("count", f"{n} main object{'' if n == 1 else 's'} in all", None, str(n)))
    for obj in objects:
        items += _object_items(obj)
    items += [("relation", text, None, None) for r in tree.get("relationships") or [] if (text := clean_value(r))]
    return _numbered(items)


def checklist_lines(elements: Sequence[Element]) -> str:
    """The checklist as the request lists it: one ``- <id> [<kind>] <text>`` line per element."""
    return "\n".join(f"- {e.id} [{e.kind}] {e.text}" for e in elements)


def element_request(elements: Sequence[Element]) -> str:
    """The full text of an ``elements`` request: :data:`ELEMENTS_INSTRUCTION`, then the checklist."""
    return f"{ELEMENTS_INSTRUCTION}\n\nChecklist:\n{checklist_lines(elements)}"


@dataclass(frozen=True)
class ElementScores:
    """The score of one image's verdicts."""

    fidelity: float
    """Mean score over every element answered; NaN when none was."""
    kinds: dict[str, float]
    """Mean score of each kind's answered elements, in :data:`ELEMENT_KINDS` order."""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Each element with its ``verdict`` and ``reason`` (None when the answer left it out)."""
    unanswered: int = 0
    """Elements the answer gave no verdict for: not scored (neither won nor lost)."""


def score_verdicts(elements: Sequence[Element], verdicts: Iterable[Mapping[str, Any]]) -> ElementScores:
    """Score ``verdicts`` (``{"id", "verdict", "reason"}`` each) against the checklist ``elements``.

    The first verdict of an id counts; verdicts for ids not in the checklist are ignored.
    """
    given: dict[str, Mapping[str, Any]] = {}
    for v in verdicts:
        given.setdefault(str(v.get("id", "")).strip(), v)
    checks: list[dict[str, Any]] = []
    by_kind: dict[str, list[float]] = {}
    for element in elements:
        answer = given.get(element.id)
        verdict = str(answer.get("verdict")) if answer is not None else None
        if verdict not in VERDICT_SCORES:
            verdict = None
        reason = str(answer.get("reason") or "") if answer is not None else None
        checks.append(element.as_task() | {"verdict": verdict, "reason": reason})
        if verdict is not None:
            by_kind.setdefault(element.kind, []).append(VERDICT_SCORES[verdict])
    scored = [s for values in by_kind.values() for s in values]
    return ElementScores(
        fidelity=math.fsum(scored) / len(scored) if scored else math.nan,
        kinds={k: math.fsum(by_kind[k]) / len(by_kind[k]) for k in ELEMENT_KINDS if k in by_kind},
        checks=checks,
        unanswered=sum(c["verdict"] is None for c in checks),
    )
