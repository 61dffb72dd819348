"""The benchmark's commands: ``imagerepainter eval``, ``imagerepainter leaderboard`` and ``imagerepainter verify``.

:func:`add_commands` adds them to the main parser and returns their handlers; errors
follow the other commands (one line on stderr; exit 2 for bad input or configuration).
``eval`` checks every argument (names, specs and their options, metrics, settings, prices and
budget) before it loads the dataset or touches ``--out``; it exits with 3 when ``--budget``
stopped it before every case ran (run it again to go on). Both commands end with the ranking: the leaderboard's
main rows as a table (:func:`ranking_table`), after the paths of the files written.
The environment variable ``IMAGEREPAINTER_CACHE_DIR`` (default
``~/.cache/imagerepainter``) says where named datasets are downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ConfigurationError
from .settings import GENERATION_SETTINGS, add_setting_flags, help_formatter, setting_overrides

if TYPE_CHECKING:
    from ..bench.leaderboard import Leaderboard
    from ..bench.prices import Prices

__all__ = ["CounterLine", "add_commands", "ranking_table"]

Handler = Callable[[argparse.Namespace], int]

_SETTINGS = ("max_rounds", "variants", *GENERATION_SETTINGS)
"""Loop settings ``eval`` takes as flags (the base seed is ``--seed``, shared by every model)."""


EVAL_EXAMPLES = """examples:
  offline, on generated scenes whose truth is known (no key, no GPU, no download):
    imagerepainter eval sandbox-scenes --mllm sandbox --t2i exact=sandbox \\
        --t2i loose="sandbox?fidelity=0.6" --metrics sandbox,ssim --out eval-demo
  rank two describers offline (one description per reference and describer; each critiques its cases):
    imagerepainter eval sandbox-scenes --mllm sharp=sandbox --mllm dull="sandbox?acuity=0.3" \
        --t2i exact=sandbox --metrics sandbox --out eval-describers
  the paper's content-diverse set with real models (fetched once, hashes checked):
    imagerepainter eval evalref-100 --mllm openai:gpt-4o --metrics paper,ssim,psnr,judge \\
        --t2i sdxl-turbo="diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16" \\
        --t2i flux="diffusers:black-forest-labs/FLUX.1-schnell?device=cuda&torch_dtype=bfloat16" --out eval-out
  add a model later (only its cases run), then rebuild the reports:
    imagerepainter eval evalref-100 --mllm openai:gpt-4o \\
        --t2i sd15=diffusers:stable-diffusion-v1-5/stable-diffusion-v1-5 --out eval-out
    imagerepainter leaderboard eval-out
  with prices (a TOML you write; see examples/prices.toml), stopping at 5 dollars a call:
    imagerepainter eval sandbox-scenes --mllm sandbox --t2i exact=sandbox --metrics sandbox \
        --prices examples/prices.toml --budget 5 --out eval-demo"""


LEADERBOARD_EXAMPLES = """examples:
  imagerepainter leaderboard eval-out      after eval-out/results.sqlite gained cases or models
  imagerepainter leaderboard eval-out --prices prices.toml      with dollars, at today's prices"""

VERIFY_EXAMPLES = """examples:
  imagerepainter verify eval-out                         16 stored best images, default tolerances
  imagerepainter verify eval-out --sample 100 --seed 1 --tolerance paper=0.005,ssim=0
  imagerepainter verify eval-out --mllm openai:gpt-4o    the judge too (paid MLLM calls)"""


