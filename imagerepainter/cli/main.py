"""The ``imagerepainter`` command line: parse arguments, print progress, nothing more.

Commands: ``run``, ``resume``, ``demo``, ``backends``, ``serve-sandbox``. A library error
becomes one line on stderr and a non-zero exit code (2: bad input or configuration, 1: a
backend failed, 130: interrupted with Ctrl-C, 143: stopped with SIGTERM; an interrupted or
stopped run is marked so in its folder and the line names the ``resume`` command). A run
under review (``--review``) that pauses for a person prints what to review and the
``resume DIR --approve | --prompt ... | --edits ... | --stop`` commands that answer it, and
exits with 3 (it never waits for input).
Environment variables are read here and only here (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``
are passed through by ChatOpenAI itself).
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .._secrets import redact
from .._version import __version__
from ..config import PRESETS
from ..errors import BackendError, ConfigurationError, MissingDependencyError, RepainterError, ReviewError
from ..progress import ProgressLines as Progress
from .bench import add_commands as add_bench_commands
from .human import add_commands as add_human_commands
from .settings import (
    GENERATION_SETTINGS,
    LOOP_SETTINGS,
    add_setting_flags,
    help_formatter,
    int_in,
    setting_overrides,
)

if TYPE_CHECKING:
    from ..loop.review import ReviewAnswer, ReviewRequest

__all__ = ["build_parser", "main", "subcommand_parsers"]

EXIT_OK, EXIT_BACKEND, EXIT_USAGE, EXIT_PAUSED, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143


RUN_EXAMPLES = """examples:
  offline, no key, no GPU (the sandbox world):
    imagerepainter run photo.png --mllm sandbox --t2i sandbox
  OpenAI model, SDXL-turbo on a GPU:
    export OPENAI_API_KEY=...
    imagerepainter run photo.png --mllm openai:gpt-4o --scorer "paper?device=cuda" \\
        --t2i "diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16" \\
        --num-inference-steps 1 --guidance-scale 0
  a local OpenAI-compatible server (vLLM, Ollama, ...):
    imagerepainter run photo.png --mllm openai:qwen2.5-vl --base-url http://localhost:8000/v1 \\
        --t2i "diffusers:black-forest-labs/FLUX.1-schnell?device=cuda&torch_dtype=bfloat16"
  the published settings, then continue an interrupted run:
    imagerepainter run photo.png --preset paper --mllm openai:gpt-4o --out runs/paper
    imagerepainter resume runs/paper
  review each round's prompts (exits with 3 at each pause; resume answers):
    imagerepainter run photo.png --mllm sandbox --t2i sandbox --review prompt --out runs/rev
    imagerepainter resume runs/rev --prompt "a red cube on grass" --by ana"""

RESUME_EXAMPLES = """examples:
  imagerepainter resume runs/photo-20250101-120000       after Ctrl-C, a kill or a failed backend
  imagerepainter resume runs/photo-20250101-120000 --json > result.json
  OPENAI_API_KEY=... imagerepainter resume runs/paper    keys come from the environment, never the folder
  answer a run paused for review (run --review ...; exit code 3 at each pause):
  imagerepainter resume runs/rev                         says what is to be reviewed, and how to answer
  imagerepainter resume runs/rev --approve --by ana
  imagerepainter resume runs/rev --prompt "a red cube on grass" --note "the cube is red"
  imagerepainter resume runs/rev --prompt "a red cube" --prompt "a red cube, studio light"
  imagerepainter resume runs/rev --edits "make the cube red" --edits "add grass"
  imagerepainter resume runs/rev --stop"""

DEMO_EXAMPLES = """examples:
  imagerepainter demo                                    a random hidden scene (its seed is printed)
  imagerepainter demo --seed 7 --preset paper            scene 7 again, with the published settings
  imagerepainter demo --max-rounds 2 --out runs/quick --json"""

SERVE_EXAMPLES = """examples:
  imagerepainter serve-sandbox --port 8765 &
  OPENAI_API_KEY=unused imagerepainter run photo.png --mllm openai:sandbox \\
      --base-url http://127.0.0.1:8765/v1 --t2i sandbox --scorer sandbox"""

