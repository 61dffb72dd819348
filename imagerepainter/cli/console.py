"""The ``imagerepainter`` command's entry point, kept apart from :mod:`imagerepainter.cli.main` so that
a Ctrl-C at any moment ends with one line, not a traceback.

Loading the command's modules takes a few hundred milliseconds; a Ctrl-C in that time raises
``KeyboardInterrupt`` before :func:`imagerepainter.cli.main.main` (which handles it for every command)
has started. This module imports nothing heavy itself, so only the interpreter's own start is
left uncovered.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``imagerepainter`` command; a Ctrl-C while it loads prints ``interrupted`` and returns 130."""
    try:
        from .main import main as cli_main

        return cli_main(argv)
    except KeyboardInterrupt:  # cli.main handles its own; this is one before it started
        sys.stderr.write("interrupted\n")
        return 130  # 128 + SIGINT, as cli.EXIT_INTERRUPTED (not imported: that would load the command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
