"""Where a run's per-round history lives: outside the checkpointed state, one record written once.

A checkpoint holds the state of the round in progress and pointers (the best candidate so
far, the last critique, counters); rounds, critiques and the log of model calls grow with the
run, so they go to a LangGraph :class:`~langgraph.store.base.BaseStore` instead, one item per
record under the run's namespace. Checkpoints then stay the same size whatever the round, and
no record is rewritten once it is written.

The state's ``round`` counter says which records belong to the run: a node re-run after a
crash writes its record again under the same key, and records past the counter (left by a
history that a resume replaced) are never read.

Example:
    >>> from langgraph.store.memory import InMemoryStore
    >>> history = RunHistory(InMemoryStore(), "run-1")
    >>> history.put_round({"index": 1, "prompt": "a cat", "candidates": [], "best_index": None,
    ...                    "best_score_so_far": None})
    >>> history.put_round({"index": 2, "prompt": "a red cat", "candidates": [], "best_index": None,
    ...                    "best_score_so_far": None})
    >>> prompts = [r["prompt"] for r in history.read(rounds=1).rounds]
    >>> prompts
    ['a cat']
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.base import BaseStore
from typing_extensions import TypedDict

from .review import ReviewRecord
from .state import CallRecord, CritiqueRecord, RoundRecord

__all__ = ["FailedCall", "History", "RunHistory", "NAMESPACE"]

NAMESPACE = ("imagerepainter", "runs")
"""The store namespace under which each run's records live (``NAMESPACE + (run_id,)``)."""

_LIMIT = 100_000  # more items than any run writes (rounds are capped at 100)


@dataclass(frozen=True)
class History:
    """A run's records up to a round, in order."""

    rounds: list[RoundRecord] = field(default_factory=list)
    critiques: list[CritiqueRecord] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    understanding: dict[str, Any] | None = None
    """The Image Understanding Tree (``None`` when the run started from a prompt without one)."""
    reviews: list[ReviewRecord] = field(default_factory=list)
    """A person's answers to the run's reviews (the ``review`` setting), in the order given."""
    outcome: dict[str, Any] | None = None
    """The run's output (the ``RepaintOutput`` keys) as its ``finish`` node recorded it; ``None`` until
    the run finishes. A parent graph that declares only some of those keys reads the rest here."""
    failed: list[FailedCall] = field(default_factory=list)
    """What calls that failed cost (their answers never reached the state, but they were paid)."""

    def failed_usage(self) -> dict[str, int]:
        """The failed calls' requests and tokens, as ``usage`` counters.

        Example:
            >>> History(failed=[{"node": "describe", "round": 0, "schema": "ObjectList", "requests": 3,
            ...                  "input_tokens": 0, "output_tokens": 0}]).failed_usage()
            {'mllm_requests': 3, 'input_tokens': 0, 'output_tokens': 0}
        """
        return {
            "mllm_requests": sum(f["requests"] for f in self.failed),
            "input_tokens": sum(f["input_tokens"] for f in self.failed),
            "output_tokens": sum(f["output_tokens"] for f in self.failed),
        }


class FailedCall(TypedDict):
    """One MLLM call that failed: where it was asked and what it cost before it failed."""

    node: str
    round: int
    schema: str
    requests: int
    input_tokens: int
    output_tokens: int


