"""Framework overhead, critical path and checkpoint size of the loop, as ratios from one run.

    python benchmarks/loop_overhead.py [--rounds 6] [--latency 0.05]

1. **Overhead**: the full graph (checkpointed, streamed) versus a bare Python loop making the same
   backend calls, with instant fakes. Reported as milliseconds of framework time per round and
   as the ratio of the two.
2. **Critical path**: with an MLLM whose every answer takes ``--latency`` seconds, the
   description's wall time versus the sum of its call latencies (concurrency of the
   independent Image Understanding Tree calls), and MLLM round trips per round for the two presets.
3. **Checkpoint size**: bytes of a SQLite checkpoint database per round (images live in the
   store, not in the state).

Targets (checked at the end; exit code 1 when missed): overhead under 25 ms per round; the
description's wall time under 60 % of the sequential sum; the default preset at most 1 MLLM
round trip per round after the first; under 64 kB of checkpoint per round.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from imagerepainter import Repainter
from imagerepainter.testing import FakeMLLM, FakeT2I, ScriptedScorer

REF = Image.new("RGB", (64, 64), "white")


def _bare_loop(rounds: int) -> float:
    """The same backend calls as the graph makes, with no framework around them."""
    from imagerepainter import schemas
    from imagerepainter.backends.base import GenerationRequest, MLLMMessage

    mllm, t2i, scorer = FakeMLLM(), FakeT2I(), ScriptedScorer([0.1] * (3 * rounds))
    start = time.perf_counter()
    msg = [MLLMMessage(text="x", images=(REF,))]
    for schema in (
        schemas.GlobalDescription,
        schemas.GlobalFeatures,
        schemas.ObjectList,
        schemas.ThingDetails,
        schemas.PersonDetails,
        schemas.Relationships,
        schemas.PromptRewrite,
        schemas.PromptVariants,
    ):
        mllm.structured(msg, schema)
    prepared = scorer.prepare(REF)
    for r in range(rounds):
        images = t2i.generate([GenerationRequest(prompt=f"p{r}{i}", seed=i) for i in range(3)])
        scorer.score(prepared, [g.image for g in images])
        if r < rounds - 1:
            mllm.structured([MLLMMessage(text="x", images=(REF, images[0].image))], schemas.CritiqueAndRevision)
    return time.perf_counter() - start


def _graph_loop(rounds: int, checkpointer: object | None = None) -> float:
    rp = Repainter(
        mllm=FakeMLLM(),
        t2i=FakeT2I(),
        scorer=ScriptedScorer([0.1 + i / 100 for i in range(3 * rounds)]),
        max_rounds=rounds,
        patience=None,
        checkpointer=checkpointer,
    )
    start = time.perf_counter()
    result = rp.run(REF)
    elapsed = time.perf_counter() - start
    assert len(result.rounds) == rounds
    rp.close()
    return elapsed


def overhead(rounds: int) -> dict[str, float]:
    _graph_loop(rounds), _bare_loop(rounds)  # warm imports and caches
    graph = min(_graph_loop(rounds) for _ in range(5))
    bare = min(_bare_loop(rounds) for _ in range(5))
    return {
        "graph_s": graph,
        "bare_s": bare,
        "overhead_ms_per_round": (graph - bare) / rounds * 1000,
        "ratio": graph / bare,
    }


def critical_path(latency: float) -> dict[str, float]:
    def slow(answer_fn):
        def respond(text, images):
            time.sleep(latency)
            return answer_fn(text, images)

        return respond

    from imagerepainter import schemas
    from imagerepainter.testing.fakes import fake_answer

    def answer_for(name: str):
        schema = getattr(schemas, name)
        return lambda text, images: fake_answer(schema, text)

    script = {
        name: slow(answer_for(name))
        for name in (
            "GlobalDescription",
            "GlobalFeatures",
            "ObjectList",
            "ThingDetails",
            "PersonDetails",
            "Relationships",
            "PromptRewrite",
        )
    }
    mllm = FakeMLLM(script=script)
    rp = Repainter(mllm=mllm, t2i=FakeT2I(), scorer=ScriptedScorer([0.5] * 3), max_rounds=1)
    result = rp.run(REF)
    describe_calls = [c for c in result.calls if c["node"] == "describe"]
    sequential = sum(c["seconds"] for c in describe_calls)
    out = {
        "describe_wall_s": result.timings["describe"],
        "describe_sequential_s": sequential,
        "describe_ratio": result.timings["describe"] / sequential,
    }
    for preset in ("paper", "default"):
        mllm = FakeMLLM()
        rounds = 4
        res = Repainter(
            mllm=mllm,
            t2i=FakeT2I(),
            scorer=ScriptedScorer([0.1 + i / 50 for i in range(3 * rounds)]),
            preset=preset,
            max_rounds=rounds,
            patience=None,
        ).run(REF)
        later = [c for c in res.calls if c["round"] >= 2]
        out[f"{preset}_mllm_calls_per_later_round"] = len(later) / (rounds - 1)
    return out


def checkpoint_size(rounds: int) -> dict[str, float]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ckpt.sqlite"
        conn = sqlite3.connect(db, check_same_thread=False)
        _graph_loop(rounds, SqliteSaver(conn))
        conn.commit()
        conn.close()
        size = db.stat().st_size
    return {"checkpoint_bytes": size, "checkpoint_bytes_per_round": size / rounds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    results = {**overhead(args.rounds), **critical_path(args.latency), **checkpoint_size(args.rounds)}
    for key, value in results.items():
        print(f"{key:40s} {value:12.4f}")
    checks = {
        "overhead < 25 ms/round": results["overhead_ms_per_round"] < 25,
        "describe concurrent (< 60% of sequential)": results["describe_ratio"] < 0.6,
        "default preset <= 1 MLLM call per later round": results["default_mllm_calls_per_later_round"] <= 1,
        "checkpoint < 64 kB/round": results["checkpoint_bytes_per_round"] < 64_000,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
