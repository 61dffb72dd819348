"""The human-agreement commands: ``imagerepainter agreement``, and (from
:mod:`~imagerepainter.cli.judging`) ``judge`` and ``judgments``.

:func:`add_commands` adds them to the main parser and returns their handlers; errors follow
the other commands (one line on stderr, exit 2 for bad input). Everything is checked (the
folder, the judgments, the triplet file and its images, the metric names) before any metric
runs or any file is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["add_agreement_command", "add_commands"]

Handler = Callable[[argparse.Namespace], int]

AGREEMENT_EXAMPLES = """examples:
  an evaluation folder with judgments (judged on the page or imported), its metrics and two more:
    imagerepainter agreement eval-out --metrics ssim,psnr
  fit a blend of the metrics to the judgments, then rank models with it:
    imagerepainter agreement eval-out --fit
    imagerepainter eval sandbox-scenes --mllm sandbox --t2i a=sandbox --metrics people=blend:eval-out/blend.json \\
        --out eval-2
  a 2AFC triplet set made elsewhere (reference, image A, image B, choice; paths relative to the file):
    imagerepainter agreement --triplets nights/triplets.csv --metrics ssim,psnr,dinov2 --out nights-agreement"""


def add_commands(subparsers: Any, *, formatter_class: Any = argparse.HelpFormatter) -> dict[str, Handler]:
    """Add the human-agreement commands to ``subparsers``; return ``{command: handler}``.

    ``formatter_class`` is the main parser's help layout (it keeps the examples as written).
    """
    from .judging import add_judging_commands

    commands = add_judging_commands(subparsers, formatter_class=formatter_class)
    commands.update(add_agreement_command(subparsers, formatter_class=formatter_class))
    return commands


def add_agreement_command(subparsers: Any, *, formatter_class: Any = argparse.HelpFormatter) -> dict[str, Handler]:
    """Add ``agreement``; return its handler."""
    ag = subparsers.add_parser(
        "agreement",
        formatter_class=formatter_class,
        help="measure how each metric agrees with people's judgments",
        description="Write agreement.md, agreement.json and agreement.html: each metric's two-alternative "
        "forced-choice agreement with people (95% bootstrap interval over references), the human ceiling, the "
        "models ranked by people (Bradley-Terry) and Kendall's tau with each metric's ranking. On an evaluation "
        "folder: its judgments and every metric it stored; with --triplets: a CSV/JSONL of (reference, A, B, "
        "choice) scored with --metrics.",
        epilog=AGREEMENT_EXAMPLES,
    )
    ag.add_argument("folder", nargs="?", metavar="EVAL_DIR", help="an evaluation's --out folder holding judgments")
    ag.add_argument("--triplets", metavar="FILE", help="a CSV/JSONL of triplets instead of an evaluation folder")
    ag.add_argument("--metrics", help="comma-separated metrics to compute (added to an evaluation's own)")
    ag.add_argument("--mllm", help="the MLLM of a 'judge' metric named in --metrics")
    ag.add_argument("--out", help="where the reports go (default: EVAL_DIR; needed with --triplets)")
    ag.add_argument("--fit", action="store_true", help="fit a blend of the metrics to the judgments: OUT/blend.json")
    ag.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default: 0)")
    ag.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples of the references (default: %(default)s)"
    )
    return {"agreement": _cmd_agreement}


def _check(args: argparse.Namespace) -> tuple[list[str], Path]:
    if (args.folder is None) == (args.triplets is None):
        raise ConfigurationError("Give an evaluation folder (EVAL_DIR) or --triplets FILE, not both or neither.")
    if args.resamples < 100:
        raise ConfigurationError("--resamples must be at least 100 for a 95% interval.")
    metrics = [m.strip() for m in (args.metrics or "").split(",") if m.strip()]
    if args.triplets is not None:
        if not metrics:
            raise ConfigurationError("--triplets needs --metrics: the metrics to score the triplets with.")
        if not args.out:
            raise ConfigurationError("--triplets needs --out: the folder for the reports.")
    return metrics, Path(args.out or args.folder)


def _cmd_agreement(args: argparse.Namespace) -> int:
    from ..human.report import build_report, write_report
    from ..human.sources import evaluation_rows, triplet_rows

    metrics, out = _check(args)
    if args.triplets is not None:
        rows = triplet_rows(args.triplets, metrics, mllm=args.mllm)
        source = {"kind": "triplets", "path": str(args.triplets)}
    else:
        rows = evaluation_rows(args.folder, extra_metrics=metrics, mllm=args.mllm)
        source = {"kind": "evaluation", "path": str(args.folder)}
    blend = None
    if args.fit:
        from ..human.blend import fit_blend

        fit = fit_blend(rows, seed=args.seed, resamples=args.resamples)
        fit.fitted_on["source"] = source
        out.mkdir(parents=True, exist_ok=True)
        path = fit.save(out / "blend.json")
        blend = fit.to_json()
        print(f"blend: {path} (use it as --metrics people=blend:{path} or --scorer blend:{path})")
    report = build_report(rows, source=source, resamples=args.resamples, seed=args.seed, blend=blend)
    for kind, path in write_report(report, out).items():
        print(f"{kind}: {path}")
    for metric in report["metrics"]:
        print(metric["sentence"], file=sys.stderr)
    return 0
