"""Evaluation at scale (issue 22): models busy at once, batched renders and scoring, a dead model cut off.

    python benchmarks/eval_scale.py [--refs 12] [--size 512] [--json eval_scale.json] [--short]

Every model is a stand-in pipeline (:class:`imagerepainter.testing.standin.StandInT2I`) whose
call costs ``a + b * batch`` seconds (a fixed cost per pipeline call plus a cost per image, the
shape of a diffusers call on a GPU) and renders sandbox images; the MLLM is the sandbox one
answering after ``--mllm-delay`` seconds (:class:`~imagerepainter.testing.standin.DelayedMLLM`);
the metric is the sandbox one. All in one run, ratios within it:

1. ``busy``: each model's busy share of the wall (the union of its calls' time over the
   evaluation's whole wall time, describing included) with 1, 2 and 4 models at
   ``--max-concurrency`` = 2 x models, modes ``single`` and ``repaint`` (2 rounds). Goal >= 0.9
   for each model.
2. ``single``: images per second of ``single`` mode with one model whose largest batch is ``B``
   (``--batch``), against the stand-in's best possible ``B / (a + b B)``: over the span of its
   renders (steady state: first call's start to last call's end) and over the whole evaluation.
   Goal >= 0.85 for the steady state.
3. ``dead_model``: two healthy models alone, and with a third one whose every call fails with
   HTTP 500 after ``--dead-seconds`` (a dead API's retries), both at ``--max-concurrency`` 6
   (the setting a user keeps whether a model is dead or not): the extra time the healthy
   models' cases took to finish (the last healthy case's end, from the evaluation's start), as
   a share. The two runs alternate ``--repeats`` times; the share is of the medians, with each
   pair's share and their spread beside it (the shared cores move one run by a few per cent).
   Goal under 5%.
4. ``scoring``: CLIP embedding calls per case of ``single`` mode at ``--single-concurrency``
   with the loop's scorer and the metric ``paper`` on tiny random-weight CLIP and DINOv2 models
   (needs torch and transformers), with scoring merged across cases
   (:class:`~imagerepainter.bench.batching.ScoreBatcher`) and without. Calls, not time: the tiny
   models' timings say nothing about a GPU.
5. ``leaderboard``: peak memory and time of building the leaderboard at ``--leaderboard-sizes``
   synthetic references (512, 2,048 and 8,192), each in a fresh interpreter
   (``benchmarks/leaderboard_scale.py``, which also runs alone). Goal: under 300 MB and 10 s at
   8,192.

The loop's modules (LangGraph with them) are imported before the first figure: a process pays
that once (its seconds are in the JSON as ``process_imports_s``), and it would otherwise fall
on whichever figure runs first. Timings on a shared machine vary by a few per
cent between runs; the script prints a Markdown table and writes the JSON to ``--json`` (or
``$OUT/eval_scale.json`` when ``OUT`` is set).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imagerepainter.bench.runner import evaluate
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.testing.standin import DelayedMLLM, StandInT2I, busy_seconds


def references(folder: Path, count: int, size: int) -> Path:
    """``count`` sandbox scenes of ``size`` px in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        render_scene(random_scene(i), size, size).save(folder / f"scene_{i:03d}.png")
    return folder


def run(data: Path, models: dict[str, StandInT2I], args: argparse.Namespace, **kw: Any) -> tuple[Any, dict[str, float]]:
    """Evaluate ``models`` on ``data``; return the report and when each model's last case ended."""
    last: dict[str, float] = {}

    def progress(event: Any) -> None:
        if event.case is not None:
            last[event.case.model] = time.perf_counter()

    size = args.size
    kw.setdefault("settings", {"max_rounds": 2, "variants": 2, "height": size, "width": size, "patience": None})
    start = time.perf_counter()
    report = evaluate(data, mllm=DelayedMLLM(args.mllm_delay), models=models, metrics=["sandbox"],
                      out=tempfile.mkdtemp(prefix="eval-scale-"), on_progress=progress, **kw)  # fmt: skip
    return report, {m: t - start for m, t in last.items()}


