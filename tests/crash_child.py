"""Child process for the crash-resume tests: runs (or resumes) a sandbox run in a folder.

    python tests/crash_child.py run|resume FOLDER LOG SEED
    python tests/crash_child.py cli LOG -- CLI ARGUMENTS...

Rendering goes through a FunctionT2I over the sandbox renderer that appends every
rendered (prompt, seed) to LOG and sleeps a little, so a SIGKILL lands mid-run.

``cli`` runs the command line itself (``imagerepainter.cli.main.main``) with ``slow`` backends
registered: the sandbox's, each call logged to LOG with the node it belongs to (a JSON line
when it starts and one when it ends) and slowed by ``CRASH_CHILD_DELAY`` seconds, so a kill can be aimed
at any node by waiting for the LOG's k-th line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from imagerepainter import Repainter
from imagerepainter.backends.function_t2i import FunctionT2I
from imagerepainter.runs.folder import BackendSpecs, RunFolder
from imagerepainter.sandbox import SandboxT2I, random_scene, render_scene

SPECS = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox")
SETTINGS = {"max_rounds": 5, "patience": None}


def main() -> None:
    mode, folder, log, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    renderer = SandboxT2I()

    def render(requests: list[Any]) -> list[Any]:
        with open(log, "a") as fh:
            for r in requests:
                fh.write(json.dumps({"mode": mode, "prompt": r.prompt, "seed": r.seed}) + "\n")
        time.sleep(0.3)
        return renderer.generate(requests)

    def build(**kwargs: Any) -> Repainter:
        kwargs["t2i"] = FunctionT2I(render, batch=True, name="sandbox")
        return Repainter(**kwargs)

    run = RunFolder(folder)
    if mode == "run":
        run.run(SPECS, render_scene(random_scene(seed), seed=seed), overrides=SETTINGS, build=build)
    else:
        run.resume(build=build)


_NODE_OF_TASK = {
    "global_description": "describe",
    "global_features": "describe",
    "object_list": "describe",
    "object_details": "describe",
    "relationships": "describe",
    "rewrite": "describe",
    "variants": "propose",
    "critique": "critique",
    "critique_and_revise": "critique",
    "revise": "revise",
}


def _slow_backends(log: str, delay: float) -> None:
    """Register ``slow`` MLLM, T2I and scorer specs: the sandbox's, logged and slowed per call."""
    from imagerepainter.backends import register_backend
    from imagerepainter.sandbox import SandboxMLLM, SandboxScorer

    def write(line: dict[str, str]) -> None:
        with open(log, "a") as fh:
            fh.write(json.dumps(line) + "\n")

    def logged(node: str, what: str, call: Any) -> Any:
        write({"node": node, "call": what, "phase": "start"})
        time.sleep(delay)
        out = call()
        write({"node": node, "call": what, "phase": "end"})
        return out

    class SlowMLLM(SandboxMLLM):
        def structured(self, messages: Any, schema: Any) -> Any:
            task = next((m.task for m in reversed(messages) if m.task is not None), None) or {}
            node = _NODE_OF_TASK.get(task.get("kind", ""), "?")
            return logged(node, schema.__name__, lambda: super(SlowMLLM, self).structured(messages, schema))

    class SlowT2I(SandboxT2I):
        def generate(self, requests: Any) -> Any:
            return logged("generate", f"{len(requests)} images", lambda: super(SlowT2I, self).generate(requests))

    class SlowScorer(SandboxScorer):
        def score(self, prepared: Any, candidates: Any) -> Any:
            what = f"{len(candidates)} images"
            return logged("score", what, lambda: super(SlowScorer, self).score(prepared, candidates))

    register_backend("mllm", "slow", lambda model=None: SlowMLLM())
    register_backend("t2i", "slow", lambda model=None: SlowT2I())
    register_backend("scorer", "slow", lambda model=None: SlowScorer())


def cli() -> None:
    import os

    from imagerepainter.cli.main import main as cli_main

    log, arguments = sys.argv[2], sys.argv[sys.argv.index("--") + 1 :]
    _slow_backends(log, float(os.environ.get("CRASH_CHILD_DELAY", "0.05")))
    sys.exit(cli_main(arguments))


if __name__ == "__main__":
    cli() if sys.argv[1] == "cli" else main()
