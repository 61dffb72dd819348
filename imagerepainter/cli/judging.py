"""The judging commands: ``imagerepainter judge`` and ``imagerepainter judgments import|export``.

:func:`add_judging_commands` adds them to the main parser and returns their handlers (the
package's :func:`~imagerepainter.cli.human.add_commands` calls it); errors follow
the other commands (one line on stderr; exit 2 for bad input or configuration, 130 on Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from .settings import int_in

__all__ = ["add_judging_commands"]

Handler = Callable[[argparse.Namespace], int]


JUDGE_EXAMPLES = """examples:
  imagerepainter judge eval-out                   prints the page's URL (token included); open it
  imagerepainter judge eval-out --port 8800 --repeat-share 0.2 --per-reference 3
  curl "http://127.0.0.1:8800/api/next?token=TOKEN&rater=ann"      the JSON API a script can drive"""

JUDGMENTS_EXAMPLES = """examples:
  imagerepainter judgments export eval-out judgments.csv     every judgment, as CSV (or .jsonl)
  imagerepainter judgments import eval-out crowd.csv         judgments made elsewhere, checked first"""


def add_judging_commands(subparsers: Any, *, formatter_class: Any = argparse.HelpFormatter) -> dict[str, Handler]:
    """Add ``judge`` and ``judgments`` to ``subparsers``; return ``{command: handler}``.

    ``formatter_class`` is the main parser's help layout (it keeps the examples as written).
    """
    judge = subparsers.add_parser(
        "judge",
        formatter_class=formatter_class,
        help="collect people's judgments of an evaluation's images on a local web page",
        description="Serve a judging page on 127.0.0.1: a reference above two regenerations of it (blinded, sides "
        "random), and the question which is closer (keys: left, right, down/space/t for can't tell). Pairs cover "
        "every pair of models and modes evenly; a share is shown again, sides swapped, to measure consistency. "
        "The first line of output is the page's URL with this session's token; judgments go to "
        "DIR/judgments.sqlite as they are made, and a rater resumes where they stopped. Ctrl-C stops it.",
        epilog=JUDGE_EXAMPLES,
    )
    judge.add_argument("folder", metavar="DIR", help="the evaluation's --out folder")
    judge.add_argument(
        "--port", type=int_in(0, 65535), default=0, help="port on 127.0.0.1, 0 for a free one (default: %(default)s)"
    )
    judge.add_argument("--host", choices=["127.0.0.1"], default="127.0.0.1", help="only 127.0.0.1 (the default)")
    judge.add_argument(
        "--repeat-share",
        type=float,
        default=0.1,
        metavar="F",
        help="share of pairs shown again with sides swapped, 0 to 1 (default: %(default)s)",
    )
    judge.add_argument(
        "--per-reference", type=int_in(1, 10_000), metavar="N", help="pairs per reference (default: every pair)"
    )
    judge.add_argument("--seed", type=int, default=0, help="decides the pairs, orders and sides (default: 0)")

    judgments = subparsers.add_parser(
        "judgments",
        formatter_class=formatter_class,
        help="import or export an evaluation's human judgments (CSV or JSONL)",
        description="Move judgments between DIR/judgments.sqlite and a .csv or .jsonl file (its columns are in the "
        "Human agreement guide). An import checks every row, and that its images are the best images of "
        "DIR's cases, before storing any.",
        epilog=JUDGMENTS_EXAMPLES,
    )
    judgments.add_argument("action", choices=["import", "export"], help="import FILE into DIR, or export DIR to FILE")
    judgments.add_argument("folder", metavar="DIR", help="the evaluation's --out folder")
    judgments.add_argument("file", metavar="FILE", help="a .csv or .jsonl file")
    return {"judge": _cmd_judge, "judgments": _cmd_judgments}


def _cmd_judge(args: argparse.Namespace) -> int:
    from ..human.server import JudgingServer, JudgingStudy

    study = JudgingStudy(args.folder, seed=args.seed, repeat_share=args.repeat_share, per_reference=args.per_reference)
    server = JudgingServer(study, port=args.port, host=args.host).start()
    try:
        print(server.page_url, flush=True)
        print(
            f"{len(study.pairs)} pairs ({study.showings_per_rater} showings per rater with repeats); judgments go to "
            f"{study.store.path}. Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        while True:
            time.sleep(3600)
    finally:  # Ctrl-C: requests in flight finish (each judgment is one transaction), then report
        server.close()
        print(f"{len(study.store.judgments())} judgments in {study.store.path}", file=sys.stderr, flush=True)


def _cmd_judgments(args: argparse.Namespace) -> int:
    from ..bench.store import DATABASE_NAME
    from ..human.judgments import JUDGMENTS_NAME, JudgmentStore, export_judgments, read_judgments_file

    folder = Path(args.folder)
    if not (folder / DATABASE_NAME).is_file():
        raise ConfigurationError(f"{str(folder)!r} holds no {DATABASE_NAME}; give the --out folder of an evaluation.")
    if args.action == "export":
        if not (folder / JUDGMENTS_NAME).is_file():
            raise ConfigurationError(f"{str(folder)!r} holds no {JUDGMENTS_NAME} yet; collect judgments first.")
        items = JudgmentStore(folder).judgments()
        print(f"{len(items)} judgments written to {export_judgments(items, args.file)}")
        return 0
    items = read_judgments_file(args.file)
    _check_images(folder, items)
    JudgmentStore(folder).add_many(items)
    print(f"{len(items)} judgments imported into {folder / JUDGMENTS_NAME}")
    return 0


def _check_images(folder: Path, items: list[Any]) -> None:
    """Every judgment must name two best images of the folder's cases of its reference."""
    from ..bench.store import ResultsStore

    known = {(c.reference_id, c.best_image) for c in ResultsStore(folder).cases() if c.best_image}
    for number, j in enumerate(items, start=1):
        for image in (j.image_a, j.image_b):
            if (j.reference_id, image) not in known:
                raise ConfigurationError(
                    f"judgment {number}: {image!r} is not a best image of reference {j.reference_id!r} in "
                    f"{str(folder)!r} (image paths are relative to the folder, as in `judgments export`); "
                    "nothing was imported."
                )
