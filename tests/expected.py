"""Expectations shared by several test modules."""

from __future__ import annotations

from collections import Counter

PAPER_CALLS_TWO_OBJECTS = Counter(
    # Image Understanding Tree: description, features, object list, one detail call per object
    # (2 objects), relationships (>1 object); one rewrite; one variants call per round; critique
    # and revise between rounds (not after the last).
    GlobalDescription=1,
    GlobalFeatures=1,
    ObjectList=1,
    ThingDetails=1,
    PersonDetails=1,
    Relationships=1,
    PromptRewrite=1,
    PromptVariants=3,
    Critique=2,
    RevisedPrompt=2,
)
"""The requests of one run of the ``paper`` preset when the model reports two objects (a thing and a person)."""
