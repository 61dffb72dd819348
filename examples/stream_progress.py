"""Follow a run as it goes with Repainter.stream().

python examples/stream_progress.py
"""

from __future__ import annotations

from imagerepainter import Repainter
from imagerepainter.sandbox import random_scene, render_scene

rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", max_rounds=4)
for event in rp.stream(render_scene(random_scene(8), seed=8)):
    if event.kind == "round":
        print(f"round {event.round}: scores {event.data['scores']}, best so far {event.data['best_score']:.3f}")
    elif event.kind == "result":
        print("stopped:", event.result.stop_reason)
