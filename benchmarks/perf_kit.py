"""Inputs and instruments of the performance suite (:mod:`perf_suite`): images, timed backends, probes.

Everything here measures the library from the outside, through its public API and the
backend protocols, so the suite keeps working while the core is redesigned:

* :func:`photo` — the reference: an EvalRef-100 photograph resized to the size (a generated
  texture when ``../shared`` is absent, e.g. in CI), so PNG encoding costs what it costs on
  real pictures; :class:`Canvas` hands out distinct photo-like candidate images (no two equal,
  so a content-addressed store cannot skip any work).
* :class:`SleepingT2I`, :class:`RisingScorer`, :class:`Timed` — backends whose cost is known
  (a fixed sleep per image, or nothing) and a wrapper that adds up the time spent in any backend.
* :func:`sleeping_pipeline` — a real diffusers ``StableDiffusionPipeline`` (the tiny one from
  :mod:`imagerepainter.testing.tiny_models`) whose call sleeps a fixed time per image and returns
  images of the requested size.
* :func:`stored_bytes` — the bytes a SQLite checkpointer holds (every BLOB and text column).
* :func:`checkpoint_bytes_by_round` — the same bytes, grouped by the round each checkpoint was in.
* :func:`child_json` — run a measuring script in a fresh interpreter and read the JSON it prints, so
  what the parent imported or allocated never counts.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imagerepainter.backends.base import GeneratedImage, GenerationRequest, T2ICapabilities

REPO = Path(__file__).resolve().parents[1]
EVALREF = REPO.parent / "shared" / "datasets" / "evalref-100"
"""The EvalRef-100 photographs, read in place (the same place ``tests/conftest.py`` looks)."""

REFERENCE_PHOTO = "scene_1.png"
CANDIDATE_PHOTO = "scene_2.png"


def photo(size: int, name: str = REFERENCE_PHOTO) -> tuple[Image.Image, str]:
    """An RGB ``size`` x ``size`` picture and where it came from.

    The EvalRef-100 photograph ``name`` resized with LANCZOS when the dataset is there;
    otherwise a deterministic generated texture (gradients, blobs and fine noise) that PNG
    compresses about as badly as a photograph.
    """
    path = EVALREF / name
    if path.is_file():
        with Image.open(path) as image:
            return image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), f"evalref-100/{name}"
    return _texture(size, seed=sum(map(ord, name))), f"generated texture (no {EVALREF})"


def _texture(size: int, *, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    channels = []
    for c in range(3):
        wave = np.sin((x * rng.uniform(2, 9) + y * rng.uniform(2, 9)) * np.pi + c)
        blobs = sum(
            np.exp(-((x - rng.uniform()) ** 2 + (y - rng.uniform()) ** 2) / rng.uniform(0.005, 0.05)) for _ in range(12)
        )
        channels.append(0.35 * wave + 0.5 * blobs + rng.normal(0, 0.12, (size, size)))
    array = np.stack(channels, axis=-1)
    array = (array - array.min()) / (np.ptp(array) or 1.0)
    return Image.fromarray((array * 255).astype(np.uint8), "RGB")


class Canvas:
    """Distinct photo-like images of one size: a base picture with a counter stamped in its first row."""

    def __init__(self, size: int, name: str = CANDIDATE_PHOTO) -> None:
        self.base = np.asarray(photo(size, name)[0]).copy()
        self._count = 0
        self._lock = threading.Lock()

    def next(self) -> Image.Image:
        """A new image, different from every one this canvas made before."""
        with self._lock:
            self._count += 1
            n = self._count
        array = self.base.copy()
        array[0, :8] = np.frombuffer(n.to_bytes(24, "little"), dtype=np.uint8).reshape(8, 3)
        return Image.fromarray(array, "RGB")


class Timed:
    """Adds up the wall and CPU seconds (of the calling threads) spent in ``methods`` of ``backend``.

    Every other attribute is the backend's own, so the loop sees the same backend.
    """

    def __init__(self, backend: Any, methods: Sequence[str]) -> None:
        self._backend = backend
        self._methods = set(methods)
        self._lock = threading.Lock()
        self.wall = 0.0
        self.cpu = 0.0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._backend, name)
        if name not in self._methods:
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return value(*args, **kwargs)
            finally:
                with self._lock:
                    self.wall += time.perf_counter() - wall
                    self.cpu += time.thread_time() - cpu
                    self.calls += 1

        return timed


@dataclass
class SleepingT2I:
    """A text-to-image backend that costs ``seconds_per_image`` per image and returns distinct pictures."""

    size: int
    seconds_per_image: float = 0.0
    max_batch_size: int = 4
    name: str = "sleeping-t2i"
    batches: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.capabilities = T2ICapabilities(max_batch_size=self.max_batch_size, supports_negative_prompt=True)
        self.canvas = Canvas(self.size)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GeneratedImage]:
        self.batches.append(len(requests))
        if self.seconds_per_image:
            time.sleep(self.seconds_per_image * len(requests))
        return [GeneratedImage(self.canvas.next()) for _ in requests]

    @property
    def images(self) -> int:
        return sum(self.batches)

    @property
    def seconds(self) -> float:
        """What the images cost in total: the T2I part of the critical path."""
        return self.seconds_per_image * self.images


class RisingScorer:
    """An instant scorer whose every score beats the last, so runs never stop on a plateau."""

    name = "rising"
    higher_is_better = True
    bounds = (0.0, 1e9)

    def __init__(self) -> None:
        self._next = 0.0
        self._lock = threading.Lock()

    def prepare(self, reference: Image.Image) -> Any:
        return reference.size

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        with self._lock:
            out = [self._next + 0.01 * (i + 1) for i in range(len(candidates))]
            self._next = out[-1] if out else self._next
        return out


def sleeping_pipeline(folder: str | Path, seconds_per_image: float) -> Any:
    """A tiny Stable Diffusion pipeline (real diffusers class) whose call sleeps instead of denoising.

    It keeps the pipeline's components and signature, so ``DiffusersT2I`` treats it like any
    pipeline; each call sleeps ``seconds_per_image`` per prompt and returns distinct photo-like
    PIL images of the requested ``height`` x ``width``. ``pipeline.calls`` records every call's
    arguments, to replay them directly.
    """
    import os

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no torchvision notices on stderr
    from diffusers import StableDiffusionPipeline
    from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from imagerepainter.testing.tiny_models import build_tiny_stable_diffusion

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()

    class SleepingPipeline(StableDiffusionPipeline):  # type: ignore[misc]
        calls: list[dict[str, Any]]
        canvases: dict[tuple[int, int], Canvas]

        def __call__(  # type: ignore[override]
            self,
            prompt: Any = None,
            height: int | None = None,
            width: int | None = None,
            num_inference_steps: int = 50,
            guidance_scale: float = 7.5,
            negative_prompt: Any = None,
            num_images_per_prompt: int = 1,
            generator: Any = None,
            output_type: str = "pil",
            return_dict: bool = True,
        ) -> Any:
            self.calls.append(
                {
                    "prompt": prompt,
                    "height": height,
                    "width": width,
                    "num_inference_steps": num_inference_steps,
                    "guidance_scale": guidance_scale,
                    "negative_prompt": negative_prompt,
                    "num_images_per_prompt": num_images_per_prompt,
                    "generator": generator,
                    "output_type": output_type,
                    "return_dict": return_dict,
                }
            )
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            count = len(prompts) * num_images_per_prompt
            time.sleep(seconds_per_image * count)
            key = (height or 512, width or 512)
            if key not in self.canvases:  # built once per size (it reads and resizes a photo)
                self.canvases[key] = Canvas(key[0])
            canvas = self.canvases[key]
            images = [canvas.next() for _ in range(count)]
            return StableDiffusionPipelineOutput(images=images, nsfw_content_detected=None)

    pipe = SleepingPipeline.from_pretrained(str(build_tiny_stable_diffusion(folder)))
    pipe.set_progress_bar_config(disable=True)
    pipe.calls = []
    pipe.canvases = {}
    return pipe


def stored_bytes(db: Path) -> int:
    """Bytes held in every table of the SQLite database ``db`` (sum of its columns' lengths).

    Reads through a separate read-only connection, so a running checkpointer is not disturbed.
    """
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        total = 0
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            if columns:
                expr = " + ".join(f"COALESCE(LENGTH({c}), 0)" for c in columns)
                total += conn.execute(f"SELECT COALESCE(SUM({expr}), 0) FROM {table}").fetchone()[0]
        return int(total)
    finally:
        conn.close()


def _row_bytes(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    """``(checkpoint_id, bytes of every column)`` for each row of ``table``."""
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    expr = " + ".join(f"COALESCE(LENGTH({c}), 0)" for c in columns)
    return conn.execute(f"SELECT checkpoint_id, {expr} FROM {table}").fetchall()


def checkpoint_bytes_by_round(db: Path) -> dict[int, int]:
    """The bytes of a finished run's SQLite checkpoints (each checkpoint row and the pending writes
    stored with it, every column), grouped by the value of the state's ``round`` channel in that
    checkpoint: group ``r`` holds the checkpoints from closing round ``r`` until just before
    round ``r + 1`` closes (its critique and generation), group 0 describing and round 1's images.

    Read after the run, from what is stored, so it cannot race the run's own writes (as a reading
    taken when a progress event arrives can: the node that sent it is still running).
    """
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    serde = JsonPlusSerializer()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        writes: dict[str, int] = {}
        for checkpoint_id, size in _row_bytes(conn, "writes"):
            writes[checkpoint_id] = writes.get(checkpoint_id, 0) + int(size)
        rounds = {
            checkpoint_id: serde.loads_typed((kind, blob)).get("channel_values", {}).get("round", 0)
            for checkpoint_id, kind, blob in conn.execute("SELECT checkpoint_id, type, checkpoint FROM checkpoints")
        }
        out: dict[int, int] = {}
        for checkpoint_id, size in _row_bytes(conn, "checkpoints"):
            r = int(rounds[checkpoint_id] or 0)
            out[r] = out.get(r, 0) + int(size) + writes.get(checkpoint_id, 0)
        return dict(sorted(out.items()))
    finally:
        conn.close()


def child_json(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Run the Python source ``code`` with ``args`` (its ``sys.argv[1:]``) in a fresh interpreter in the
    repository root, and return the JSON object its last line of output prints.

    A memory figure (peak RSS, ``VmHWM``) taken in the child is the child's alone. ``env`` replaces
    the environment (default: this one's); a failing child raises ``CalledProcessError``.
    """
    argv = [sys.executable, "-c", code, *args]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
