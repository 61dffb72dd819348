"""The ``imagerepainter`` command line: parse arguments, print progress, nothing more.

Commands: ``run``, ``resume``, ``demo``, ``backends``. A library error becomes one line on
stderr and a non-zero exit code (2: bad input or configuration, 1: a backend failed,
130: interrupted). Environment variables are read here and only here (``OPENAI_API_KEY``,
``OPENAI_BASE_URL`` are passed through by ChatOpenAI itself).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from ._secrets import redact
from .errors import BackendError, RepainterError

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_BACKEND, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Progress:
    """Prints one line per event of interest: round, images done, best so far, elapsed."""

    def __init__(self, stream: TextIO, *, quiet: bool = False) -> None:
        self.stream, self.quiet, self.start = stream, quiet, time.monotonic()
        self.best: float | None = None

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        elapsed = f"{time.monotonic() - self.start:6.1f}s"
        data = event.data
        if event.kind == "described":
            self._print(f"[{elapsed}] described the reference: {data.get('prompt', '')[:100]}")
        elif event.kind == "generated":
            self._print(f"[{elapsed}] round {event.round}: {data['done']}/{data['total']} candidates rendered")
        elif event.kind == "round":
            self.best = data.get("best_score")
            scores = ", ".join("blocked" if s is None else f"{s:.4f}" for s in data.get("scores", []))
            best = "n/a" if self.best is None else f"{self.best:.4f}"
            self._print(f"[{elapsed}] round {event.round} scored: {scores} | best so far {best}")
            if data.get("stop_reason"):
                self._print(f"[{elapsed}] stopping: {data['stop_reason']}")
        elif event.kind == "critique":
            edits = "; ".join(data.get("edits", [])[:3])
            self._print(f"[{elapsed}] critique of round {event.round}: {edits[:120]}")

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=100)  # fixed width: docs/cli.md embeds this help


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its ``--help`` is the CLI reference in docs/cli.md)."""
    parser = argparse.ArgumentParser(
        prog="imagerepainter",
        formatter_class=_formatter,
        description="Regenerate a reference image with a multimodal LLM and a text-to-image model.",
    )
    parser.add_argument("--version", action="version", version=f"imagerepainter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(sub.add_parser, formatter_class=_formatter)

    run = add("run", help="regenerate a reference image", description="Regenerate a reference image.")
    run.add_argument("reference", nargs="?", help="the reference image (PNG, JPEG, WebP)")
    run.add_argument("--mllm", default="openai:gpt-4o-mini", help="MLLM spec (default: %(default)s)")
    run.add_argument("--t2i", default="diffusers:stabilityai/sdxl-turbo", help="T2I spec (default: %(default)s)")
    run.add_argument("--scorer", help="scorer spec (default: sandbox when MLLM and T2I are both sandbox, else paper)")
    run.add_argument("--base-url", help="OpenAI-compatible server for an openai: MLLM (else OPENAI_BASE_URL)")
    run.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR instead")
    _add_run_options(run)

    resume = add("resume", help="continue an interrupted run", description="Continue an interrupted run.")
    resume.add_argument("folder", help="the run folder")
    resume.add_argument("--json", action="store_true", help="print the result as JSON")
    resume.add_argument("--quiet", action="store_true", help="no progress lines")

    demo = add(
        "demo",
        help="run the whole loop offline on the sandbox world",
        description="Draw a random hidden scene, render it as the reference, and regenerate it with the sandbox "
        "MLLM and renderer (offline, no key, no GPU).",
    )
    _add_run_options(demo)

    add("backends", help="list backends and what installs missing ones")

    serve = add(
        "serve-sandbox",
        help="serve the sandbox MLLM as an OpenAI-compatible server on 127.0.0.1",
        description="Serve the sandbox MLLM on 127.0.0.1 so the ChatOpenAI path can be tried with no model: "
        "imagerepainter run REF --mllm openai:sandbox --base-url http://127.0.0.1:PORT/v1 --t2i sandbox "
        "--scorer sandbox. Stop it with Ctrl-C.",
    )
    serve.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: %(default)s)")
    return parser


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=["default", "paper"], default="default", help="settings preset")
    p.add_argument("--max-rounds", type=int, help="most rounds")
    p.add_argument("--variants", type=int, help="candidates per round")
    p.add_argument("--seed", type=int, help="base seed (run: default 0; demo: random, printed and recorded)")
    p.add_argument("--target-score", type=float, help="stop once the best score reaches this")
    p.add_argument("--num-inference-steps", type=int, help="T2I denoising steps (e.g. 1 for sdxl-turbo)")
    p.add_argument("--guidance-scale", type=float, help="T2I guidance scale (e.g. 0 for sdxl-turbo)")
    p.add_argument("--height", type=int, help="image height in pixels")
    p.add_argument("--width", type=int, help="image width in pixels")
    p.add_argument("--negative-prompt", help="what the images should not contain")
    p.add_argument("--prompt", help="start from this prompt instead of describing the reference")
    p.add_argument("--out", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "max_rounds",
        "variants",
        "seed",
        "target_score",
        "num_inference_steps",
        "guidance_scale",
        "height",
        "width",
        "negative_prompt",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _out_dir(args: argparse.Namespace, stem: str) -> Path:
    if args.out:
        return Path(args.out)
    return Path("runs") / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _finish(args: argparse.Namespace, folder: Any, result: Any) -> None:
    if args.json:
        print(json.dumps({"folder": str(folder.path), **result.model_dump(mode="json")}, indent=2))
        return
    print(result.summary())
    print(f"Run folder: {folder.path}\nReport:     {folder.report_path}")


def _cmd_run(args: argparse.Namespace) -> int:
    from .run_folder import BackendSpecs, RunFolder

    if args.resume:
        return _cmd_resume(argparse.Namespace(folder=args.resume, json=args.json, quiet=args.quiet))
    if not args.reference:
        raise _UsageError("run needs a REFERENCE image (or --resume DIR).")
    mllm = args.mllm
    if args.base_url and mllm.startswith("openai:"):
        mllm += ("&" if "?" in mllm else "?") + f"base_url={args.base_url}"
    scorer = args.scorer or ("sandbox" if args.mllm == args.t2i == "sandbox" else "paper")
    specs = BackendSpecs(mllm=mllm, t2i=args.t2i, scorer=scorer, preset=args.preset)
    folder = RunFolder(_out_dir(args, Path(args.reference).stem))
    progress = Progress(sys.stderr, quiet=args.quiet)
    result = folder.run(specs, args.reference, prompt=args.prompt, overrides=_overrides(args), on_event=progress)
    _finish(args, folder, result)
    return EXIT_OK


def _cmd_resume(args: argparse.Namespace) -> int:
    from .run_folder import RunFolder

    folder = RunFolder(args.folder)
    result = folder.resume(on_event=Progress(sys.stderr, quiet=args.quiet))
    _finish(args, folder, result)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .run_folder import BackendSpecs, RunFolder
    from .sandbox import random_scene, render_scene

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)  # printed and recorded
    args.seed = seed
    scene = random_scene(seed)
    reference = render_scene(scene, seed=seed)
    folder = RunFolder(_out_dir(args, f"demo-{seed}"))
    specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox", preset=args.preset)
    if not args.quiet and not args.json:
        print(f"Hidden scene (seed {seed}): {scene.to_prompt()}", file=sys.stderr)
    result = folder.run(
        specs,
        reference,
        prompt=args.prompt,
        overrides=_overrides(args),
        on_event=Progress(sys.stderr, quiet=args.quiet),
    )
    _finish(args, folder, result)
    return EXIT_OK


