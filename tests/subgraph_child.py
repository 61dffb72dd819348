"""Child process for the parent-graph kill-and-resume test: examples/as_subgraph.py's persistent app.

    python tests/subgraph_child.py FOLDER LOG MODE

Runs ``in_folder(FOLDER)`` of the example (start, resume or read back the parent graph's run) with
the sandbox renderer behind a FunctionT2I that appends every rendered (prompt, seed) to LOG, tagged
with MODE (in MODE ``run`` it hangs in round 3, until killed). Prints the example's lines, then the
result as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from imagerepainter.backends.function_t2i import FunctionT2I
from imagerepainter.sandbox import SandboxT2I
from tests.bench_modules import example_module

HANG_AT_CALL = 3
"""In MODE ``run``, the renderer hangs in its third call (round 3), so the test's kill lands mid-render."""


def main() -> None:
    folder, log, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    example = example_module("as_subgraph")
    renderer = SandboxT2I()

    calls = 0

    def render(requests: list[Any]) -> list[Any]:
        nonlocal calls
        calls += 1
        with open(log, "a") as fh:
            for r in requests:
                fh.write(json.dumps({"mode": mode, "prompt": r.prompt, "seed": r.seed}) + "\n")
        time.sleep(60 if mode == "run" and calls == HANG_AT_CALL else 0.1)
        return renderer.generate(requests)

    result = example.in_folder(folder, t2i=FunctionT2I(render, batch=True, name="sandbox"))
    candidates = [[c.round, c.prompt, c.seed, c.score] for c in result.candidates]
    print(json.dumps({"candidates": candidates, "stop_reason": result.stop_reason, "finished": result.finished}))


if __name__ == "__main__":
    main()
