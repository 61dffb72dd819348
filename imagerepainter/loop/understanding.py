"""The Image Understanding Tree (IUT) and its deterministic assembly into a base prompt.

The tree is plain JSON-able data (it lives in the graph state and in ``run.json``)::

    {"global_description": "...",
     "global_features": {"style": ..., "lighting": ..., "color_palette": ..., "composition": ...},
     "objects": [{"name": "cat", "type": "animal", "attributes": {"color": ..., ...}}, ...],
     "relationships": ["the cat sits on the mat", ...]}

:func:`assemble_prompt` turns it into the base prompt, in the paper's order (style, palette,
composition, global description, objects, relationships). Unlike the authors' template it
also keeps each object's position and size, which the composition of a regenerated image
depends on, and it never fails on a missing attribute.

Example:
    >>> tree = {
    ...     "global_description": "a cat on a mat",
    ...     "global_features": {"style": "photo", "lighting": "soft", "color_palette": "warm browns",
    ...                         "composition": "centered"},
    ...     "objects": [{"name": "cat", "type": "animal",
    ...                  "attributes": {"color": "ginger", "species": "tabby", "posture": "sitting",
    ...                                 "position": "center"}}],
    ...     "relationships": [],
    ... }
    >>> assemble_prompt(tree)
    'photo style, warm browns, centered, a cat on a mat, ginger cat (tabby) sitting, at center'
"""

from __future__ import annotations

import re
from typing import Any

from typing_extensions import TypedDict

__all__ = ["UnderstandingTree", "assemble_prompt", "clean_value", "describe_object"]


class UnderstandingTree(TypedDict):
    """The paper's Image Understanding Tree as plain data."""

    global_description: str
    global_features: dict[str, str]
    objects: list[dict[str, Any]]
    relationships: list[str]


_EMPTY = {"", "none", "n/a", "na", "unknown", "null", "not visible", "not applicable"}


def clean_value(value: object) -> str:
    """A tree value as text without its closing full stop; ``""`` for the words that say "nothing here".

    Example:
        >>> clean_value(" ginger. "), clean_value("Not visible"), clean_value(None)
        ('ginger', '', '')
    """
    text = str(value or "").strip().rstrip(".")
    return "" if text.lower() in _EMPTY else text


_clean = clean_value


def describe_object(obj: dict[str, Any]) -> str:
    """Render one object of the tree as a prompt phrase, skipping empty attributes.

    A person's colour belongs to what they wear, never to the person: it goes with the
    clothing ("wearing a dress in red"), or follows the name ("woman in red") when no clothing
    was described, and is left out when the clothing already names it.

    Example:
        >>> woman = {"name": "woman", "type": "person", "attributes": {"size": "large", "color": "red"}}
        >>> describe_object(woman)
        'large woman in red'
        >>> woman["attributes"].update(posture="standing", clothing="a summer dress")
        >>> describe_object(woman)
        'large woman standing wearing a summer dress in red'
        >>> woman["attributes"]["clothing"] = "a red dress"
        >>> describe_object(woman)
        'large woman standing wearing a red dress'
        >>> describe_object({"name": "mug", "type": "object", "attributes": {"color": "red", "size": "small"}})
        'small red mug'
    """
    a = {k: _clean(v) for k, v in (obj.get("attributes") or {}).items()}
    name = _clean(obj.get("name")) or "object"
    kind = obj.get("type", "object")
    if kind == "person":
        color, clothing = a.get("color"), a.get("clothing")
        dressed_in = f"in {color}" if color and not clothing else ""
        words = [a.get("size"), name, dressed_in, a.get("posture")]
        phrase = " ".join(w for w in words if w)
        if a.get("expression"):
            phrase += f" with {a['expression']} expression"
        if clothing:
            phrase += f" wearing {clothing}"
            if color and not _mentions(clothing, color):
                phrase += f" in {color}"
    elif kind == "animal":
        phrase = " ".join(w for w in (a.get("size"), a.get("color"), name) if w)
        if a.get("species") and a["species"].lower() not in name.lower():
            phrase += f" ({a['species']})"
        if a.get("posture"):
            phrase += f" {a['posture']}"
        if a.get("expression"):
            phrase += f" with {a['expression']}"
    else:
        words = [a.get("size"), a.get("color"), a.get("material"), name]
        phrase = " ".join(w for w in words if w)
        if a.get("state"):
            phrase += f", {a['state']}"
    if a.get("texture") and kind != "person":
        phrase += f", {a['texture']} texture"
    if a.get("position"):
        phrase += f", at {a['position']}"
    return phrase


def _mentions(text: str, words: str) -> bool:
    """Whether every word of ``words`` (ignoring "and" and punctuation) already appears in ``text``."""
    present = set(re.findall(r"[a-z]+", text.lower()))
    return all(w in present for w in re.findall(r"[a-z]+", words.lower()) if w != "and")


def assemble_prompt(tree: UnderstandingTree) -> str:
    """Assemble the base prompt from the tree (deterministic, no model call)."""
    features = tree.get("global_features") or {}
    parts = [
        f"{_clean(features.get('style'))} style" if _clean(features.get("style")) else "",
        _clean(features.get("color_palette")),
        _clean(features.get("composition")),
        _clean(tree.get("global_description")),
        *(describe_object(o) for o in tree.get("objects") or []),
        *(_clean(r) for r in tree.get("relationships") or []),
    ]
    return ", ".join(p for p in parts if p)
