"""The loop as a LangChain tool an agent can call: ``Repainter.as_tool()``.

A model fills the arguments (the reference as a file path on this machine or a ``data:`` URL, or
an ``http(s)`` URL when the host allows downloads, and optionally a round budget); the tool
answers with a short text for the model (best prompt, score, stop reason, where the images were
saved) and keeps the whole :class:`~imagerepainter.results.RepaintResult` as the tool message's
artifact (``response_format="content_and_artifact"``). Bad input or a failing backend comes back to the
model as an error message (a ``ToolException``), never as an exception that ends the agent.

Example:
    >>> from imagerepainter import Repainter
    >>> from imagerepainter.sandbox import random_scene, render_scene
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ref.png"
    >>> render_scene(random_scene(3)).save(path)
    >>> tool = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox").as_tool()
    >>> message = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name,
    ...                        "args": {"image": str(path), "max_rounds": 2}})
    >>> message.content.startswith("Regenerated in"), message.artifact.finished
    (True, True)
    >>> tool.invoke({"type": "tool_call", "id": "2", "name": tool.name, "args": {"image": "/no/such.png"}}).content
    "Cannot repaint: The file '/no/such.png' does not exist. Check the path."
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .errors import RepainterError
from .image_sources import ImageSourcePolicy, read_source

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from .repainter import Repainter
    from .results import RepaintResult

__all__ = ["RepaintToolInput", "make_tool"]

DESCRIPTION = (
    "Regenerate a reference image with a text-to-image model: describe it, render, compare, critique and revise "
    "until the regeneration stops improving. Returns the best prompt found and how close its image came."
)


class RepaintToolInput(BaseModel):
    """The arguments a model fills to call the tool."""

    image: str = Field(
        description="The reference image: a file path on this machine, a data URL (data:image/png;base64,...), "
        "or an http(s) URL if this tool downloads images."
    )
    max_rounds: int | None = Field(default=None, ge=1, le=20, description="Most rounds of critique and revision.")


def make_tool(
    repainter: Repainter,
    *,
    name: str = "repaint_image",
    description: str = DESCRIPTION,
    allowed_dirs: list[str | os.PathLike[str]] | None = None,
    allow_urls: bool = False,
    save_dir: str | os.PathLike[str] | None = None,
) -> BaseTool:
    """Build the tool (see :meth:`Repainter.as_tool`)."""
    from langchain_core.tools import StructuredTool, ToolException

    policy = ImageSourcePolicy.of(allowed_dirs, allow_urls=allow_urls, owner="tool")

    def repaint(image: str, max_rounds: int | None = None) -> tuple[str, Any]:  # (summary, RepaintResult)
        try:
            reference = read_source(image, policy)
            overrides: dict[str, Any] = {} if max_rounds is None else {"max_rounds": max_rounds}
            result = repainter.run(reference, progress=False, **overrides)
        except RepainterError as exc:  # the model reads why, and can try again; the agent goes on
            raise ToolException(f"Cannot repaint: {exc}") from None
        saved = ""
        if save_dir is not None:
            folder = Path(save_dir) / (result.thread_id or "result")
            result.save(folder)
            saved = f" Images and result.json saved in {folder}."
        return _summary(result) + saved, result

    return StructuredTool.from_function(
        func=repaint,
        name=name,
        description=description,
        args_schema=RepaintToolInput,
        response_format="content_and_artifact",
        handle_tool_error=True,
    )


def _summary(result: RepaintResult) -> str:
    best = result.best
    score = "n/a" if best is None or best.score is None else f"{best.score:.4f}"
    prompt = best.prompt if best is not None else "-"
    return (
        f"Regenerated in {len(result.rounds)} rounds (stopped: {result.stop_reason}). "
        f"Best score {score} ({'higher' if result.higher_is_better else 'lower'} is better). Best prompt: {prompt}"
    )
