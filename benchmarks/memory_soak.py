"""Memory of a long-lived Repainter over many runs (issue 9, item 5).

    python benchmarks/memory_soak.py [--runs 100] [--size 512] [--json memory.json]

Runs ``--runs`` sandbox runs (``max_rounds=2``, a new reference each run, rendered at
``--size`` px) on one ``Repainter``, in a fresh interpreter per configuration:

* ``default``: the default in-memory store, which lets a finished run go (its result keeps its
  images, and each result is dropped here, as a loop over references drops them);
* ``kept``: ``store=MemoryImageStore()`` passed in, which keeps every run's images (what the
  default store did before it let finished runs go).

For each it reports the process RSS after run 10, 20, 50 and the last, the image store's pixel
bytes, and the growth from run 20 to the last. A third measurement builds a ``Repainter`` per
run without ``close()`` and with the garbage collector off, and counts the worker threads left.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from perf_kit import child_json

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import gc, json, sys, threading, time
from imagerepainter import Repainter
from imagerepainter.images import MemoryImageStore
from imagerepainter.sandbox import random_scene, render_scene

mode, runs, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

if mode == "threads":
    gc.disable()
    for i in range(runs):
        rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2)
        rp.run(render_scene(random_scene(i), 64, 64))
        del rp
    time.sleep(1.0)
    left = sum(t.name.startswith("imagerepainter") for t in threading.enumerate())
    print(json.dumps({"mode": mode, "runs": runs, "threads_left": left}))
    sys.exit(0)

store = MemoryImageStore() if mode == "kept" else None
rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=2, width=size, height=size, store=store)
samples = {}
for i in range(1, runs + 1):
    result = rp.run(render_scene(random_scene(10_000 + i), size, size))
    del result
    if i in (10, 20, 50, runs):
        gc.collect()
        store_mb = round(rp.store.nbytes / 2**20, 1)
        samples[i] = {"rss_mb": round(rss_mb(), 1), "store_mb": store_mb, "images": len(rp.store)}
print(json.dumps({"mode": mode, "runs": runs, "size": size, "samples": samples}))
"""


def measure(mode: str, runs: int, size: int) -> dict[str, Any]:
    return child_json(_CHILD, mode, str(runs), str(size), env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    figures = {mode: measure(mode, args.runs, args.size) for mode in ("default", "kept")}
    figures["threads"] = measure("threads", 20, args.size)
    print(f"{args.runs} sandbox runs at {args.size} px on one Repainter (max_rounds=2):\n")
    print("| store | RSS run 10 | run 20 | run 50 | last | growth 20 -> last | store pixels (last) |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("default", "kept"):
        s = {int(k): v for k, v in figures[mode]["samples"].items()}
        last, warm = s[max(s)], s[20]
        growth = (last["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"] * 100
        print(
            f"| {mode} | {s[10]['rss_mb']} MB | {warm['rss_mb']} MB | {s[50]['rss_mb']} MB | {last['rss_mb']} MB | "
            f"{growth:+.0f}% | {last['store_mb']} MB ({last['images']} images) |"
        )
    print(
        f"\nA Repainter built per run, 20 runs, no close(), no garbage collection: "
        f"{figures['threads']['threads_left']} worker threads left."
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
