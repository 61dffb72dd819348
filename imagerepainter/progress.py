"""Progress of a run for people: the text of each event, as lines (the CLI) or as a bar (notebooks, terminals).

Both displays read the same :class:`~imagerepainter.repainter.RepaintEvent` stream that
:meth:`Repainter.stream <imagerepainter.Repainter.stream>` yields, and word each event with
:func:`event_lines`, so the command line and a notebook say the same thing:

- :class:`ProgressLines` prints one line per event of interest (the ``imagerepainter`` command).
- :class:`ProgressBar` keeps one bar over the run's rounds (``tqdm.auto``: a widget in Jupyter
  when ``ipywidgets`` is installed, a text bar otherwise) whose text is the latest event's line,
  so each answer of the describe stage and each slow image shows as it arrives.

:meth:`Repainter.run <imagerepainter.Repainter.run>` shows a bar by default in a Jupyter kernel and
when stderr is a terminal (see :func:`wants_progress`); ``progress=False`` turns it off. Without
``tqdm`` (``pip install "imagerepainter[notebook]"``) it prints the lines instead.

Example:
    >>> from imagerepainter.repainter import RepaintEvent
    >>> event_lines(RepaintEvent("call", 0, {"node": "describe", "call": "ObjectList", "seconds": 0.42}))
    ['describing: ObjectList answered in 0.4s']
    >>> event_lines(RepaintEvent("round", 2, {"scores": [0.61, None], "best_score": 0.7, "stop_reason": "plateau"}))
    ['round 2 scored: 0.6100, blocked | best so far 0.7000', 'stopping: plateau']
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from .results import shorten

if TYPE_CHECKING:
    from .repainter import RepaintEvent

__all__ = ["SLOW_RENDER_SECONDS", "ProgressBar", "ProgressLines", "event_lines", "progress_display", "wants_progress"]

SLOW_RENDER_SECONDS = 1.0
"""A rendering call that took at least this long gets its own progress line (one per image for a
model that renders one image per call); faster ones are summed up by the round's line, so a fast
model (the sandbox renders a round in milliseconds) prints no line per image."""

OnEvent = Callable[["RepaintEvent"], None]


def event_lines(event: RepaintEvent, *, width: int = 120) -> list[str]:
    """The words for ``event``: zero, one or two lines of at most ``width`` characters. Model-written
    text is cut to fit beside the line's own words (keeping at least 10 characters of it), at a word
    boundary with an ellipsis, never inside a word.

    Example:
        >>> from imagerepainter.repainter import RepaintEvent
        >>> edits = ["move the small crimson hexagon to the upper left corner"]
        >>> event_lines(RepaintEvent("critique", 3, {"of_round": 3, "edits": edits}), width=60)
        ['critique of round 3: move the small crimson hexagon to the…']
        >>> event_lines(RepaintEvent("node", 1, {"node": "score", "seconds": 0.01}))
        []
    """
    data, kind = event.data, event.kind

    def line(head: str, text: str = "") -> str:  # the head is ours; only the model's text is cut
        return head + shorten(text, max(10, width - len(head))) if text else head

    if kind == "call" and data.get("node") == "describe":  # the slowest stage, shown call by call
        return [f"describing: {data.get('call')} answered in {data.get('seconds', 0):.1f}s"]
    if kind == "described":
        return [line("described the reference: ", str(data.get("prompt", "")))]
    if kind == "generated":
        seconds = data.get("seconds")
        took = "" if seconds is None else f" ({seconds:.1f}s)"
        return [f"round {event.round}: {data['done']}/{data['total']} candidates rendered{took}"]
    if kind == "round":
        best = data.get("best_score")
        scores = ", ".join("blocked" if s is None else f"{s:.4f}" for s in data.get("scores", []))
        shown = "n/a" if best is None else f"{best:.4f}"
        lines = [f"round {event.round} scored: {scores} | best so far {shown}"]
        if data.get("stop_reason"):
            lines.append(f"stopping: {data['stop_reason']}")
        return lines
    if kind == "critique":
        of = data.get("of_round", event.round)
        what = f"round {event.round}"
        if of != event.round:
            what = f"round {of}'s best (round {event.round} did no better)"
        if data.get("is_match"):
            then = "stopping" if data.get("stop") else "going on for a better score (stop_on_match is off)"
            return [f"critique of {what}: judged a match; {then}"]
        edits = "; ".join(data.get("edits", [])[:3])
        return [line(f"critique of {what}: ", edits) if edits else f"critique of {what}: no edits proposed"]
    if kind == "review":
        where = "before round" if data.get("kind") == "prompt" else "after the critique of round"
        return [line(f"paused for review {where} {event.round}: ", str(data.get("prompt", "")))]
    return []


class ProgressLines:
    """Prints :func:`event_lines` with the time since the first event, e.g. ``[   2.1s] round 1 scored: ...``.

    A ``generated`` event gets a line only when its rendering call took :data:`SLOW_RENDER_SECONDS`
    or more (a line per image for a slow model, none for a fast one).
    """

    def __init__(self, stream: TextIO, *, quiet: bool = False, width: int = 120) -> None:
        self.stream, self.quiet, self.width, self.start = stream, quiet, width, time.monotonic()
        self.best: float | None = None

    def __call__(self, event: RepaintEvent) -> None:
        if event.kind == "round":
            self.best = event.data.get("best_score")
        if self.quiet:
            return
        if event.kind == "generated" and event.data.get("seconds", 0.0) < SLOW_RENDER_SECONDS:
            return
        elapsed = f"[{time.monotonic() - self.start:6.1f}s] "
        for text in event_lines(event, width=self.width - len(elapsed)):
            print(elapsed + text, file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to release (the same interface as :class:`ProgressBar`)."""