BACKENDS_EXAMPLES = """examples:
  imagerepainter backends                      what is installed, and what installs the rest
  --mllm openai:gpt-4o?temperature=0           an OpenAI model (OPENAI_API_KEY / OPENAI_BASE_URL)
  --mllm anthropic:claude-sonnet-4-5           any LangChain init_chat_model provider
  --t2i "diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16"
  --t2i "sandbox?fidelity=0.6"                 a sandbox renderer that follows prompts less faithfully
  --scorer "paper?device=cuda"                 0.5 CLIP + 0.5 DINOv2, as the paper selects
  --metrics "paper,ssim,lpips?net=vgg"         eval's metrics (lpips, dreamsim: lower is better)"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its ``--help`` is the CLI reference in docs/cli.md)."""
    parser = argparse.ArgumentParser(
        prog="imagerepainter",
        formatter_class=help_formatter,
        description="Regenerate a reference image with a multimodal LLM and a text-to-image model.",
    )
    parser.add_argument("--version", action="version", version=f"imagerepainter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(sub.add_parser, formatter_class=help_formatter)

    run = add(
        "run",
        help="regenerate a reference image",
        description="Regenerate a reference image: describe it, render, score, critique and revise until the score "
        "stops improving. Everything goes into a run folder (images, run.json, report.html) that survives a crash.",
        epilog=RUN_EXAMPLES,
    )
    run.add_argument("reference", nargs="?", help="the reference image (PNG, JPEG, WebP)")
    run.add_argument("--mllm", default="openai:gpt-4o-mini", help="MLLM spec (default: %(default)s)")
    run.add_argument("--t2i", default="diffusers:stabilityai/sdxl-turbo", help="T2I spec (default: %(default)s)")
    run.add_argument(
        "--scorer",
        help="scorer spec (default: sandbox when MLLM and T2I are sandbox specs, options or not, else paper)",
    )
    run.add_argument("--base-url", help="OpenAI-compatible server for an openai: MLLM (else OPENAI_BASE_URL)")
    run.add_argument(
        "--resume", metavar="DIR", help="continue the interrupted run in DIR instead (takes only --json, --quiet)"
    )
    _add_run_options(run, "runs/<reference stem>-<YYYYmmdd-HHMMSS>")
    add_setting_flags(run, ("max_reference_pixels",))

    resume = add(
        "resume",
        help="continue an interrupted run",
        description="Continue an interrupted run from its last checkpoint, with the settings and backend specs saved "
        "in the folder: finished rounds are kept, not paid for again. It first says what is kept and which round it "
        "continues with; a run that had already finished is only reported. A run paused for review (run --review) "
        "takes the reviewer's answer: --approve, --prompt, --edits or --stop; it then goes on to its next pause "
        "(exit code 3) or to its end.",
        epilog=RESUME_EXAMPLES,
    )
    resume.add_argument("folder", help="the run folder")
    resume.add_argument("--json", action="store_true", help="print the result as JSON")
    resume.add_argument("--quiet", action="store_true", help="no progress lines")
    answer = resume.add_argument_group("answering a review (a run paused by --review)")
    answer.add_argument("--approve", action="store_true", help="go on as shown")
    answer.add_argument(
        "--prompt",
        action="append",
        metavar="TEXT",
        help="edit: the prompt to go on with; before a round, give it once per prompt to render "
        "exactly those (at most as many as shown)",
    )
    answer.add_argument(
        "--edits",
        action="append",
        metavar="TEXT",
        help="edit a critique: its edits as they should be (one per --edits); the next prompt is revised from them",
    )
    answer.add_argument("--stop", action="store_true", help="end the run here (stop reason: reviewer_stopped)")
    answer.add_argument("--by", metavar="NAME", help="who answered (recorded with the review)")
    answer.add_argument("--note", metavar="TEXT", help="why (recorded with the review)")

    demo = add(
        "demo",
        help="run the whole loop offline on the sandbox world",
        description="Draw a random hidden scene, render it as the reference, and regenerate it with the sandbox "
        "MLLM and renderer (offline, no key, no GPU).",
        epilog=DEMO_EXAMPLES,
    )
    _add_run_options(demo, "runs/demo-<seed>-<YYYYmmdd-HHMMSS>", seed="default: random, printed and recorded")

    add(
        "backends",
        help="list backends and metrics, and what installs missing ones",
        description="List the providers of each kind of backend and the benchmark's metrics (eval --metrics), "
        "whether each can run here, and the extra that installs it. A spec is provider[:model][?option=value&...]; "
        "options are checked before anything runs.",
        epilog=BACKENDS_EXAMPLES,
    )

    serve = add(
        "serve-sandbox",
        help="serve the sandbox MLLM as an OpenAI-compatible server on 127.0.0.1",
        description="Serve the sandbox MLLM on 127.0.0.1 so the ChatOpenAI path can be tried with no model: "
        "imagerepainter run REF --mllm openai:sandbox --base-url http://127.0.0.1:PORT/v1 --t2i sandbox "
        "--scorer sandbox. Stop it with Ctrl-C.",
        epilog=SERVE_EXAMPLES,
    )
    port_help = "port on 127.0.0.1, 0 for a free one (default: %(default)s)"
    serve.add_argument("--port", type=int_in(0, 65535), default=8765, help=port_help)
    _COMMANDS.update(add_bench_commands(sub))  # eval, leaderboard (imagerepainter.cli.bench)
    # judge, judgments, agreement (imagerepainter.cli.human)
    _COMMANDS.update(add_human_commands(sub, formatter_class=help_formatter))
    return parser


_RUN_SETTINGS = (*LOOP_SETTINGS, *GENERATION_SETTINGS)
"""Settings that ``run`` and ``demo`` take as flags (``run`` also takes ``--max-reference-pixels``)."""


def _add_run_options(p: argparse.ArgumentParser, default_out: str, *, seed: str | None = None) -> None:
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="settings preset (default: %(default)s; paper: the published 3 rounds x 3 variants)",
    )
    add_setting_flags(p, _RUN_SETTINGS, defaults={"seed": seed} if seed else None)
    p.add_argument("--prompt", help="start from this prompt instead of describing the reference")
    p.add_argument("--out", help=f"run folder, new or empty (default: {default_out}, or -2, -3, ... if taken)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a summary")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return setting_overrides(args, (*_RUN_SETTINGS, "max_reference_pixels"))


