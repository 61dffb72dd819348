"""Regenerate a reference with the offline sandbox backends, then save the result.

    python examples/quickstart.py [OUT_DIR]

Swap the specs for real models, e.g. mllm="openai:gpt-4o-mini",
t2i="diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16", scorer="paper".
"""

from __future__ import annotations

import sys

from imagerepainter import Repainter
from imagerepainter.sandbox import random_scene, render_scene

reference = render_scene(random_scene(2), seed=2)
rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=5)
result = rp.run(reference)

print(result.summary())
for rnd in result.rounds:
    print(f"round {rnd.index}: best {rnd.best.score:.3f}, best so far {rnd.best_score_so_far:.3f}")
if len(sys.argv) > 1:
    print("saved", result.save(sys.argv[1]))
