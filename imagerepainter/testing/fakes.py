"""Small scripted fakes for unit tests of nodes, routing and convergence.

They implement the backend protocols directly, so a test of *your* code needs no model,
no server and no torch:

* :class:`FakeMLLM` — answers every schema procedurally (or from a script) and records calls;
* :class:`FakeT2I` — a deterministic image per ``(prompt, seed)``; records requests;
* :class:`ScriptedScorer` — returns scores from a list, to drive every convergence branch.

For the real protocols, use :class:`~imagerepainter.testing.openai_server.OpenAICompatibleServer`
(HTTP) and the tiny models of :mod:`imagerepainter.testing.tiny_models`.

Example:
    >>> from imagerepainter import Repainter
    >>> from PIL import Image
    >>> rp = Repainter(mllm=FakeMLLM(), t2i=FakeT2I(), scorer=ScriptedScorer([0.1, 0.5, 0.2] * 10), max_rounds=2)
    >>> result = rp.run(Image.new("RGB", (32, 32), "white"))
    >>> result.stop_reason, result.best.score
    ('max_rounds', 0.5)
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from PIL import Image
from pydantic import BaseModel

from ..backends.base import (
    GeneratedImage,
    GenerationRequest,
    MLLMCapabilities,
    MLLMMessage,
    MLLMReply,
    T2ICapabilities,
    TokenUsage,
)

__all__ = ["FakeMLLM", "FakeT2I", "MLLMCall", "ScriptedScorer", "fake_answer"]

_COUNT = re.compile(r"^Count:\s*(\d+)", re.MULTILINE)
_PROMPT = re.compile(r"^Prompt:\s*(.+)$", re.MULTILINE)


def fake_answer(schema: type[BaseModel], text: str = "", task: Mapping[str, Any] | None = None) -> BaseModel:
    """Build a schema-valid answer procedurally: strings name their field, lists honour the count asked for,
    integers are 3 (the middle of a 1-5 scale). The prompt and count come from ``task``
    (``MLLMMessage.task``), else from ``Prompt:`` and ``Count:`` lines of ``text``.

    Example:
        >>> from imagerepainter.loop.schemas import PromptVariants
        >>> fake_answer(PromptVariants, "Prompt: a cat\\nCount: 2").prompts
        ['a cat, variant 1', 'a cat, variant 2']
        >>> fake_answer(PromptVariants, "no labels", task={"prompt": "a dog", "count": 1}).prompts  # task data wins
        ['a dog, variant 1']
        >>> from imagerepainter.loop.schemas import SimilarityRating
        >>> fake_answer(SimilarityRating).aesthetic
        3
    """
    task = task or {}
    count_match = _COUNT.search(text)
    count = int(task["count"]) if "count" in task else int(count_match.group(1)) if count_match else 2
    prompt_match = _PROMPT.search(text)
    prompt = str(task["prompt"]) if task.get("prompt") else prompt_match.group(1).strip() if prompt_match else None
    prompt = prompt or "a fake prompt"
    values: dict[str, Any] = {}
    for name, info in schema.model_fields.items():
        ann = info.annotation
        if name in ("prompt", "revised_prompt"):
            values[name] = f"{prompt}, revised" if name == "revised_prompt" else prompt
        elif name in ("prompts", "variants"):
            values[name] = [f"{prompt}, variant {i + 1}" for i in range(count)]
        elif name == "objects":
            values[name] = [{"name": "thing", "type": "object"}, {"name": "person", "type": "person"}]
        elif ann is bool:
            values[name] = False
        elif ann is int:  # e.g. a 1-5 rating: the middle of the scale
            values[name] = 3
        elif get_origin(ann) is list and _is_model(item := get_args(ann)[0]):  # e.g. a verdict per element
            values[name] = [fake_answer(item, text, task).model_dump() for _ in range(2)]
        elif get_origin(ann) is list:
            values[name] = [f"fake {name} {i + 1}" for i in range(2)]
        elif get_origin(ann) is Literal:
            values[name] = get_args(ann)[0]
        else:
            values[name] = f"fake {name}"
    return schema.model_validate(values)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@dataclass(frozen=True)
class MLLMCall:
    """One request :class:`FakeMLLM` received."""

    schema: str
    text: str
    images: int


@dataclass
class FakeMLLM:
    """An MLLM that answers from a script, falling back to :func:`fake_answer`.

    Args:
        script: Per schema name, a list of answers (dicts or schema instances) used in order,
            or a callable ``(text, images) -> answer``.
        max_images_per_call: Declared capability.
    """

    script: dict[str, list[Any] | Callable[[str, Sequence[Image.Image]], Any]] = field(default_factory=dict)
    max_images_per_call: int = 8
    accepts_images: bool = True
    name: str = "fake"
    calls: list[MLLMCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.capabilities = MLLMCapabilities(
            max_images_per_call=self.max_images_per_call, accepts_images=self.accepts_images
        )
        self._lock = threading.Lock()

    def structured(self, messages: Sequence[MLLMMessage], schema: type[BaseModel]) -> MLLMReply[Any]:
        text = "\n".join(m.text for m in messages if m.role != "system")
        images = [img for m in messages for img in m.images]
        with self._lock:
            self.calls.append(MLLMCall(schema.__name__, text, len(images)))
            entry = self.script.get(schema.__name__)
            scripted = entry.pop(0) if isinstance(entry, list) and entry else None
        answer: Any
        if callable(entry):  # called outside the lock: concurrent requests stay concurrent
            answer = entry(text, images)
        elif scripted is not None:
            answer = scripted
        else:
            task = next((m.task for m in reversed(messages) if m.task is not None), None)
            answer = fake_answer(schema, text, task)
        value = answer if isinstance(answer, schema) else schema.model_validate(answer)
        return MLLMReply(value=value, usage=TokenUsage(len(text.split()), 10), requests=1)

    def count(self, schema_name: str) -> int:
        """How many requests asked for ``schema_name``."""
        return sum(c.schema == schema_name for c in self.calls)


@dataclass
class FakeT2I:
    """Deterministic images from a hash of ``(prompt, seed)``; records every request and batch."""

    size: int = 32
    max_batch_size: int = 4
    name: str = "fake-t2i"
    block: Callable[[GenerationRequest], bool] | None = None
    """Mark requests for which this returns True as blocked (like a safety checker)."""
    requests: list[GenerationRequest] = field(default_factory=list)
    batches: int = 0

    def __post_init__(self) -> None:
        self.capabilities = T2ICapabilities(max_batch_size=self.max_batch_size, supports_negative_prompt=True)
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        with self._lock:
            self.requests.extend(requests)
            self.batches += 1
        out = []
        for r in requests:
            digest = hashlib.sha256(f"{r.prompt}|{r.seed}".encode()).digest()
            image = Image.new("RGB", (r.width or self.size, r.height or self.size), tuple(digest[:3]))
            blocked = bool(self.block and self.block(r))
            out.append(GeneratedImage(Image.new("RGB", image.size) if blocked else image, blocked=blocked))
        return out


class ScriptedScorer:
    """Returns the given scores in order, one per candidate; records how often it prepared.

    Args:
        scores: Scores handed out in order (cycled when exhausted is False → error).
        higher_is_better: Declared direction.
    """

    def __init__(self, scores: Iterable[float], *, higher_is_better: bool = True, name: str = "scripted") -> None:
        self._scores = list(scores)
        self.higher_is_better = higher_is_better
        self.bounds = (float("-inf"), float("inf"))
        self.name = name
        self.prepared = 0
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def prepare(self, reference: Image.Image) -> Any:
        with self._lock:
            self.prepared += 1
        return reference.size

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        with self._lock:
            if len(self._scores) < len(candidates):
                raise RuntimeError("ScriptedScorer ran out of scores")
            self.batches.append(len(candidates))
            out, self._scores = self._scores[: len(candidates)], self._scores[len(candidates) :]
        return out
