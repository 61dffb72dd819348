"""Child process for the crash-resume test: runs (or resumes) a sandbox run in a folder.

    python tests/crash_child.py run|resume FOLDER LOG SEED

Rendering goes through a FunctionT2I over the sandbox renderer that appends every
rendered (prompt, seed) to LOG and sleeps a little, so a SIGKILL lands mid-run.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from imagerepainter import Repainter
from imagerepainter.backends.function_t2i import FunctionT2I
from imagerepainter.run_folder import BackendSpecs, RunFolder
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


if __name__ == "__main__":
    main()
