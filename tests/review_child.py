"""Process 1 of the two-process review test: start a run under review, pause, exit.

    python tests/review_child.py BASE_URL FOLDER

The run's checkpoints, history and images live in FOLDER (SQLite checkpointer, SQLite store,
directory image store), its models behind the OpenAI-compatible test server at BASE_URL.
The process prints the pending review as JSON and exits while the run waits for it.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from imagerepainter import DirectoryImageStore, Repainter

THREAD = "review-1"
SETTINGS = {"max_rounds": 2, "patience": None, "review": ("prompt",), "height": 32, "width": 32}
KEY = "sk-review-test-0123456789"


def reference() -> Image.Image:
    image = Image.new("RGB", (32, 32), (200, 40, 40))
    image.paste((30, 30, 220), (8, 8, 24, 24))
    return image


@contextlib.contextmanager
def repainter(base_url: str, folder: Path) -> Iterator[Repainter]:
    """A Repainter whose run lives in ``folder``: any process building it sees the same run."""
    from langchain_openai import ChatOpenAI
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore

    from imagerepainter.backends.openai_images import OpenAIImagesT2I

    checkpoints = sqlite3.connect(folder / "checkpoint.sqlite", check_same_thread=False)
    records = sqlite3.connect(folder / "history.sqlite", check_same_thread=False, isolation_level=None)
    history = SqliteStore(records)
    history.setup()
    rp = Repainter(
        mllm=ChatOpenAI(base_url=base_url, api_key=KEY, model="gpt-4o", max_retries=0),
        t2i=OpenAIImagesT2I("gpt-image-1", base_url=base_url, api_key=KEY),
        scorer="psnr",
        store=DirectoryImageStore(folder / "images"),
        checkpointer=SqliteSaver(checkpoints),
        history=history,
    )
    try:
        yield rp
    finally:
        rp.close()
        records.close()
        checkpoints.close()


def main() -> None:
    base_url, folder = sys.argv[1], Path(sys.argv[2])
    with repainter(base_url, folder) as rp:
        paused = rp.run(reference(), thread_id=THREAD, **SETTINGS)
        print(json.dumps({"status": rp.status(THREAD), "finished": paused.finished, "review": paused.review}))


if __name__ == "__main__":
    main()