class RunHistory:
    """The records of run ``run_id`` in ``store``."""

    def __init__(self, store: BaseStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.namespace = (*NAMESPACE, run_id)

    def put_round(self, record: RoundRecord) -> None:
        """Record a closed round (key ``round:NNNN``)."""
        self.store.put(self.namespace, f"round:{record['index']:04d}", dict(record))

    def put_critique(self, record: CritiqueRecord) -> None:
        """Record the critique made after a round (key ``critique:NNNN``; a revision replaces it)."""
        self.store.put(self.namespace, f"critique:{record['round']:04d}", dict(record))

    def put_review(self, record: ReviewRecord) -> None:
        """Record a person's answer to a review (key ``review:NNNN:<kind>``: one per round and kind)."""
        self.store.put(self.namespace, f"review:{record['round']:04d}:{record['kind']}", dict(record))

    def put_understanding(self, tree: dict[str, Any] | None) -> None:
        """Record the Image Understanding Tree the run started from."""
        if tree is not None:
            self.store.put(self.namespace, "understanding", {"tree": tree})

    def put_outcome(self, values: dict[str, Any]) -> None:
        """Record the finished run's output (key ``outcome``)."""
        self.store.put(self.namespace, "outcome", dict(values))

    def get_round(self, index: int) -> RoundRecord | None:
        """The record of round ``index``."""
        item = self.store.get(self.namespace, f"round:{index:04d}")
        return None if item is None else item.value  # type: ignore[return-value]

    def get_critique(self, round_index: int) -> CritiqueRecord | None:
        """The critique made after round ``round_index``."""
        item = self.store.get(self.namespace, f"critique:{round_index:04d}")
        return None if item is None else item.value  # type: ignore[return-value]

    def put_calls(self, node: str, round_index: int, calls: list[CallRecord]) -> None:
        """Record the model calls one node made for a round."""
        if calls:
            self.store.put(self.namespace, f"calls:{round_index:04d}:{node}", {"calls": list(calls)})

    def put_answer(self, record: CallRecord, key: str, value: dict[str, Any]) -> None:
        """Record one answered call as it arrives (key ``answer:NNNN:node:KEY``), so a node re-run
        after a failure or a crash reuses it instead of paying for it again (:meth:`get_answer`)."""
        where = f"answer:{record['round']:04d}:{record['node']}:{key}"
        self.store.put(self.namespace, where, {"record": dict(record), "value": value})

    def get_answer(self, node: str, round_index: int, key: str) -> tuple[CallRecord, dict[str, Any]] | None:
        """The recorded answer to the call ``key`` of ``node`` in round ``round_index``, and its record."""
        item = self.store.get(self.namespace, f"answer:{round_index:04d}:{node}:{key}")
        return None if item is None else (item.value["record"], item.value["value"])

    def put_failed(self, record: FailedCall) -> None:
        """Record what a failed call cost (key ``failed:NNNN:node:ID``): it counts in the run's usage."""
        self.store.put(
            self.namespace, f"failed:{record['round']:04d}:{record['node']}:{uuid.uuid4().hex}", dict(record)
        )

    def read(self, *, rounds: int) -> History:
        """The records of rounds ``1..rounds`` (calls and reviews: also those of the round in progress)."""
        found: dict[str, dict[str, Any]] = {
            item.key: item.value for item in self.store.search(self.namespace, limit=_LIMIT)
        }
        round_records: list[Any] = []
        critiques: list[Any] = []
        calls: list[Any] = []
        failed: list[Any] = []
        reviews: list[Any] = []
        understanding = found.pop("understanding", {}).get("tree")
        outcome = found.pop("outcome", None)
        for key in sorted(found):
            kind, number, *_ = key.split(":")
            index = int(number)
            if kind == "round" and index <= rounds:
                round_records.append(found[key])
            elif kind == "critique" and index <= rounds:
                critiques.append(found[key])
            elif kind == "calls" and index <= rounds + 1:
                calls.extend(found[key]["calls"])
            elif kind == "failed" and index <= rounds + 1:
                failed.append(found[key])
            elif kind == "review" and index <= rounds + (1 if key.endswith(":prompt") else 0):
                reviews.append(found[key])
        calls.sort(key=lambda c: (c["round"], _NODE_ORDER.get(c["node"], 99)))
        reviews.sort(key=lambda r: (r["round"], r["kind"] != "prompt"))  # before a round, then after it
        return History(
            rounds=round_records,
            critiques=critiques,
            calls=calls,
            understanding=understanding,
            reviews=reviews,
            outcome=outcome if outcome is not None and outcome.get("round", 0) <= rounds else None,
            failed=failed,
        )

    def delete(self) -> None:
        """Forget every record of this run."""
        for item in self.store.search(self.namespace, limit=_LIMIT):
            self.store.delete(self.namespace, item.key)
        # LangGraph's InMemoryStore keeps an empty table per deleted namespace: drop it, or a
        # long-lived store grows by one table per finished run.
        for table in (getattr(self.store, "_data", None), getattr(self.store, "_vectors", None)):
            if isinstance(table, dict) and not table.get(self.namespace, True):
                table.pop(self.namespace, None)


_NODE_ORDER = {"describe": 0, "propose": 1, "critique": 2, "revise": 3}
"""Calls of one round in the order the loop makes them: the variants proposed for round r, then
the critique after it and the revision."""
