"""Regenerate docs/cli.md from the parser's --help (tests/test_cli_errors.py runs ``--check``).

python scripts/gen_cli_docs.py            # rewrite docs/cli.md
python scripts/gen_cli_docs.py --check    # exit 1 if docs/cli.md is out of date; writes nothing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagerepainter.cli.main import build_parser, subcommand_parsers

DEFAULT_TARGET = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

INTRO = """# Command line

`imagerepainter` runs the loop from a shell and writes a [run folder](run-folder.md). A library
error becomes one line on stderr and an exit code: 2 for bad input or configuration (nothing was
called, and nothing is created: settings, prompt, reference and folder are checked first), 1 when
a backend failed (finished rounds are saved: `imagerepainter resume DIR`), 130 when interrupted
with Ctrl-C and 143 when stopped with SIGTERM (the run is marked `interrupted` and the message
names the `resume` command for its folder). Ctrl-C and SIGTERM act within about 2 seconds even
while a model request hangs: the command does not wait for that request (or its retries), and the
folder resumes from its last checkpoint to the same result as a run that was never stopped.

Exit codes: 0 done, 1 a backend failed, 2 bad input or configuration (or a refused review
answer), 3 paused for a person's review, 130 Ctrl-C, 143 SIGTERM. A run started with
`--review prompt` (before each round renders) and/or `--review critique` (after each critique)
pauses there: it prints what is to be reviewed (the round, the prompts, the critique's edits) and
the commands that answer it, leaves its folder `paused`, and exits with 3; it never waits for
input, so scripts and CI can run it. `imagerepainter resume DIR` alone says again what is pending
(exit 3); `resume DIR --approve`, `--prompt TEXT` (once per prompt to render exactly those),
`--edits TEXT` (repeatable; a critique review) or `--stop`, with `--by NAME` and `--note TEXT` to
record who and why, answers it, and the run goes on to its next pause (exit 3) or its end (exit
0). A bad combination of answer flags, an answer the pending review does not take, or an answer
to a folder that is not paused is one line on stderr with exit code 2, and nothing runs.

One process at a time works in a run folder: `run` and `resume` hold an OS lock on its `run.lock`
for the run's life, and a second `resume DIR` (or `run --resume DIR`) on a folder whose run is
alive is refused with exit code 2 and `The run in 'DIR' is in progress (pid N, host H); wait for it
or stop it.` The OS releases the lock however the process ends, so a run killed (even with
SIGKILL) is simply resumed.

Each run claims its folder atomically, so runs started at the same moment never share one: the
default folder is `runs/<reference stem>-<YYYYmmdd-HHMMSS>` (`runs/demo-<seed>-...` for the demo),
with `-2`, `-3`, ... added when that name is taken; an `--out` folder must be new or empty, and
one that another run claimed first is refused. A run that fails before anything was paid for (no
model call, no image; e.g. the scorer's model cannot be loaded) removes what it created, so the
same `--out` can be used again.

`OPENAI_API_KEY` and `OPENAI_BASE_URL` are read by ChatOpenAI for `openai:` models; keys never
reach the run folder. `--base-url` is saved in the run folder's backend specs, so a URL holding
credentials (`http://user:password@host/v1`, a query parameter such as `?key=...` or
`?token=...`, or a path segment shaped like a key) is refused: pass the URL without them and put
the key in `OPENAI_API_KEY`.

Examples:

```bash
imagerepainter demo --out runs/demo                       # offline, the sandbox world
imagerepainter run photo.png --mllm sandbox --t2i sandbox --scorer sandbox
imagerepainter run photo.png --mllm openai:gpt-4o \\
    --t2i "diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16"
imagerepainter resume runs/photo-20261126-101500
imagerepainter run photo.png --mllm sandbox --t2i sandbox --review prompt --out runs/rev   # exit 3: paused
imagerepainter resume runs/rev --prompt "a red cube on grass" --by ana                    # answer it
imagerepainter serve-sandbox --port 8765                  # then: --mllm openai:sandbox --base-url http://127.0.0.1:8765/v1
```

This page is generated from `--help` by `scripts/gen_cli_docs.py`.
"""


def render() -> str:
    """The text of docs/cli.md: the introduction, then every command's ``--help``."""
    parser = build_parser()
    parts = [INTRO, "## imagerepainter\n\n```text\n" + parser.format_help().strip() + "\n```\n"]
    for name, sub in subcommand_parsers(parser).items():
        parts.append(f"## imagerepainter {name}\n\n```text\n{sub.format_help().strip()}\n```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description="Regenerate docs/cli.md from `imagerepainter --help`.")
    cli.add_argument("--check", action="store_true", help="exit 1 if the page is out of date; write nothing")
    cli.add_argument("--target", type=Path, default=DEFAULT_TARGET, help="the page (default: docs/cli.md)")
    args = cli.parse_args(argv)
    text = render()
    if args.check:
        current = args.target.read_text() if args.target.is_file() else None
        if current != text:
            print(f"{args.target} is out of date: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        print(f"{args.target} is up to date")
        return 0
    args.target.write_text(text)
    print(f"wrote {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
