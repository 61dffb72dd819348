"""The benchmark harness's own cost: time per case over the loop alone, and MLLM calls for M models.

    python benchmarks/bench_harness.py [--references 6] [--models 1,2,4] [--json out.json]

1. **Overhead per case**: the same repaint cases (sandbox MLLM, renderer and scorer, one at a
   time) run by ``Repainter.run`` in a plain Python loop, and by ``evaluate`` (which also
   reads and hashes the reference, stores the description and the case in SQLite, scores
   the best image with the metric and writes it to disk). Reported as milliseconds per case.
2. **MLLM calls for M models**: descriptions (Image Understanding Tree runs) and all MLLM
   calls of an evaluation of M models in both modes. Target: one description per reference,
   whatever M (a naive script around ``Repainter`` describes M x 2 times).

Prints a table, then the figures as JSON (also written to ``--json``). Exit code 1 when a
target is missed: one description per reference for every M.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from imagerepainter import Repainter
from imagerepainter.bench.runner import evaluate
from imagerepainter.sandbox import SandboxMLLM, random_scene, render_scene

SETTINGS: dict[str, int] = {"max_rounds": 3, "variants": 3, "height": 512, "width": 512}
"""Loop settings of every run; ``--size`` sets the reference and image size (default 512 px, a real size, so
the harness's own per-image work, hashing and saving each case's best image, is paid as users pay it)."""


class CountingMLLM(SandboxMLLM):
    """The sandbox MLLM, counting answers by schema."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def structured(self, messages, schema):  # type: ignore[no-untyped-def]
        with self._lock:
            self.calls[schema.__name__] += 1
        return super().structured(messages, schema)


def _references(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"scene_{i}.png"
        render_scene(random_scene(100 + i), SETTINGS["width"], SETTINGS["height"]).save(path)
        paths.append(path)
    return paths


def overhead(refs: list[Path], root: Path, repeats: int) -> dict[str, float]:
    """Seconds per repaint case, median of ``repeats``: the loop alone versus through ``evaluate``."""
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", **SETTINGS)
    rp.run(refs[0], progress=False)  # warm up imports and caches for both
    evaluate(refs[0].parent, mllm="sandbox", models={"warm": "sandbox"}, out=root / "warm", modes=["repaint"],
             metrics=["sandbox"], settings=SETTINGS, limit=1)  # fmt: skip
    loops, harnesses = [], []
    for attempt in range(repeats):  # alternate, so both see the same machine load
        start = time.perf_counter()
        for ref in refs:
            rp.run(ref, seed=0, progress=False)
        loops.append((time.perf_counter() - start) / len(refs))
        start = time.perf_counter()
        report = evaluate(refs[0].parent, mllm="sandbox", models={"m": "sandbox"}, out=root / f"overhead-{attempt}",
                          modes=["repaint"], metrics=["sandbox"], settings=SETTINGS, max_concurrency=1)  # fmt: skip
        harnesses.append((time.perf_counter() - start) / report.computed)
    loop, harness = statistics.median(loops), statistics.median(harnesses)
    return {
        "loop_ms_per_case": loop * 1e3,
        "harness_ms_per_case": harness * 1e3,
        "overhead_ms_per_case": (harness - loop) * 1e3,
    }


def mllm_calls(refs: list[Path], root: Path, model_counts: list[int]) -> list[dict[str, float]]:
    """Descriptions and MLLM calls of an evaluation of M models in both modes."""
    rows = []
    for m in model_counts:
        mllm = CountingMLLM()
        models = {f"m{i}": f"sandbox?noise={i}" for i in range(m)}
        report = evaluate(refs[0].parent, mllm=mllm, models=models, out=root / f"calls-{m}", metrics=["sandbox"],
                          settings=SETTINGS)  # fmt: skip
        described = mllm.calls["GlobalDescription"]
        rows.append(
            {
                "models": m,
                "cases": report.computed,
                "descriptions": described,
                "descriptions_per_reference": described / len(refs),
                "naive_descriptions": len(refs) * m * 2,
                "mllm_calls": sum(mllm.calls.values()),
                "mllm_calls_per_case": sum(mllm.calls.values()) / report.computed,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--references", type=int, default=6)
    parser.add_argument("--models", default="1,2,4")
    parser.add_argument("--repeats", type=int, default=3, help="overhead: the median of this many runs")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--size", type=int, default=512, help="reference and image side in pixels")
    args = parser.parse_args(argv)
    SETTINGS.update(height=args.size, width=args.size)
    counts = [int(m) for m in args.models.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "refs").mkdir()
        refs = _references(root / "refs", args.references)
        cost = overhead(refs, root, args.repeats)
        calls = mllm_calls(refs, root, counts)
    print(
        f"Overhead per repaint case ({args.references} references of {args.size} px, sandbox backends, "
        f"one case at a time, median of {args.repeats})"
    )
    print(f"  loop alone         {cost['loop_ms_per_case']:8.1f} ms")
    print(f"  through evaluate   {cost['harness_ms_per_case']:8.1f} ms")
    print(f"  harness overhead   {cost['overhead_ms_per_case']:8.1f} ms per case")
    print("\nMLLM calls for M models, modes single + repaint")
    print("  M  cases  descriptions  per reference  naive script  MLLM calls  per case")
    for r in calls:
        print(
            f"  {r['models']:<2} {r['cases']:>5}  {r['descriptions']:>12}  {r['descriptions_per_reference']:>13.2f}"
            f"  {r['naive_descriptions']:>12}  {r['mllm_calls']:>10}  {r['mllm_calls_per_case']:>8.2f}"
        )
    figures = {"overhead": cost, "mllm_calls": calls, "references": args.references, "settings": SETTINGS}
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = all(r["descriptions_per_reference"] == 1 for r in calls)
    if not ok:
        print("MISSED: the MLLM described a reference more than once", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