def busy_figure(data: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for count in (1, 2, 4):
        models = {
            f"m{i}": StandInT2I(a=args.a, b=args.b, max_batch_size=args.batch, name=f"m{i}") for i in range(count)
        }
        report, _ = run(data, models, args, max_concurrency=2 * count)
        shares = [busy_seconds(m.intervals) / report.seconds for m in models.values()]
        out[f"{count}_models"] = {"wall_s": report.seconds, "busy_share": shares, "min": min(shares),
                                  "failed": report.failed}  # fmt: skip
    return out


def single_figure(data: Path, args: argparse.Namespace) -> dict[str, Any]:
    model = StandInT2I(a=args.a, b=args.b, max_batch_size=args.batch)
    report, _ = run(data, {"m": model}, args, modes=["single"], max_concurrency=args.single_concurrency)
    span = max(e for _, e in model.intervals) - min(s for s, _ in model.intervals)
    best = model.best_images_per_second()
    return {
        "images": model.images,
        "batches": model.batch_sizes,
        "best_images_per_s": best,
        "steady_images_per_s": model.images / span,
        "steady_ratio": model.images / span / best,
        "whole_images_per_s": model.images / report.seconds,
        "whole_ratio": model.images / report.seconds / best,
    }


def dead_figure(data: Path, args: argparse.Namespace) -> dict[str, Any]:
    def healthy() -> dict[str, StandInT2I]:
        return {f"ok{i}": StandInT2I(a=args.a, b=args.b, max_batch_size=args.batch) for i in range(2)}

    alone: list[float] = []
    with_dead: list[float] = []
    calls: list[int] = []
    skipped: list[int] = []
    for _ in range(args.repeats):  # alternated, so a busy spell of the machine falls on both
        _, per_model = run(data, healthy(), args, max_concurrency=6)
        alone.append(max(per_model.values()))
        dead = StandInT2I(a=args.dead_seconds, b=0.0, fail="HTTP 500: the server keeps failing", name="dead")
        report, per_model = run(data, {**healthy(), "dead": dead}, args, max_concurrency=6)
        with_dead.append(max(v for m, v in per_model.items() if m != "dead"))
        calls.append(len(dead.intervals))
        skipped.append(report.breaker_skipped)
    pairs = [w / a - 1 for a, w in zip(alone, with_dead, strict=True)]
    return {
        "healthy_alone_s": alone,
        "healthy_with_dead_s": with_dead,
        "added_share": statistics.median(with_dead) / statistics.median(alone) - 1,
        "added_share_pairs": pairs,
        "added_share_spread": [min(pairs), max(pairs)],
        "dead_calls": calls,
        "dead_skipped": skipped,
    }


def scoring_figure(data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """CLIP embedding calls per case with the loop's scorer and the metric ``paper`` on tiny
    random-weight models, with scoring merged across cases and without (``score_groups`` hidden).
    Each case prepares its reference twice (the loop's and the metric's: never merged)."""
    from imagerepainter.scorers import CLIPScorer, WeightedScorer
    from imagerepainter.testing.tiny_models import build_tiny_clip, build_tiny_dinov2

    root = Path(tempfile.mkdtemp(prefix="eval-scale-tiny-"))
    paper = f"paper?clip_model={build_tiny_clip(root / 'clip')}&dinov2_model={build_tiny_dinov2(root / 'dino')}"
    calls, embed, merged = [0], CLIPScorer.embed, WeightedScorer.score_groups

    def counting(self: Any, images: Any) -> Any:
        calls[0] += 1
        return embed(self, images)

    def per_case() -> float:
        calls[0] = 0
        report = evaluate(data, mllm="sandbox", models={"m": "sandbox"}, metrics=[paper], scorer=paper,
                          modes=["single"], out=tempfile.mkdtemp(prefix="eval-scale-"),
                          max_concurrency=args.single_concurrency,
                          settings={"max_rounds": 2, "variants": 2, "height": 48, "width": 48})  # fmt: skip
        return calls[0] / len(report.cases)

    CLIPScorer.embed = counting  # type: ignore[method-assign]
    try:
        per_case()  # warm up: loads the models
        with_merging = per_case()
        del WeightedScorer.score_groups  # type: ignore[attr-defined]
        without = per_case()
    finally:
        CLIPScorer.embed, WeightedScorer.score_groups = embed, merged  # type: ignore[method-assign]
    return {"clip_calls_per_case_merged": with_merging, "clip_calls_per_case_unmerged": without}


def leaderboard_figure(args: argparse.Namespace) -> dict[str, Any]:
    """Peak memory and time of one leaderboard build per size, each in a fresh interpreter."""
    from leaderboard_scale import measure  # benchmarks/ is this script's folder

    return {str(n): measure(n) for n in args.leaderboard_sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refs", type=int, default=16, help="references for the busy and dead-model figures")
    parser.add_argument("--single-refs", type=int, default=64, help="references for the single-mode figure")
    parser.add_argument("--a", type=float, default=0.2, help="seconds every stand-in call costs")
    parser.add_argument("--b", type=float, default=0.05, help="seconds each image of a call adds")
    parser.add_argument("--batch", type=int, default=4, help="the stand-in's largest batch (B)")
    parser.add_argument("--mllm-delay", type=float, default=0.02, help="seconds each MLLM answer takes")
    parser.add_argument("--single-concurrency", type=int, default=16, help="cases in flight for the single figure")
    parser.add_argument("--dead-seconds", type=float, default=1.0, help="seconds each call of the dead model takes")
    parser.add_argument("--repeats", type=int, default=5, help="runs with and without the dead model, alternated")
    parser.add_argument("--short", action="store_true", help="a quick run (fewer references, shorter costs)")
    parser.add_argument("--size", type=int, default=512, help="side of the references and renders, in pixels")
    parser.add_argument("--leaderboard-sizes", type=int, nargs="+", default=[512, 2048, 8192],
                        help="synthetic references for the leaderboard figure")  # fmt: skip
    parser.add_argument("--json", type=Path, help="where to write the JSON")
    args = parser.parse_args(argv)
    if args.short:
        args.refs, args.single_refs, args.a, args.b, args.dead_seconds, args.size = 4, 12, 0.05, 0.01, 0.2, 64
        args.leaderboard_sizes = [512]
    start = time.perf_counter()
    importlib.import_module("imagerepainter.repainter")  # the loop's imports, once per process: not in a figure
    imports = time.perf_counter() - start
    root = Path(tempfile.mkdtemp(prefix="eval-scale-refs-"))
    data = references(root / "refs", args.refs, args.size)
    single_data = references(root / "single", args.single_refs, args.size)
    figures = {
        "busy": busy_figure(data, args),
        "single": single_figure(single_data, args),
        "dead_model": dead_figure(data, args),
        "scoring": scoring_figure(data, args),
        "leaderboard": leaderboard_figure(args),
    }
    result = {"settings": {k: v for k, v in vars(args).items() if k != "json"}, "figures": figures,
              "process_imports_s": imports}  # fmt: skip
    target = args.json or (Path(os.environ["OUT"]) / "eval_scale.json" if os.environ.get("OUT") else None)
    if target is not None:
        target.write_text(json.dumps(result, indent=2, default=str))
    print(table(figures))
    return 0


def table(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    rows = ["| figure | value | goal |", "|---|---|---|"]
    for key, busy in figures["busy"].items():
        shares = ", ".join(f"{s:.2f}" for s in busy["busy_share"])
        rows.append(f"| busy / wall, {key.replace('_', ' ')} | {shares} (wall {busy['wall_s']:.1f} s) | >= 0.9 each |")
    single = figures["single"]
    rows.append(
        f"| single mode images/s vs best {single['best_images_per_s']:.1f} | steady {single['steady_ratio']:.2f}, "
        f"whole run {single['whole_ratio']:.2f} | >= 0.85 |"
    )
    dead = figures["dead_model"]
    low, high = dead["added_share_spread"]
    rows.append(
        f"| time a dead model adds to the others (median of {len(dead['added_share_pairs'])} alternated runs) | "
        f"{dead['added_share']:+.1%} (pairs {low:+.1%} to {high:+.1%}; dead model's calls "
        f"{dead['dead_calls']}, cases skipped {dead['dead_skipped']}) | < 5% |"
    )
    scoring = figures["scoring"]
    rows.append(
        f"| CLIP calls per case, loop scorer and metric `paper` (tiny models) | "
        f"{scoring['clip_calls_per_case_merged']:.2f} merged, {scoring['clip_calls_per_case_unmerged']:.2f} "
        "unmerged | fewer |"
    )
    for n, board in figures["leaderboard"].items():
        goal = "< 300 MB, < 10 s" if int(n) == 8192 else "(context)"
        measured = f"peak {board['peak_mb']} MB, {board['seconds']} s"
        rows.append(f"| leaderboard build, {int(n):,} references | {measured} | {goal} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
