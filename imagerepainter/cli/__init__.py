"""The ``imagerepainter`` command line, all of it in one folder.

:mod:`~imagerepainter.cli.console` is the console script's entry, :mod:`~imagerepainter.cli.main`
the parser and the ``run``/``resume``/``demo``/``backends`` commands, :mod:`~imagerepainter.cli.settings`
the environment, help formatting and settings every command shares; :mod:`~imagerepainter.cli.bench`
adds the benchmark's commands (``eval``, ``leaderboard``, ...), :mod:`~imagerepainter.cli.human` and
:mod:`~imagerepainter.cli.judging` the human-agreement ones. Each parses arguments and calls the
library; none holds logic of its own.

Example:
    >>> from imagerepainter.cli import main
    >>> main(["--version"])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:  # the parser loads only when asked for
    if name == "main":
        from .main import main

        return main
    raise AttributeError(f"module 'imagerepainter.cli' has no attribute {name!r}")