def add_commands(subparsers: Any) -> dict[str, Handler]:
    """Add ``eval`` and ``leaderboard`` to ``subparsers``; return ``{command: handler}``."""
    ev = subparsers.add_parser(
        "eval",
        formatter_class=help_formatter,
        help="rank text-to-image models by how closely they regenerate a dataset",
        description="Regenerate every reference of DATASET with every --t2i model (the MLLM describes each "
        "reference once, for all), score the results, write results.sqlite and the leaderboard into --out, and "
        "print the ranking. Every argument is checked before the dataset is loaded or --out is touched. Run the "
        "same command again to resume; finished cases are never recomputed.",
        epilog=EVAL_EXAMPLES,
    )
    ev.add_argument("dataset", help="a folder of images, a JSONL manifest, or a named set (evalref-100)")
    ev.add_argument(
        "--mllm",
        action="append",
        required=True,
        metavar="[NAME=]SPEC",
        help="the MLLM that describes and critiques (e.g. openai:gpt-4o); or several named describers to rank "
        "(repeat: --mllm gpt4o=openai:gpt-4o --mllm qwen=openai:qwen2.5-vl?base_url=...)",
    )
    ev.add_argument(
        "--t2i",
        action="append",
        required=True,
        metavar="NAME=SPEC",
        help="a model to evaluate, named (repeat for several), e.g. sdxl=diffusers:stabilityai/sdxl-turbo",
    )
    ev.add_argument("--mode", default="single,repaint", help="single, repaint or both (default: %(default)s)")
    ev.add_argument("--metrics", default="paper", help="comma-separated metrics; the first ranks (default: paper)")
    ev.add_argument("--scorer", help="the loop's scorer (default: the first metric)")
    ev.add_argument(
        "--preset", choices=["default", "paper"], default="default", help="loop settings preset (default: %(default)s)"
    )
    ev.add_argument("--limit", type=int, help="only the first N references")
    ev.add_argument("--category", action="append", metavar="C", help="only this category (repeatable)")
    ev.add_argument("--per-category", type=int, metavar="N", help="only the first N references of each category")
    ev.add_argument("--seed", type=int, default=0, help="base seed, the same for every model (default: 0)")
    add_setting_flags(ev, _SETTINGS)  # the loop's settings, the same for every model
    ev.add_argument(
        "--executor", choices=["local", "ray"], default="local", help="where cases run (default: %(default)s)"
    )
    ev.add_argument("--ray-address", help="Ray cluster to join (e.g. ray://head:10001; default: a local one)")
    ev.add_argument("--max-concurrency", type=int, default=4, help="cases in flight at once (default: 4)")
    ev.add_argument("--retry-failed", action="store_true", help="compute the failed cases again")
    ev.add_argument("--out", required=True, help="output folder (reuse it to resume or to add a model)")
    ev.add_argument("--prices", metavar="FILE", help=_PRICES_HELP)
    ev.add_argument(
        "--budget",
        type=float,
        metavar="DOLLARS",
        help="stop starting cases once this call has spent DOLLARS (needs --prices); cases in flight finish and "
        "are kept, and running the command again computes the rest (exit code 3 when it stopped)",
    )
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    lb = subparsers.add_parser(
        "leaderboard",
        formatter_class=help_formatter,
        help="rebuild the leaderboard files from an evaluation's results.sqlite",
        description="Rebuild leaderboard.csv, leaderboard.md, leaderboard.html and leaderboard.json from "
        "DIR/results.sqlite, and print the ranking.",
        epilog=LEADERBOARD_EXAMPLES,
    )
    lb.add_argument("folder", metavar="DIR", help="the evaluation's --out folder")
    lb.add_argument("--prices", metavar="FILE", help=_PRICES_HELP)
    _add_verify(subparsers)
    return {"eval": _cmd_eval, "leaderboard": _cmd_leaderboard, "verify": _cmd_verify}


def _add_verify(subparsers: Any) -> None:
    vf = subparsers.add_parser(
        "verify",
        formatter_class=help_formatter,
        help="score a sample of an evaluation's stored images again and report metrics that drifted",
        description="Score a deterministic sample of EVAL_DIR's stored best images again with the metrics the "
        "evaluation used, in this environment, and list every metric value that moved by more than its "
        "tolerance, with how the environment differs from the one recorded. Exit 0: no drift; 1: a metric "
        "drifted; 2: bad input.",
        epilog=VERIFY_EXAMPLES,
    )
    vf.add_argument("folder", metavar="EVAL_DIR", help="the evaluation's --out folder")
    vf.add_argument("--sample", type=int, default=16, help="finished cases to score again (default: %(default)s)")
    vf.add_argument("--seed", type=int, default=0, help="seed of the sample (default: %(default)s)")
    vf.add_argument(
        "--tolerance",
        metavar="T",
        help="largest absolute difference that is not a drift: one number, or NAME=VALUE,... per metric "
        "(default: per metric kind, see docs/benchmark.md)",
    )
    vf.add_argument("--mllm", help="MLLM spec to score the judge metric again with (skipped without it)")


_PRICES_HELP = (
    "a TOML file of prices (dollars per million tokens per MLLM, per image or per GPU-hour per model; see "
    "examples/prices.toml): the reports add dollars per case and per model. No price is built in"
)
"""Prices change: the user gives them, or no report shows a dollar figure."""


