"""The loop's contract with rule-based models is data (MLLMMessage.task), not the wording of its prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from imagerepainter import Repainter
from imagerepainter.backends.base import MLLMMessage, MLLMReply
from imagerepainter.loop import prompts
from imagerepainter.sandbox import SandboxMLLM, answer, parse_prompt, random_scene, render_scene

REWORDED = {  # the same format fields, none of the labelled lines the sandbox used to parse
    "GLOBAL_DESCRIPTION": "What is in this picture?",
    "GLOBAL_FEATURES": "How does it look?",
    "OBJECT_LIST": "Name its main things ({max_objects} or fewer).",
    "OBJECT_DETAILS": "Tell me about the {type} called '{name}'.",
    "RELATIONSHIPS": "How do {names} relate?",
    "REWRITE": "Turn this into an image prompt ({style}): {description}",
    "VARIANTS": "Give {count} rewordings of '{prompt}'. {style}",
    "REVISE": "Rewrite '{prompt}' with these changes: {edits} ({suggestions}). {style}",
    "CRITIQUE": "Compare the pictures.{history}{prompt_line}",
    "PROMPT_LINE": " '{prompt}' drew the second.",
    "CRITIQUE_AND_REVISE": "Compare the pictures; '{prompt}' drew the second. Then revise it and give {count} "
    "rewordings. {style}{history}",
    "HISTORY": " Before: {rounds}",
    "HISTORY_ROUND": "{round}/{prompt}/{score}{variant}/{critique}",
}


def _signature(result: Any) -> list[tuple[int, str, int, float | None]]:
    return [(c.round, c.prompt, c.seed, c.score) for c in result.candidates]


@pytest.mark.parametrize("settings", [{}, {"combined_critique": False, "prompt_style": "natural"}])
def test_rewording_every_instruction_does_not_change_a_sandbox_run(
    settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = render_scene(random_scene(7), seed=7)

    def run() -> Any:
        return Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=4, **settings).run(reference)

    before = run()
    for name, text in REWORDED.items():
        monkeypatch.setattr(prompts, name, text)
    after = run()
    assert _signature(after) == _signature(before)
    assert after.scores[-1] > after.scores[0]  # and the loop still improves


class _Recording(SandboxMLLM):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, Any] | None]] = []

    def structured(self, messages: Sequence[MLLMMessage], schema: Any) -> MLLMReply[Any]:
        self.seen.append((schema.__name__, dict(messages[-1].task) if messages[-1].task is not None else None))
        return super().structured(messages, schema)


@pytest.mark.parametrize("combined", [True, False])
def test_the_loop_states_every_fact_of_every_request_as_task_data(combined: bool) -> None:
    mllm = _Recording()
    Repainter(mllm=mllm, t2i="sandbox", scorer="sandbox", max_rounds=3, combined_critique=combined).run(
        render_scene(random_scene(3), seed=3)
    )
    kinds = {
        "GlobalDescription": "global_description",
        "GlobalFeatures": "global_features",
        "ObjectList": "object_list",
        "ThingDetails": "object_details",
        "Relationships": "relationships",
        "PromptRewrite": "rewrite",
        "PromptVariants": "variants",
        "RevisedPrompt": "revise",
        "Critique": "critique",
        "CritiqueAndRevision": "critique_and_revise",
    }
    needed = {
        "object_list": {"max_objects"},
        "object_details": {"object"},
        "relationships": {"objects"},
        "rewrite": {"description", "style"},
        "variants": {"prompt", "count", "style"},
        "revise": {"prompt", "edits", "style"},
        "critique": {"prompt", "style", "history"},
        "critique_and_revise": {"prompt", "count", "style", "history"},
    }
    assert {schema for schema, _ in mllm.seen} >= {
        "PromptRewrite",
        "Critique" if not combined else "CritiqueAndRevision",
    }
    for schema, task in mllm.seen:
        assert task is not None and task["kind"] == kinds[schema], (schema, task)
        assert needed.get(task["kind"], set()) <= set(task), (schema, task)
    histories = [t["history"] for s, t in mllm.seen if t is not None and "history" in t]
    assert histories[0] == [] and histories[-1]  # the last critique knows the earlier rounds
    assert set(histories[-1][0]) == {"round", "prompt", "score", "best_prompt", "edits"}


def test_the_task_wins_over_the_text_and_the_text_is_the_fallback() -> None:
    text = "Prompt: a blue square at center\nCount: 4"
    from_task = answer("PromptVariants", text, task={"prompt": "a red circle at top left", "count": 2})
    assert len(from_task["prompts"]) == 2
    assert all(parse_prompt(p).shapes[0].kind == "circle" for p in from_task["prompts"])
    from_text = answer("PromptVariants", text)
    assert len(from_text["prompts"]) == 4 and parse_prompt(from_text["prompts"][0]).shapes[0].kind == "square"
    task = {"prompt": "a red circle", "edits": ["change the background to navy"]}
    revised = answer("RevisedPrompt", "no labels here", task=task)
    assert parse_prompt(revised["prompt"]).background == parse_prompt("navy background").background