def _out_dir(args: argparse.Namespace, stem: str) -> tuple[Path, bool]:
    """The run folder and whether its name is only a suggestion (the default: a free name is picked)."""
    if args.out is not None:
        if not args.out.strip():
            raise _UsageError("--out needs a folder name, not an empty string.")
        return Path(args.out), False
    return Path("runs") / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}", True


def _mllm_spec(args: argparse.Namespace) -> str:
    """The --mllm spec with --base-url added as its percent-encoded ``base_url`` option.

    Encoding keeps a URL's own ``?``, ``&`` and ``=`` from being read as spec options; the
    spec parser decodes it again. Credentials in the URL are refused by the run folder.
    """
    mllm = str(args.mllm)
    if args.base_url is None:
        return mllm
    url = urlsplit(args.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise _UsageError("--base-url needs an http(s) URL such as http://127.0.0.1:8000/v1.")  # not echoed: secrets
    if not mllm.startswith("openai:"):
        raise _UsageError(f"--base-url applies to an openai: MLLM only, not to --mllm {mllm!r}.")
    return mllm + ("&" if "?" in mllm else "?") + "base_url=" + quote(args.base_url, safe=":/")


def _refuse_resume_with_run_options(args: argparse.Namespace) -> None:
    """``run --resume DIR`` continues with the saved settings; other flags would be silently ignored."""
    defaults = vars(build_parser().parse_args(["run"]))
    allowed = {"command", "resume", "json", "quiet"}
    given = [name for name, value in vars(args).items() if name not in allowed and value != defaults.get(name)]
    if given:
        shown = ", ".join("REFERENCE" if n == "reference" else "--" + n.replace("_", "-") for n in given)
        raise _UsageError(
            f"--resume DIR continues a run with its saved settings and takes only --json and --quiet, not {shown}."
        )


def _finish(args: argparse.Namespace, folder: Any, result: Any) -> int:
    """Print the result; a run paused for review also prints what to review and how (exit code 3)."""
    if args.json:
        print(json.dumps({"folder": str(folder.path), **result.model_dump(mode="json")}, indent=2))
    else:
        print(result.summary())
        print(f"Run folder: {folder.path}\nReport:     {folder.report_path}")
    if result.review is None:
        return EXIT_OK
    print(_describe_pause(folder.path, result.review), file=sys.stderr if args.json else sys.stdout)
    return EXIT_PAUSED


def _describe_pause(path: Path, request: ReviewRequest) -> str:
    """What a paused run waits for a person to review, and the commands that answer it."""
    from ..loop.review import describe_request

    lines = [f"Paused for review: {describe_request(request)}."]
    critique = request.get("critique") or {}
    if request["kind"] == "prompt":
        lines.append(f"Prompts round {request['round']} renders:")
        lines += [f"  {i}. {p}" for i, p in enumerate(request["prompts"], 1)]
    else:
        edits = critique.get("edits") or []
        lines.append("The critique's edits:" if edits else "The critique proposes no edits.")
        lines += [f"  - {edit}" for edit in edits]
        lines.append(f"Next prompt: {request['prompt']}")
        if request["prompts"]:
            lines.append("Variants proposed for the next round:")
            lines += [f"  {i}. {p}" for i, p in enumerate(request["prompts"], 1)]
    cmd, shown = _resume_cmd(path), len(request["prompts"])
    if request["kind"] == "prompt":
        several = f" (or one --prompt per prompt to render, at most {shown})" if shown > 1 else ""
        change = [f"{cmd} --prompt TEXT        every candidate renders TEXT{several}"]
    else:
        change = [
            f"{cmd} --edits TEXT ...    the edits as they should be (the next prompt is revised from them)",
            f"{cmd} --prompt TEXT        the next round's prompt as written",
        ]
    lines.append("Answer with one of (add --by NAME and --note TEXT to record who and why):")
    lines += [f"  {c}" for c in (f"{cmd} --approve", *change, f"{cmd} --stop")]
    return "\n".join(lines)


def _resume_cmd(folder: Any) -> str:
    return f"imagerepainter resume {shlex.quote(str(getattr(folder, 'path', folder)))}"


def _review_answer(args: argparse.Namespace) -> ReviewAnswer | None:
    """The ``ReviewAnswer`` the resume flags give, or ``None`` when they give none.

    Raises:
        ReviewError: the flags do not make one answer (checked before anything is read or called).
    """
    from pydantic import ValidationError

    from ..loop.review import ReviewAnswer

    prompts, edits = args.prompt or [], args.edits or []
    actions = [flag for flag, given in (("--approve", args.approve), ("--stop", args.stop)) if given]
    if prompts or edits:
        actions.append("--prompt/--edits")
    if len(actions) > 1:
        raise ReviewError(f"Give one answer to the review, not {' and '.join(actions)}.")
    if not actions:
        if args.by is not None or args.note is not None:
            raise ReviewError("--by and --note go with an answer: --approve, --prompt, --edits or --stop.")
        return None
    fields: dict[str, Any] = {"by": args.by, "note": args.note}
    if args.approve or args.stop:
        fields["action"] = "approve" if args.approve else "stop"
    else:
        fields["action"] = "edit"
        if len(prompts) == 1:
            fields["prompt"] = prompts[0]
        elif prompts:
            fields["prompts"] = prompts
        if edits:
            fields["edits"] = edits
    try:
        return ReviewAnswer(**fields)
    except ValidationError as exc:  # a blank text
        flags = ", ".join(sorted({"--" + str(e["loc"][0]).rstrip("s") for e in exc.errors()}))
        raise ReviewError(f"{flags} needs a text, not a blank one.") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from ..backends.registry import default_scorer
    from ..runs.folder import BackendSpecs, RunFolder

    if args.resume is not None:
        _refuse_resume_with_run_options(args)
        args.folder = args.resume
        return _cmd_resume(args)
    if not args.reference:
        raise _UsageError("run needs a REFERENCE image (or --resume DIR).")
    scorer = args.scorer or default_scorer(args.mllm, args.t2i)
    specs = BackendSpecs(mllm=_mllm_spec(args), t2i=args.t2i, scorer=scorer, preset=args.preset)
    path, unique = _out_dir(args, Path(args.reference).stem)
    folder = args.run_folder = RunFolder(path)  # main() names it in the resume hint
    progress = Progress(sys.stderr, quiet=args.quiet)
    try:
        result = folder.run(
            specs, args.reference, prompt=args.prompt, overrides=_overrides(args), on_event=progress, unique=unique
        )
    except MissingDependencyError as exc:
        if default_scorer(args.mllm, args.t2i) == "sandbox":  # already the offline world: no hint
            raise
        offline = f"imagerepainter run {shlex.quote(args.reference)} --mllm sandbox --t2i sandbox"
        error = MissingDependencyError(f"{exc}; or try it offline first (no key, no GPU, no download): {offline}")
        error.extras = exc.extras
        raise error from exc
    return _finish(args, folder, result)


def _cmd_resume(args: argparse.Namespace) -> int:
    from ..runs.folder import RunFolder

    answer = _review_answer(args) if hasattr(args, "approve") else None  # run --resume DIR takes no answer
    folder = args.run_folder = RunFolder(args.folder)
    record = folder.read_record()
    if record.get("status") == "paused" and answer is None:  # nothing to build or call: say what is pending
        request = record.get("result", {}).get("review")
        if request is not None:
            print(f"The run in {folder.path} waits for an answer to its review.", file=sys.stderr)
            print(_describe_pause(folder.path, request), file=sys.stderr)
            return EXIT_PAUSED
    if answer is not None and record.get("status") != "paused":
        status = record.get("status")
        then = "nothing to answer" if status == "finished" else "continue it without an answer: " + _resume_cmd(folder)
        raise ReviewError(f"The run in {str(folder.path)!r} is not paused for a review (status: {status}); {then}.")
    progress = Progress(sys.stderr, quiet=args.quiet)

    def on_event(event: Any) -> None:
        if event.kind == "resumed" and event.data.get("finished"):  # said even with --quiet: it is the answer
            print(f"Nothing to resume: the run in {folder.path} had already finished. Its result:", file=sys.stderr)
        else:
            progress(event)

    result = folder.resume(on_event=on_event, review=answer)
    return _finish(args, folder, result)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..runs.folder import BackendSpecs, RunFolder
    from ..sandbox import random_scene, render_scene

    seed = args.seed if args.seed is not None else random.randrange(1_000_000)  # printed and recorded
    args.seed = seed
    scene = random_scene(seed)
    reference = render_scene(scene, seed=seed)
    path, unique = _out_dir(args, f"demo-{seed}")
    folder = args.run_folder = RunFolder(path)
    specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox", preset=args.preset)
    progress, untold = Progress(sys.stderr, quiet=args.quiet), not (args.quiet or args.json)

    def on_event(event: Any) -> None:  # tell the hidden scene once the run has started, not before an error
        nonlocal untold
        if untold:
            print(f"Hidden scene (seed {seed}): {scene.to_prompt()}", file=sys.stderr)
            untold = False
        progress(event)

    result = folder.run(
        specs,
        reference,
        prompt=args.prompt,
        overrides=_overrides(args),
        on_event=on_event,
        extra={"demo": {"seed": seed, "scene": scene.to_prompt()}},  # the hidden scene, kept with the run
        unique=unique,
    )
    return _finish(args, folder, result)


def _installed(missing: list[str], extra: str | None) -> str:
    """A listing's status column: available, or what is missing and the extra that installs it."""
    return f'missing {", ".join(missing)}: pip install "imagerepainter[{extra}]"' if missing else "available"


def _cmd_backends(args: argparse.Namespace) -> int:
    from .._imports import is_available
    from ..backends.registry import backend_entries

    titles = {
        "mllm": "MLLMs (--mllm)",
        "t2i": "Text-to-image (--t2i)",
        "scorer": "Scorers and metrics (--scorer, eval --metrics), and which way is better",
    }
    directions = {True: "higher", False: "lower", None: "its own"}
    print("A spec is provider[:model][?option=value&...], e.g. diffusers:stabilityai/sdxl-turbo?device=cuda")
    kind = None
    for entry in backend_entries():
        if entry.kind != kind:
            kind = entry.kind
            print(titles[kind])
        missing = [module for module in entry.requires if not is_available(module)]
        direction = f"{directions[entry.higher_is_better]:<7} " if kind == "scorer" else ""
        print(f"  {entry.provider:<10} {direction}{_installed(missing, entry.need.extra)}")
        if entry.kind == "mllm" and entry.provider == "sandbox":
            print("  (any LangChain init_chat_model provider too: anthropic:, google_genai:, ollama:, ...)")
    print(f"  {'judge':<10} {'higher':<7} available (eval --metrics only: asks the --mllm)")
    print("  (parts such as paper.clip or judge.semantic may be named alone as metrics)")
    return EXIT_OK


def _cmd_serve_sandbox(args: argparse.Namespace) -> int:
    from ..sandbox.server import sandbox_server

    server = sandbox_server(port=args.port)
    try:
        server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"Port {args.port} on 127.0.0.1 is already in use; choose another --port (0 picks a free one)."
            ) from None
        raise ConfigurationError(f"Cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}.") from None
    try:
        print(f"Sandbox MLLM serving at {server.base_url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a normal way to stop a server
        pass
    finally:
        server.close()
    return EXIT_OK


class _UsageError(Exception):
    """Bad command-line usage: reported with the subcommand's usage line, exit code 2."""


class _Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler, so a run stops exactly as on Ctrl-C (marked interrupted)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def _exit_now(code: int) -> None:
    """Exit without waiting for a backend call that may never return (a hung request, its retries).

    The run folder is already marked interrupted and closed as far as it can be; a normal exit
    would wait for the worker threads blocked in that call. SQLite keeps every committed
    checkpoint whatever the process does, and its connections are released by the OS.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def subcommand_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command of :func:`build_parser`'s parser, by name (docs/cli.md shows their help)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}  # pragma: no cover


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    return subcommand_parsers(parser).get(name, parser)


def _resume_hint(args: argparse.Namespace) -> str | None:
    """``imagerepainter resume <folder>`` when this command left a resumable run folder."""
    folder = getattr(args, "run_folder", None)
    if folder is None or not folder.record_path.is_file():
        return None
    return _resume_cmd(folder)


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
    previous = None
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _COMMANDS[args.command](args)
    except _UsageError as exc:
        _subparser(parser, args.command).error(str(exc))
    except BackendError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        if hint := _resume_hint(args):
            print(f"The finished rounds are saved; continue with: {hint}", file=sys.stderr)
        return EXIT_BACKEND
    except RepainterError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
        what = "stopped by SIGTERM" if terminated else "interrupted"
        hint = _resume_hint(args)
        print(f"{what}; continue with: {hint}" if hint else what, file=sys.stderr)
        code = EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        if getattr(getattr(args, "run_folder", None), "left_running", False):
            _exit_now(code)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_USAGE  # pragma: no cover - parser.error exits


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