def _models(items: list[str]) -> dict[str, str]:
    models: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ConfigurationError(
                f"--t2i takes NAME=SPEC (e.g. sdxl=diffusers:stabilityai/sdxl-turbo), not {item!r}."
            )
        if name.strip() in models:
            raise ConfigurationError(f"--t2i name {name.strip()!r} is given twice; give each model its own name.")
        models[name.strip()] = spec.strip()
    return models


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return setting_overrides(args, _SETTINGS)


def _cmd_eval(args: argparse.Namespace) -> int:
    from ..bench.datasets import load_dataset
    from ..bench.describer_specs import describers_from_flags
    from ..bench.environment import describe_changes
    from ..bench.runner import check_evaluation, evaluate

    if args.ray_address and args.executor != "ray":
        raise ConfigurationError("--ray-address needs --executor ray.")
    arguments: dict[str, Any] = {
        "mllm": describers_from_flags(args.mllm),
        "models": _models(args.t2i),
        "modes": [m.strip() for m in args.mode.split(",") if m.strip()],
        "metrics": [m.strip() for m in args.metrics.split(",") if m.strip()],
        "scorer": args.scorer,
        "preset": args.preset,
        "settings": _settings(args),
        "seed": args.seed,
        "max_concurrency": args.max_concurrency,
        "prices": args.prices,
        "budget": args.budget,
    }
    check_evaluation(
        **arguments, executor=args.executor
    )  # before the dataset is loaded (or downloaded) and before --out is touched
    cache = os.environ.get("IMAGEREPAINTER_CACHE_DIR")
    dataset = load_dataset(args.dataset, cache_dir=Path(cache) / "datasets" if cache else None)
    if dataset.licence:
        print(f"Dataset {dataset.name}: licence {dataset.licence}.", file=sys.stderr)
    executor: Any = args.executor
    if args.executor == "ray":
        from ..bench.ray_executor import RayExecutor

        executor = RayExecutor(address=args.ray_address, max_concurrency=args.max_concurrency)
    progress = None if args.quiet else _progress_bar(sys.stderr)
    try:
        report = evaluate(
            dataset,
            out=args.out,
            limit=args.limit,
            categories=args.category,
            per_category=args.per_category,
            executor=executor,
            retry_failed=args.retry_failed,
            on_progress=progress,
            **arguments,
        )
    finally:
        if progress is not None:
            progress.close()
    cut = f", {report.breaker_skipped} skipped" if report.breaker_skipped else ""
    print(
        f"{report.computed} cases computed ({report.failed} failed{cut}), {report.skipped} already done; "
        f"{report.descriptions_computed} descriptions computed, {report.descriptions_reused} reused.",
        file=sys.stderr,
    )
    for model, reason in report.stopped_models.items():
        print(f"stopped {model}: {reason}; the next run tries it again.", file=sys.stderr)
    if report.start_seconds:
        print(f"the executor took {report.start_seconds:.1f} s to start.", file=sys.stderr)
    if report.environment_changes:
        print(
            "the environment changed since this folder's last evaluation (the leaderboard lists it):", file=sys.stderr
        )
        print(describe_changes(report.environment_changes), file=sys.stderr)
    paths = _write_reports(report.out, report.prices)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print(f"results: {report.database}")
    _print_ranking(paths)
    if report.not_started:
        print(f"{report.not_started} cases did not start (--budget); run the same command again to compute them.",
              file=sys.stderr)  # fmt: skip
        return 3
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..bench.prices import load_prices
    from ..bench.store import DATABASE_NAME

    folder = Path(args.folder)
    if not (folder / DATABASE_NAME).is_file():
        raise ConfigurationError(f"{str(folder)!r} holds no {DATABASE_NAME}; give the --out folder of an evaluation.")
    paths = _write_reports(folder, load_prices(args.prices) if args.prices else None)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    _print_ranking(paths)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..bench.verification import format_verify_report, verify

    report = verify(args.folder, sample=args.sample, seed=args.seed, tolerance=args.tolerance, mllm=args.mllm)
    print(format_verify_report(report))
    return 0 if report.ok else 1