def _cmd_backends(args: argparse.Namespace) -> int:
    from ._imports import is_available
    from .backends.registry import available_backends

    needs = {
        ("mllm", "openai"): ("langchain_openai", "openai"),
        ("t2i", "diffusers"): ("diffusers", "diffusers"),
        ("t2i", "openai"): ("openai", "openai"),
        ("scorer", "paper"): ("transformers", "metrics"),
        ("scorer", "clip"): ("transformers", "metrics"),
        ("scorer", "dinov2"): ("transformers", "metrics"),
        ("scorer", "ssim"): ("torchmetrics", "metrics"),
        ("scorer", "psnr"): ("torchmetrics", "metrics"),
    }
    titles = {"mllm": "MLLMs (--mllm)", "t2i": "Text-to-image (--t2i)", "scorer": "Scorers (--scorer)"}
    for kind, providers in available_backends().items():
        print(titles[kind])
        for provider in providers:
            module, extra = needs.get((kind, provider), (None, None))
            ok = module is None or (is_available(module) and (module != "diffusers" or is_available("torch")))
            status = "available" if ok else f'missing: pip install "imagerepainter[{extra}]"'
            print(f"  {provider:<10} {status}")
    return EXIT_OK


def _cmd_serve_sandbox(args: argparse.Namespace) -> int:
    from .sandbox.server import sandbox_server

    with sandbox_server(port=args.port) as server:
        print(f"Sandbox MLLM serving at {server.base_url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


class _UsageError(Exception):
    pass


_COMMANDS = {
    "run": _cmd_run,
    "resume": _cmd_resume,
    "demo": _cmd_demo,
    "backends": _cmd_backends,
    "serve-sandbox": _cmd_serve_sandbox,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``imagerepainter`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except _UsageError as exc:
        parser.error(str(exc))
    except BackendError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        thread = getattr(exc, "thread_id", None)
        if thread:
            print("The finished rounds are saved; continue with: imagerepainter resume <run folder>", file=sys.stderr)
        return EXIT_BACKEND
    except RepainterError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; continue with: imagerepainter resume <run folder>", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE  # pragma: no cover - parser.error exits


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
