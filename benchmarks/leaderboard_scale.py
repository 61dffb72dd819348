"""Peak memory and time of building a leaderboard at 512, 2,048 and 8,192 references (issue 22).

    python benchmarks/leaderboard_scale.py [--sizes 512 2048 8192] [--json scale.json]

Each size runs in a fresh interpreter. Synthetic records: 2 models x 2 modes (so every row, gain
and pairwise comparison is built), 4 categories and 2 styles (so each reference is in three
groups), one seed per reference, scores ``0.6 + model shift + mode lift + per-reference
difficulty + noise``, clipped to [0, 1]: ``4 N`` case records, 28 rows, 14 gains and 2
comparisons, each with its 9,999-resample interval.

Reported per size:

* ``records_mb``: the process's resident memory once the records exist (the data itself);
* ``peak_mb``: the process's peak resident memory (VmHWM) after building the leaderboard once;
* ``seconds``, ``cpu_seconds``: wall and CPU time of that build (on a shared machine the CPU
  time is the steadier of the two: other processes stretch the wall time, not this one's work);
* ``build_peak_mb``: peak memory traced by ``tracemalloc`` during a second, traced build (Python
  and NumPy allocations): what the build adds on top of the data.

Goal (issue 22): peak under 300 MB and under 10 s at 8,192 references.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from perf_kit import child_json

_CHILD = r"""
import json, sys, time, tracemalloc
import numpy as np
from imagerepainter.bench import CaseResult, build_leaderboard

def rss_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")

n = int(sys.argv[1])
rng = np.random.default_rng(0)
difficulty = rng.normal(0, 0.08, n)
cases = []
for model, shift in (("a", 0.05), ("b", 0.0)):
    for mode, lift in (("single", 0.0), ("repaint", 0.03)):
        values = np.clip(0.6 + shift + lift + difficulty + rng.normal(0, 0.03, n), 0, 1)
        for ref, value in enumerate(values):
            cases.append(CaseResult(
                case_id=f"{model}-{mode}-{ref}", dataset="synthetic", reference_id=f"ref-{ref:05d}",
                reference_sha256=f"{ref:064x}", category=f"c{ref % 4}", style=f"s{ref % 2}", model=model,
                model_spec="synthetic", mode=mode, seed=0, status="ok", metrics={"paper": float(value)},
                higher_is_better={"paper": True}))
build_leaderboard([c for c in cases if c.reference_id < "ref-00016"])  # imports and first calls: not timed
records = rss_mb("VmRSS")
start, cpu = time.perf_counter(), time.process_time()
board = build_leaderboard(cases)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = rss_mb("VmHWM")
del board
tracemalloc.start()  # a second build, traced (tracing slows it: not the one timed)
board = build_leaderboard(cases)
build_peak = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
print(json.dumps({"references": n, "cases": len(cases), "rows": len(board.rows), "gains": len(board.gains),
                  "comparisons": len(board.comparisons), "records_mb": round(records, 1),
                  "peak_mb": round(peak, 1), "build_peak_mb": round(build_peak, 1),
                  "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2)}))
"""


def measure(n: int) -> dict[str, Any]:
    """One size, in a fresh interpreter."""
    return child_json(_CHILD, str(n), timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    print(f"{'refs':>6} {'cases':>6} {'records MB':>10} {'peak MB':>8} {'build MB':>9} {'seconds':>8} {'cpu s':>6}")
    for n in args.sizes:
        r = measure(n)
        results.append(r)
        print(
            f"{r['references']:>6} {r['cases']:>6} {r['records_mb']:>10} {r['peak_mb']:>8} "
            f"{r['build_peak_mb']:>9} {r['seconds']:>8} {r['cpu_seconds']:>6}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