class ProgressBar:
    """A ``tqdm.auto`` bar over the run's rounds; its text is the latest event's line.

    The bar is created at the first event (a run refused before anything ran shows nothing). A
    resumed run starts at the round it resumes from; a run that stops before ``rounds`` ends full.

    Args:
        rounds: The run's most rounds, the bar's length; a callable is asked at the first event.
        file: Where a text bar is written (default ``sys.stderr``); a notebook shows a widget
            instead when ``ipywidgets`` is installed.
    """

    def __init__(self, rounds: int | Callable[[], int | None] | None = None, *, file: TextIO | None = None) -> None:
        self._tqdm = _tqdm()  # fails here, before a run, when tqdm is missing
        self._rounds, self._file = rounds, file
        self._bar: Any = None

    def _open(self) -> Any:
        total = self._rounds() if callable(self._rounds) else self._rounds
        return self._tqdm(total=total, unit="round", desc="imagerepainter", file=self._file or sys.stderr, leave=True)

    def __call__(self, event: RepaintEvent) -> None:
        if event.kind in ("node", "result"):
            return
        if self._bar is None:
            self._bar = self._open()
        bar, changed = self._bar, False
        if event.kind == "round" and event.round is not None:
            bar.n, changed = event.round, True
            best = event.data.get("best_score")
            if best is not None:
                bar.set_description_str(f"best {best:.4f}", refresh=False)
        if event.kind == "finished" and bar.total != bar.n:
            bar.total, changed = bar.n, True  # stopped before its last round: the run is done all the same
        text = " | ".join(event_lines(event, width=self._width()))
        if text:
            bar.set_postfix_str(text, refresh=False)
            changed = True
        if changed:  # every change shows at once: a slow model's events are seconds apart
            bar.refresh()

    def _width(self) -> int:
        """Room for the event's text beside the bar: the terminal's width less the bar's own."""
        return max(30, shutil.get_terminal_size((150, 24)).columns - 60)

    def close(self) -> None:
        """Leave the bar where it is (its last state stays visible)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _tqdm() -> Any:
    """``tqdm.auto.tqdm``: a widget in a notebook with ``ipywidgets``, else a text bar (without the
    warning ``tqdm.auto`` gives a notebook that lacks ``ipywidgets``: the text bar works there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm


def wants_progress(progress: bool | None, stream: TextIO | None = None) -> bool:
    """Whether a run shows progress: ``progress`` when given; by default (``None``) in a Jupyter
    kernel and when ``stream`` (default ``sys.stderr``) is a terminal, so scripts run by hand show
    it, while tests, servers and pipes stay quiet."""
    if progress is not None:
        return bool(progress)
    if "ipykernel.zmqshell" in sys.modules:  # Jupyter, VS Code notebooks, Colab (the rule tqdm.auto uses)
        return True
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


@contextlib.contextmanager
def progress_display(
    progress: bool | None, *, rounds: int | Callable[[], int | None] | None = None
) -> Iterator[OnEvent | None]:
    """The display a run with ``progress`` shows (see :func:`wants_progress`), closed when the block ends.

    Yields ``None`` when progress is off, a :class:`ProgressBar` when ``tqdm`` is installed, else
    :class:`ProgressLines` on stderr (the command line's lines).
    """
    if not wants_progress(progress):
        yield None
        return
    display: ProgressBar | ProgressLines
    try:
        display = ProgressBar(rounds)
    except ImportError:  # no tqdm: the plain lines say the same
        display = ProgressLines(sys.stderr)
    try:
        yield display
    finally:
        display.close()
