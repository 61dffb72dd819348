"""Regenerate docs/cli.md from the parser's --help (tests/test_cli.py checks they agree).

python scripts/gen_cli_docs.py
"""

from __future__ import annotations

from pathlib import Path

from imagerepainter.cli import build_parser

INTRO = """# Command line

`imagerepainter` runs the loop from a shell and writes a [run folder](run-folder.md). A library
error becomes one line on stderr and an exit code: 2 for bad input or configuration (nothing was
called), 1 when a backend failed (finished rounds are saved: `imagerepainter resume DIR`), 130 when
interrupted. `OPENAI_API_KEY` and `OPENAI_BASE_URL` are read by ChatOpenAI for `openai:` models;
keys never reach the run folder.

Examples:

```bash
imagerepainter demo --out runs/demo                       # offline, the sandbox world
imagerepainter run photo.png --mllm sandbox --t2i sandbox --scorer sandbox
imagerepainter run photo.png --mllm openai:gpt-4o \
    --t2i "diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16"
imagerepainter resume runs/photo-20261126-101500
imagerepainter serve-sandbox --port 8765                  # then: --mllm openai:sandbox --base-url http://127.0.0.1:8765/v1
```

This page is generated from `--help` by `scripts/gen_cli_docs.py`.
"""


def render() -> str:
    parser = build_parser()
    parts = [INTRO, "## imagerepainter\n\n```text\n" + parser.format_help().strip() + "\n```\n"]
    subparsers = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in subparsers.items():
        parts.append(f"## imagerepainter {name}\n\n```text\n{sub.format_help().strip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    target.write_text(render())
    print(f"wrote {target}")