def _write_reports(folder: Path, prices: Prices | None) -> dict[str, Path]:
    from ..bench.environment import environment_section
    from ..bench.leaderboard import write_reports
    from ..bench.store import ResultsStore

    store = ResultsStore(folder)
    cases = store.cases()
    if not cases:
        raise ConfigurationError(f"{str(store.path)!r} holds no case yet; nothing to report.")
    primary = store.get_meta("primary_metric", default=cases[0].primary_metric)
    stop = store.get_meta("budget_stop")
    return dict(
        write_reports(
            cases,
            folder,
            primary_metric=primary,
            prices=prices,
            budget_stop=stop,
            environment=environment_section(store),
        )
    )


def _print_ranking(paths: dict[str, Path]) -> None:
    """Print the ranking of the leaderboard just written (read back from its JSON: the same object)."""
    from ..bench.leaderboard import Leaderboard

    board = Leaderboard.model_validate_json(paths["json"].read_text(encoding="utf-8"))
    if board.costs is not None:  # before the ranking, which ends the output
        from ..bench.cost_reports import cost_summary

        print(cost_summary(board.costs))
    print()
    print(ranking_table(board))


_MODEL_WIDTH = 28
"""Longer model names are shortened with an ellipsis, so the table stays within 100 columns."""


def ranking_table(board: Leaderboard) -> str:
    """The leaderboard's main rows (every reference, each mode) as a plain-text table, best first.

    One line per model and mode: rank, model, mode, mean of the primary metric, its interval, the
    references it averages (n) and the failed cases. The widest line is under 100 characters.

    Example:
        >>> from imagerepainter.bench.leaderboard import build_leaderboard
        >>> from imagerepainter.bench.records import CaseResult
        >>> cases = [CaseResult(case_id=f"{m}{r}", dataset="d", reference_id=r, reference_sha256=r * 64,
        ...     model=m, model_spec="sandbox", mode="single", seed=0, status="ok", primary_metric="ssim",
        ...     metrics={"ssim": v},
        ...     higher_is_better={"ssim": True}) for m, r, v in [("a", "1", 0.9), ("a", "2", 0.9), ("b", "1", 0.5)]]
        >>> print(ranking_table(build_leaderboard(cases)))
        Ranking by ssim (higher is better), 3 of 3 cases finished:
        rank  model  mode    mean  95% interval  n  failed
           1  a      single  0.9   [0.9, 0.9]    2       0
           2  b      single  0.5   -             1       0
    """
    direction = "higher" if board.higher_is_better else "lower"
    header = ("rank", "model", "mode", "mean", f"{board.confidence:.0%} interval", "n", "failed")
    lines = [header]
    for mode in board.modes:
        for model in board.ranking(mode):
            row = board.row(model, mode)
            if row is None:
                continue
            interval = (
                "-" if row.ci_low is None or row.ci_high is None else f"[{_num(row.ci_low)}, {_num(row.ci_high)}]"
            )
            rank = "-" if row.rank is None else str(row.rank)
            lines.append((rank, _short(model), mode, _num(row.mean), interval, str(row.n), str(row.failed)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {0, 5, 6}  # numbers that are counted line up on the right
    text = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    title = f"Ranking by {board.primary_metric} ({direction} is better), {board.ok} of {board.cases} cases finished:"
    if board.describers:  # several describers: their ranking per model follows
        from ..bench.describer_report import ranking_lines

        text += ["", *ranking_lines(board.describers)]
    return "\n".join([title, *text])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _short(name: str) -> str:
    return name if len(name) <= _MODEL_WIDTH else name[: _MODEL_WIDTH - 1] + "…"


class CounterLine:
    """A progress line without tqdm: ``done/total, failed, ETA``, rewritten in place on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.start = stream, time.monotonic()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, event: Any) -> None:
        elapsed = time.monotonic() - self.start
        eta = "?" if not event.done else f"{elapsed / event.done * (event.total - event.done):.0f}s"
        line = (
            f"cases {event.done}/{event.total} ({event.skipped} already done, {event.failed} failed) "
            f"elapsed {elapsed:.0f}s ETA {eta}"
        )
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


class _Tqdm:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event.total, file=self.stream, unit="case", desc="eval", dynamic_ncols=True)
        self.bar.n = event.done
        self.bar.set_postfix(failed=event.failed, skipped=event.skipped, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(stream: TextIO) -> Any:
    """A tqdm bar when tqdm is installed (the ``bench`` extra), else a plain counter line."""
    from .._imports import is_available

    return _Tqdm(stream) if is_available("tqdm") else CounterLine(stream)
