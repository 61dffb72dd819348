"""The performance suite of issue 7: what a run costs beyond the models' own time, side by side.

    python benchmarks/perf_suite.py [--repeat 3] [--json perf.json] [--short]

One command measures every figure, prints a Markdown table and (with ``--json``) writes all
numbers with the machine they were measured on. Each figure is a ratio of two things measured
in the same process, one after the other, with the absolute numbers beside it for context;
each is the median of ``--repeat`` repetitions (N, reported). See ``docs/performance.md``
for what each figure means and how it is measured.

1. ``wall_over_critical_path``: a whole run's wall time over what the model time alone costs,
   with a real HTTP MLLM (``ChatOpenAI`` against the loopback OpenAI-compatible server of
   :mod:`imagerepainter.testing`, ``--mllm-delay`` seconds per answer) and a T2I backend costing
   ``--image-delay`` seconds per image, on a photograph at 64, 512 and 1024 px, presets
   ``default`` and ``paper``. The critical path is computed from the requests the run actually
   made: the describe stage's levels of concurrent calls, every later MLLM call (sequential),
   and every image.
2. ``describe_in_delays``: from the start of the run until the first prompt exists, in MLLM
   delays, 512 px reference (the Image Understanding Tree has 3 levels: the minimum is 3).
3. ``generate_efficiency``: a diffusers pipeline called directly with the same arguments,
   over the generate node's wall time, 512 and 1024 px (1.0 = the node adds nothing).
4. ``graph_cpu_per_round``: process CPU (and wall) per round beyond the backends, with instant
   backends, SQLite checkpointer and a directory image store with durability ``"sync"``, as the
   CLI's run folders run it, rounds 2 and later.
5. ``checkpoint_bytes_per_round``: bytes the SQLite checkpointer gains per round, per round
   (first and last shown), in the same runs.
6. ``sandbox_images_to_paper_best``: in the offline sandbox world, the images ``default``
   renders until one scores at least ``paper``'s final best, over ``paper``'s images, per scene.
7. ``import_cost``: ``import imagerepainter`` and ``from imagerepainter import Repainter`` in
   fresh interpreters, minus an empty interpreter; top modules by ``python -X importtime``.

``--short`` runs a reduced version (N=1, fewer sizes, rounds and scenes, shorter delays) in
well under a minute: CI runs it to check that the suite works, never to judge a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from perf_kit import (
    REPO,
    RisingScorer,
    SleepingT2I,
    Timed,
    checkpoint_bytes_by_round,
    photo,
    sleeping_pipeline,
    stored_bytes,
)

from imagerepainter import Repainter, RepainterConfig

FIGURES = (
    "wall_over_critical_path",
    "describe_in_delays",
    "generate_efficiency",
    "graph_cpu_per_round",
    "checkpoint_bytes_per_round",
    "sandbox_images_to_paper_best",
    "import_cost",
)
"""Every figure the suite reports, in table order (the JSON's ``figures`` keys)."""

DESCRIBE_LEVEL_1 = {"GlobalDescription", "GlobalFeatures", "ObjectList"}
DESCRIBE_LEVEL_2 = {"ThingDetails", "PersonDetails", "AnimalDetails", "Relationships"}
DESCRIBE_LAST = {"PromptRewrite"}


@dataclass(frozen=True)
class Settings:
    """What the suite runs; every field is written to the JSON."""

    repeat: int = 3
    sizes: tuple[int, ...] = (64, 512, 1024)
    mllm_delay: float = 0.2
    image_delay: float = 0.1
    describe_size: int = 512
    generate_sizes: tuple[int, ...] = (512, 1024)
    generate_rounds: int = 3
    cli_sizes: tuple[int, ...] = (64, 512, 1024)
    cli_rounds: int = 6
    cpu_size: int = 512
    checkpoint_sizes: tuple[int, ...] = (64, 1024)
    scenes: int = 20
    max_rounds: int | None = None
    """Rounds of the whole runs of figure 1 (None: each preset's own, 6 for default and 3 for paper)."""
    short: bool = False

    @classmethod
    def short_mode(cls, repeat: int | None) -> Settings:
        return cls(
            repeat=repeat or 1,
            sizes=(64,),
            mllm_delay=0.05,
            image_delay=0.025,
            describe_size=64,
            generate_sizes=(128,),
            generate_rounds=2,
            cli_sizes=(64,),
            cli_rounds=3,
            cpu_size=64,
            checkpoint_sizes=(64,),
            scenes=2,
            max_rounds=2,
            short=True,
        )


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ----------------------------------------------------------------------------- tracing a run


@dataclass
class Trace:
    """A streamed run: every event with its arrival time (seconds since the run was started)."""

    events: list[tuple[Any, float]] = field(default_factory=list)
    wall: float = 0.0
    result: Any = None

    def first(self, kind: str) -> float | None:
        return next((t for e, t in self.events if e.kind == kind), None)

    def node_seconds(self, node: str) -> list[float]:
        """The node's own wall time, per run of the node, from the library's ``node`` events."""
        return [e.data["seconds"] for e, _ in self.events if e.kind == "node" and e.data.get("node") == node]


def traced(rp: Repainter, reference: Any, on_event: Callable[[Any], None] | None = None, **overrides: Any) -> Trace:
    trace = Trace()
    start = time.perf_counter()
    for event in rp.stream(reference, **overrides):
        trace.events.append((event, time.perf_counter() - start))
        if on_event is not None:
            on_event(event)
        if event.kind == "result":
            trace.result = event.result
    trace.wall = time.perf_counter() - start
    return trace


# ----------------------------------------------------------------------------- 1 and 2: critical path


def critical_path(schemas: list[str | None], t2i_seconds: float, delay: float) -> dict[str, Any]:
    """What the model time alone costs, given the loop's dependencies and the calls the run made.

    Describing takes one delay per level of concurrent calls (the tree's first level, the
    per-object details, the rewrite); every later MLLM call waits for the one before and for
    the images; images cost what the T2I backend says.
    """
    names = [s or "?" for s in schemas]
    levels = (
        int(any(n in DESCRIBE_LEVEL_1 for n in names))
        + int(any(n in DESCRIBE_LEVEL_2 for n in names))
        + sum(n in DESCRIBE_LAST for n in names)
    )
    later = sum(n not in DESCRIBE_LEVEL_1 | DESCRIBE_LEVEL_2 | DESCRIBE_LAST for n in names)
    return {
        "seconds": delay * (levels + later) + t2i_seconds,
        "describe_levels": levels,
        "sequential_mllm_calls": levels + later,
        "mllm_calls": len(names),
    }


_SERVER = """
import sys
from imagerepainter.testing.openai_server import OpenAICompatibleServer
from imagerepainter.testing.responders import SchemaResponder
with OpenAICompatibleServer(SchemaResponder(), delay=float(sys.argv[1])) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the suite closes our stdin
"""


@contextlib.contextmanager
def loopback_mllm(delay: float) -> Iterator[Any]:
    """``ChatOpenAI`` against a real HTTP MLLM on 127.0.0.1 answering after ``delay`` s.

    The server runs in its own process, as a model server would: its work (parsing requests,
    decoding their images) is the model's time, not the library's, and must not compete with
    the run for this process's interpreter lock.
    """
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(delay)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the loopback MLLM server did not start (said {base_url!r})")
        yield ChatOpenAI(
            base_url=base_url,
            api_key=SecretStr("sk-perf-suite-local"),
            model="gpt-4o-mini",
            max_retries=0,
            timeout=60,
        )
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure_critical_path(s: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with loopback_mllm(s.mllm_delay) as chat:

        def one(size: int, preset: str) -> dict[str, Any]:
            reference, source = photo(size)
            t2i = SleepingT2I(size, s.image_delay)
            rounds: dict[str, Any] = {} if s.max_rounds is None else {"max_rounds": s.max_rounds}
            rp = Repainter(mllm=chat, t2i=t2i, scorer=RisingScorer(), preset=preset, **rounds)
            try:
                trace = traced(rp, reference)
            finally:
                rp.close()
            # the run's own call log: one request per call here (no retries, no faults)
            calls = trace.result.calls
            assert all(c["requests"] == 1 for c in calls), "a call was retried: the critical path would be wrong"
            path = critical_path([c["schema"] for c in calls], t2i.seconds, s.mllm_delay)
            described = trace.first("described")
            return {
                "size": size,
                "preset": preset,
                "reference": source,
                "wall_s": trace.wall,
                "critical_path_s": path["seconds"],
                "ratio": trace.wall / path["seconds"],
                "rounds": len(trace.result.rounds),
                "images": t2i.images,
                "image_batches": len(t2i.batches),
                **{k: v for k, v in path.items() if k != "seconds"},
                "describe_s": described,
                "describe_node_s": sum(trace.node_seconds("describe")),
            }

        one(64, "paper")  # warm up: imports, the HTTP client's connections
        for _ in range(s.repeat):
            for size in s.sizes:
                for preset in ("default", "paper"):
                    runs[f"{preset}@{size}"].append(one(size, preset))
        floor = client_floor(chat, s)

    # The same figures with each sequential MLLM call costing the delay plus what the chat client
    # alone costs per request (its text floor, the lowest): how far the loop is from the client itself.
    per_call = s.mllm_delay + floor["text"] / 1000
    for items in runs.values():
        for r in items:
            beyond = r["critical_path_s"] + r["sequential_mllm_calls"] * floor["text"] / 1000
            r["ratio_beyond_client"] = r["wall_s"] / beyond
            if r["describe_s"] is not None:
                r["describe_in_client_calls"] = r["describe_s"] / per_call

    figure1: dict[str, Any] = {"unit": "ratio", "mllm_delay_s": s.mllm_delay, "image_delay_s": s.image_delay}
    for key, items in runs.items():
        figure1[key] = _summary(items, ("ratio", "ratio_beyond_client", "wall_s", "critical_path_s", "describe_s"))
    describe_runs = runs[f"default@{s.describe_size}"] + runs[f"paper@{s.describe_size}"]
    in_delays = [r["describe_s"] / s.mllm_delay for r in describe_runs if r["describe_s"] is not None]
    figure2 = {
        "unit": "MLLM delays",
        "size": s.describe_size,
        "median": median(in_delays),
        "describe_s": median([r["describe_s"] for r in describe_runs if r["describe_s"] is not None]),
        "describe_node_s": median([r["describe_node_s"] for r in describe_runs]),
        "in_client_calls": median(
            [r["describe_in_client_calls"] for r in describe_runs if r["describe_s"] is not None]
        ),
        "levels": describe_runs[0]["describe_levels"] if describe_runs else None,
        "mllm_delay_s": s.mllm_delay,
        "samples": in_delays,
        "n": len(in_delays),
    }
    figure1["client_floor"] = figure2["client_floor"] = floor
    figure1["wait_penalty"] = wait_penalty(s)
    return figure1, figure2


def client_floor(chat: Any, s: Settings) -> dict[str, Any]:
    """What the chat client itself adds to a request, with no loop around it: ``ChatOpenAI.invoke``
    made directly against the same server, minus the server's delay (median of 10 each). A text
    request, and one carrying a 512 px photo as the loop sends it by default (JPEG) and in the
    ``paper`` preset (PNG)."""
    from langchain_core.messages import HumanMessage

    from imagerepainter.images import to_data_url

    picture, _ = photo(512)
    requests = {
        "text": "Describe the picture.",
        "jpeg_512": [
            {"type": "text", "text": "Describe the picture."},
            {"type": "image_url", "image_url": {"url": to_data_url(picture, image_format="jpeg")}},
        ],
        "png_512": [
            {"type": "text", "text": "Describe the picture."},
            {"type": "image_url", "image_url": {"url": to_data_url(picture, image_format="png")}},
        ],
    }
    out: dict[str, Any] = {"unit": "ms beyond the server's delay, per request"}
    for name, content in requests.items():
        message = [HumanMessage(content=content)]  # type: ignore[arg-type]
        chat.invoke(message)
        spent = []
        for _ in range(10):
            start = time.perf_counter()
            chat.invoke(message)
            spent.append(1000 * (time.perf_counter() - start - s.mllm_delay))
        out[name] = median(spent)
    return out


def wait_penalty(s: Settings) -> dict[str, Any]:
    """What a request costs beyond the server's delay when answered at once and when the model
    takes ``s.mllm_delay``: the same requests, each against its own loopback server (median of 10).

    Measured with the standard library's ``http.client`` (the least code a client can run) and
    with ``ChatOpenAI.invoke``. When the second figure is the larger, the machine runs the same
    code slower after waiting (its caches and CPU go cold while the process sleeps), and every
    step of the loop that follows a model's answer pays it too.
    """
    import http.client
    from functools import partial
    from urllib.parse import urlsplit

    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Describe the picture."}]})
    out: dict[str, Any] = {"unit": "ms beyond the server's delay, per request", "delay_s": s.mllm_delay}
    for label, delay in (("at_once", 0.0), ("after_delay", s.mllm_delay)):
        with loopback_mllm(delay) as chat:
            url = urlsplit(str(chat.openai_api_base))
            conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
            raw = partial(_post, conn, f"{url.path}/chat/completions", body)
            out[f"http_client_{label}"] = _beyond(raw, delay)
            out[f"chat_openai_{label}"] = _beyond(partial(chat.invoke, "Describe the picture."), delay)
            conn.close()
    return out


def _post(conn: Any, path: str, body: str) -> None:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    conn.getresponse().read()


def _beyond(ask: Callable[[], Any], delay: float, times: int = 10) -> float:
    """Median milliseconds ``ask()`` takes beyond ``delay`` (after one call to warm up)."""
    ask()
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        ask()
        spent.append(1000 * (time.perf_counter() - start - delay))
    return statistics.median(spent)


def _summary(items: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {k: median([float(i[k]) for i in items if i.get(k) is not None]) for k in keys}
    out["n"] = len(items)
    out["samples"] = [i["ratio"] for i in items] if "ratio" in keys else []
    first = items[0]
    out.update(
        {
            k: first[k]
            for k in (
                "size",
                "preset",
                "reference",
                "rounds",
                "images",
                "image_batches",
                "describe_levels",
                "sequential_mllm_calls",
                "mllm_calls",
            )
            if k in first
        }
    )
    return out


# ----------------------------------------------------------------------------- 3: the generate node


def measure_generate(s: Settings) -> dict[str, Any]:
    from imagerepainter.backends import DiffusersT2I

    figure: dict[str, Any] = {"unit": "ratio (direct call / node)", "image_delay_s": s.image_delay}
    with tempfile.TemporaryDirectory() as tmp:
        pipe = sleeping_pipeline(Path(tmp) / "sd", s.image_delay)
        t2i = DiffusersT2I(pipe, batch_size=4)
        for size in s.generate_sizes:
            reference, source = photo(size)
            figure[str(size)] = generate_figure(
                pipe, t2i, reference, size=size, rounds=s.generate_rounds, repeat=s.repeat, reference_source=source
            )
    return figure


def generate_figure(
    pipe: Any,
    t2i: Any,
    reference: Any,
    *,
    size: int,
    rounds: int,
    repeat: int,
    reference_source: str = "",
    **settings: Any,
) -> dict[str, Any]:
    """The generate node's wall time against the same pipeline calls made directly, at ``size`` px.

    ``pipe`` is the pipeline ``t2i`` wraps, recording each call's keyword arguments in
    ``pipe.calls``. Each of ``repeat + 1`` runs (the first warms up and is discarded) is a whole
    loop with :class:`~imagerepainter.testing.FakeMLLM` and an instant scorer, ``max_rounds=rounds``
    and ``settings`` (e.g. ``num_inference_steps``); then the calls it made are replayed on
    ``pipe`` directly (``pipe.calls`` is left holding the last run's own calls). The ratio
    direct / node is 1.0 when the node adds nothing.
    """
    from imagerepainter.testing import FakeMLLM

    samples = []
    for rep in range(repeat + 1):  # the first repetition warms up
        rp = Repainter(
            mllm=FakeMLLM(),
            t2i=t2i,
            scorer=RisingScorer(),
            height=size,
            width=size,
            max_rounds=rounds,
            **settings,
        )
        pipe.calls.clear()
        try:
            trace = traced(rp, reference)
        finally:
            rp.close()
        node = sum(trace.node_seconds("generate")) or trace.result.timings.get("generate", 0.0)
        if not node:
            raise RuntimeError(
                "The run reported no time for the generate node (neither 'node' events nor "
                "result.timings['generate']); perf_suite.generate_figure needs one of them."
            )
        calls, direct = list(pipe.calls), 0.0
        for kwargs in calls:  # the same calls, made directly
            start = time.perf_counter()
            pipe(**kwargs)
            direct += time.perf_counter() - start
        pipe.calls[:] = calls  # the run's own calls, without the replays
        if rep:
            images = sum(len(c["prompt"]) if isinstance(c["prompt"], list) else 1 for c in calls)
            samples.append(
                {"node_s": node, "direct_s": direct, "ratio": direct / node, "calls": len(calls), "images": images}
            )
    return {
        "size": size,
        "reference": reference_source,
        "median": median([x["ratio"] for x in samples]),
        "node_s_per_round": median([x["node_s"] / rounds for x in samples]),
        "direct_s_per_round": median([x["direct_s"] / rounds for x in samples]),
        "pipeline_calls_per_run": samples[0]["calls"],
        "images_per_run": samples[0]["images"],
        "rounds": rounds,
        "samples": [x["ratio"] for x in samples],
        "n": len(samples),
    }


# ----------------------------------------------------------------------------- 4 and 5: CLI settings


class RoundMeter:
    """Instant, timed backends for one run, and the process's CPU, wall and database bytes at each round's end."""

    def __init__(self, size: int, db: Path, history_db: Path | None = None) -> None:
        from imagerepainter.testing import FakeMLLM

        self.db, self.history_db = db, history_db
        self.backends: dict[str, Any] = {
            "mllm": Timed(FakeMLLM(), ["structured"]),
            "t2i": Timed(SleepingT2I(size), ["generate"]),
            "scorer": Timed(RisingScorer(), ["prepare", "score"]),
        }
        self.storage: Timed | None = None  # the image store's background PNG compression, when timed
        self.marks: list[dict[str, float]] = []
        self._probe = {"wall": 0.0, "cpu": 0.0}  # the cost of reading the database, left out like a backend's

    def __call__(self, event: Any) -> None:
        if event.kind != "round":
            return
        wall, cpu = time.perf_counter(), time.process_time()
        self.marks.append(
            {
                "wall": wall,
                "cpu": cpu,
                "backend_wall": sum(b.wall for b in self.backends.values()) + self._probe["wall"],
                "backend_cpu": sum(b.cpu for b in self.backends.values()) + self._probe["cpu"],
                "storage_cpu": self.storage.cpu if self.storage is not None else 0.0,
                "bytes": stored_bytes(self.db) if self.db.exists() else 0,
                "history_bytes": stored_bytes(self.history_db)
                if self.history_db is not None and self.history_db.exists()
                else 0,
            }
        )
        self._probe["wall"] += time.perf_counter() - wall
        self._probe["cpu"] += time.process_time() - cpu

    def summary(self, by_round: dict[int, int] | None = None) -> dict[str, Any]:
        """Per round from the second on: CPU and wall beyond the backends (ms), and bytes gained.

        ``by_round`` (:func:`checkpoint_bytes_by_round`, read after the run) replaces the
        checkpoint bytes read at each event: round ``r``'s bytes are then group ``r - 1``, the
        checkpoints from closing round ``r - 1`` to rendering round ``r``.
        """
        per_round = [
            {
                "round": i + 2,
                "cpu_ms": 1000 * ((b["cpu"] - a["cpu"]) - (b["backend_cpu"] - a["backend_cpu"])),
                "storage_cpu_ms": 1000 * (b["storage_cpu"] - a["storage_cpu"]),
                "wall_ms": 1000 * ((b["wall"] - a["wall"]) - (b["backend_wall"] - a["backend_wall"])),
                "bytes": b["bytes"] - a["bytes"] if by_round is None else by_round.get(i + 1, 0),
                "history_bytes": b["history_bytes"] - a["history_bytes"],
            }
            for i, (a, b) in enumerate(itertools.pairwise(self.marks))
        ]
        first = self.marks[0]["bytes"] if self.marks else None
        return {
            "per_round": per_round,
            "round_1_bytes": first if by_round is None else by_round.get(0),
            "total_bytes": stored_bytes(self.db),
            "file_bytes": self.db.stat().st_size,
        }


CLI_BACKENDS = ("mllm", "t2i", "scorer")


def folder_run(size: int, rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run through the CLI's own ``RunFolder`` (run.json and report.html rewritten each round).

    Returns the meter's summary and the settings ``RunFolder`` gave the ``Repainter`` (besides
    the backends, which are replaced by instant, timed ones).
    """
    from imagerepainter.runs.folder import CHECKPOINT_FILE, BackendSpecs, RunFolder

    reference, _ = photo(size)
    settings: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = RunFolder(Path(tmp) / "run")
        meter = RoundMeter(size, folder.path / CHECKPOINT_FILE)

        def build(**kwargs: Any) -> Repainter:
            settings.update(
                {k: v if isinstance(v, str | int | float | None) else type(v).__name__ for k, v in kwargs.items()}
            )
            return Repainter(**{**kwargs, **meter.backends})

        specs = BackendSpecs(mllm="sandbox", t2i="sandbox", scorer="sandbox", preset="default")
        folder.run(specs, reference, overrides={"max_rounds": rounds}, on_event=meter, build=build)
        summary = meter.summary()
    for key in CLI_BACKENDS:
        settings.pop(key, None)
    return summary, settings


def cli_run(size: int, rounds: int) -> dict[str, Any]:
    """One run configured as the CLI's run folders configure it (SQLite, directory store, sync), instant backends.

    The graph alone: ``Repainter.stream`` driven directly, without run.json and the report.
    """
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.store.sqlite import SqliteStore

    from imagerepainter.images import DirectoryImageStore

    reference, _ = photo(size)
    with tempfile.TemporaryDirectory() as tmp:
        meter = RoundMeter(size, Path(tmp) / "checkpoint.sqlite", Path(tmp) / "history.sqlite")
        conn = sqlite3.connect(meter.db, check_same_thread=False)
        history_conn = sqlite3.connect(str(meter.history_db), check_same_thread=False, isolation_level=None)
        history = SqliteStore(history_conn)
        history.setup()
        store = DirectoryImageStore(Path(tmp) / "images")
        meter.storage = Timed(store, ["_to_png"])  # the background PNG compression, shown apart
        store._to_png = meter.storage._to_png  # type: ignore[method-assign]
        rp = Repainter(
            **meter.backends,
            preset="default",
            config=RepainterConfig.from_preset("default", max_rounds=rounds),
            store=store,
            checkpointer=SqliteSaver(conn),
            history=history,
            durability="sync",
        )
        try:
            trace = traced(rp, reference, on_event=meter)
        finally:
            rp.close()
            store.compact()
            conn.close()
            history_conn.close()
        summary = meter.summary(checkpoint_bytes_by_round(meter.db))
        return {**summary, "rounds": len(trace.result.rounds), "wall_s": trace.wall}


REPLICA = {
    "preset": "default",
    "config": "RepainterConfig",
    "store": "DirectoryImageStore",
    "checkpointer": "SqliteSaver",
    "history": "SqliteStore",
    "durability": "sync",
}
"""What :func:`cli_run` sets up; checked against what ``RunFolder`` really passes."""


def measure_cli(s: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    _, settings = folder_run(64, 2)  # warms up, and shows how the CLI builds its Repainter
    runs = {size: [cli_run(size, s.cli_rounds) for _ in range(s.repeat)] for size in s.cli_sizes}
    folder_rows = [r for _ in range(s.repeat) for r in folder_run(s.cpu_size, s.cli_rounds)[0]["per_round"]]
    cpu: dict[str, Any] = {
        "unit": "ms per round",
        "headline_size": s.cpu_size,
        "rounds": s.cli_rounds,
        "measured": "rounds 2 and later",
        "cli_settings": settings,
        "replica_matches_cli": all(settings.get(k) == v for k, v in REPLICA.items())
        and set(settings) <= set(REPLICA) | {"name"},
        "run_folder": {
            "size": s.cpu_size,
            "median": median([r["cpu_ms"] for r in folder_rows]),
            "wall_ms": median([r["wall_ms"] for r in folder_rows]),
            "n": s.repeat,
        },
    }
    size_bytes: dict[str, Any] = {
        "unit": "bytes per round",
        "headline_sizes": list(s.checkpoint_sizes),
        "rounds": s.cli_rounds,
    }
    for size, items in runs.items():
        rows = [r for run in items for r in run["per_round"]]
        by_round: dict[int, list[dict[str, float]]] = defaultdict(list)
        for r in rows:
            by_round[int(r["round"])].append(r)
        cpu[str(size)] = {
            "median": median([r["cpu_ms"] for r in rows]),
            "wall_ms": median([r["wall_ms"] for r in rows]),
            "per_round_cpu_ms": {k: median([r["cpu_ms"] for r in v]) for k, v in sorted(by_round.items())},
            "storage_cpu_ms": median([r["storage_cpu_ms"] for r in rows]),
            "n": len(items),
        }
        growth = {k: median([r["bytes"] for r in v]) for k, v in sorted(by_round.items())}
        first, last = (growth[min(growth)], growth[max(growth)]) if growth else (None, None)
        size_bytes[str(size)] = {
            "median": median([r["bytes"] for r in rows]),
            "first": first,
            "last": last,
            "growth_last_over_first": (last / first) if first and last else None,
            "per_round": growth,
            "history_bytes_per_round": median([r["history_bytes"] for r in rows]),
            "round_1_bytes": median([run["round_1_bytes"] for run in items if run["round_1_bytes"] is not None]),
            "total_bytes": median([run["total_bytes"] for run in items]),
            "file_bytes": median([run["file_bytes"] for run in items]),
            "n": len(items),
        }
    return cpu, size_bytes


# ----------------------------------------------------------------------------- 6: sandbox budget


def measure_sandbox(s: Settings) -> dict[str, Any]:
    from imagerepainter.sandbox import random_scene, render_scene

    scenes: list[dict[str, Any]] = []
    for seed in range(1, s.scenes + 1):
        reference = render_scene(random_scene(seed))
        results = {}
        for preset in ("paper", "default"):
            rp = Repainter(mllm="sandbox", t2i="sandbox", scorer="sandbox", preset=preset)
            try:
                results[preset] = rp.run(reference, progress=False)
            finally:
                rp.close()
        paper, default = results["paper"], results["default"]
        assert paper.best is not None and paper.best.score is not None and default.best is not None
        target: float = paper.best.score
        reached = next(
            (i + 1 for i, c in enumerate(default.candidates) if c.score is not None and c.score >= target), None
        )
        scenes.append(
            {
                "scene": seed,
                "paper_images": len(paper.candidates),
                "paper_best": target,
                "default_images": len(default.candidates),
                "default_best": default.best.score,
                "default_images_to_paper_best": reached,
                "ratio": (reached / len(paper.candidates)) if reached else None,
            }
        )
    ratios = [x["ratio"] for x in scenes]
    middle = median([math.inf if r is None else r for r in ratios])  # never reached counts as infinitely many
    return {
        "unit": "ratio (default's images to reach paper's best / paper's images)",
        "scenes": scenes,
        "median": None if middle is None or math.isinf(middle) else middle,
        "at_most_half": sum(r is not None and r <= 0.5 for r in ratios),
        "never_reached": sum(r is None for r in ratios),
        "count": len(scenes),
        "paper_final_mean": statistics.fmean(x["paper_best"] for x in scenes),
        "default_final_mean": statistics.fmean(x["default_best"] for x in scenes),
        "paper_images_mean": statistics.fmean(x["paper_images"] for x in scenes),
        "default_images_mean": statistics.fmean(x["default_images"] for x in scenes),
    }


# ----------------------------------------------------------------------------- 7: imports

IMPORTS = {"import imagerepainter": "import imagerepainter", "Repainter": "from imagerepainter import Repainter"}
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=REPO
    )


def _wall(code: str) -> float:
    start = time.perf_counter()
    _python(code)
    return time.perf_counter() - start


def measure_imports(s: Settings) -> dict[str, Any]:
    figure: dict[str, Any] = {"unit": "seconds over an empty interpreter"}
    base = median([_wall("pass") for _ in range(s.repeat)]) or 0.0
    figure["empty_interpreter_s"] = base
    count = "import sys; n = len(sys.modules); {stmt}; print(len(sys.modules) - n)"
    for key, stmt in IMPORTS.items():
        walls = [_wall(stmt) - base for _ in range(s.repeat)]
        modules = int(_python(count.format(stmt=stmt)).stdout.strip())
        profile = _python(stmt, "-X", "importtime").stderr.splitlines()
        self_by_package: dict[str, float] = defaultdict(float)
        ours: dict[str, float] = {}
        for line in profile:
            m = _IMPORTTIME.match(line)
            if not m:
                continue
            self_us, cumulative_us, name = int(m.group(1)), int(m.group(2)), m.group(4)
            self_by_package[name.split(".")[0]] += self_us / 1e6
            if name.split(".")[0] == "imagerepainter":
                ours[name] = max(ours.get(name, 0.0), cumulative_us / 1e6)  # a module may be listed twice
        stdlib = sum(v for k, v in self_by_package.items() if k in sys.stdlib_module_names)
        third = sorted(
            ((k, v) for k, v in self_by_package.items() if k != "imagerepainter" and k not in sys.stdlib_module_names),
            key=lambda kv: -kv[1],
        )
        figure[key] = {
            "statement": stmt,
            "median_s": median(walls),
            "samples": walls,
            "modules": modules,
            "ours_self_s": self_by_package.get("imagerepainter", 0.0),
            "third_party_self_s": sum(v for _, v in third),
            "stdlib_self_s": stdlib,
            "top_third_party": [{"package": k, "self_s": round(v, 4)} for k, v in third[:8]],
            "top_ours_cumulative": [
                {"module": k, "cumulative_s": round(v, 4)} for k, v in sorted(ours.items(), key=lambda kv: -kv[1])[:8]
            ],
            "n": len(walls),
        }
    return figure


# ----------------------------------------------------------------------------- machine, table, main


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "langgraph": version("langgraph"),
        "langgraph-checkpoint-sqlite": version("langgraph-checkpoint-sqlite"),
        "langchain-openai": version("langchain-openai"),
        "pillow": version("pillow"),
        "imagerepainter_commit": commit,
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(figures: dict[str, Any], s: Settings) -> list[dict[str, str]]:
    """One row per figure and size: figure, value, context (absolute numbers), target, meets."""
    rows: list[dict[str, str]] = []

    def row(name: str, value: str, context: str, target: str = "(context)", ok: bool | None = None) -> None:
        """One row; without a target, a row of context that meets nothing."""
        rows.append(
            {
                "figure": name,
                "value": value,
                "context": context,
                "target": target,
                "meets": "n/a" if ok is None else ("yes" if ok else "no"),
            }
        )

    if "wall_over_critical_path" in figures:
        f1 = figures["wall_over_critical_path"]
        for size in s.sizes:
            for preset in ("default", "paper"):
                x = f1.get(f"{preset}@{size}") or {}
                limit = 1.05 if size <= 64 else 1.10
                row(
                    f"wall / critical path, {preset}, {size} px",
                    _fmt(x.get("ratio")),
                    f"wall {_fmt(x.get('wall_s'))} s, critical {_fmt(x.get('critical_path_s'))} s "
                    f"({x.get('mllm_calls')} MLLM calls in {x.get('sequential_mllm_calls')} sequential steps, "
                    f"{x.get('images')} images, {x.get('rounds')} rounds); counting the chat client's own cost "
                    f"per sequential call (row below) as the model's: {_fmt(x.get('ratio_beyond_client'))}",
                    f"<= {limit}",
                    None if x.get("ratio") is None else x["ratio"] <= limit,
                )
        wait = f1.get("wait_penalty") or {}
        if wait:
            row(
                "a request's own cost, answered at once -> after the model's delay",
                f"{_fmt(wait.get('chat_openai_at_once'), 1)} -> {_fmt(wait.get('chat_openai_after_delay'), 1)} ms",
                f"ChatOpenAI.invoke; the standard library's http.client {_fmt(wait.get('http_client_at_once'), 1)} -> "
                f"{_fmt(wait.get('http_client_after_delay'), 1)} ms: the same code runs slower after waiting "
                f"{_fmt(wait.get('delay_s'))} s for an answer, on this machine",
            )
    if "describe_in_delays" in figures:
        f2 = figures["describe_in_delays"]
        row(
            f"describe stage, in MLLM delays, {f2['size']} px",
            _fmt(f2["median"], 1),
            f"{_fmt(f2['describe_s'])} s to the first prompt ({f2['levels']} levels; the node's own timing "
            f"{_fmt(f2['describe_node_s'])} s); {_fmt(f2.get('in_client_calls'), 1)} in calls of the chat client "
            "alone (delay plus its own cost, row below)",
            "<= 3.1",
            None if f2["median"] is None else f2["median"] <= 3.1,
        )
        floor = f2.get("client_floor") or {}
        if floor:
            row(
                "the chat client's own cost per request, no loop (ChatOpenAI.invoke direct)",
                f"{_fmt(floor.get('text'), 1)} ms",
                f"beyond the server's delay, same server and delay as the runs; text; with a 512 px photo "
                f"{_fmt(floor.get('jpeg_512'), 1)} ms as JPEG, {_fmt(floor.get('png_512'), 1)} ms as PNG: a floor "
                "under every sequential MLLM call above",
            )
    if "generate_efficiency" in figures:
        f3 = figures["generate_efficiency"]
        for size in s.generate_sizes:
            x = f3[str(size)]
            row(
                f"direct diffusers call / generate node, {size} px",
                _fmt(x["median"]),
                f"node {_fmt(x['node_s_per_round'])} s, direct {_fmt(x['direct_s_per_round'])} s per round",
                ">= 0.97",
                None if x["median"] is None else x["median"] >= 0.97,
            )
    if "graph_cpu_per_round" in figures:
        f4 = figures["graph_cpu_per_round"]
        for size in s.cli_sizes:
            x = f4[str(size)]
            rounds = x["per_round_cpu_ms"]
            row(
                f"graph CPU per round beyond backends, {size} px (SQLite, sync)",
                f"{_fmt(x['median'], 1)} ms",
                f"wall beyond backends {_fmt(x['wall_ms'], 1)} ms; round {min(rounds)} "
                f"{_fmt(rounds[min(rounds)], 1)} ms, round {max(rounds)} {_fmt(rounds[max(rounds)], 1)} ms"
                if rounds
                else "",
                "< 10 ms" if size == s.cpu_size else "(context)",
                (x["median"] < 10) if size == s.cpu_size and x["median"] is not None else None,
            )
            if x.get("storage_cpu_ms") is not None:
                row(
                    f"  of which the run folder's PNG compression, {size} px",
                    f"{_fmt(x['storage_cpu_ms'], 1)} ms",
                    "lossless PNG of the round's image, in a background thread off the critical path",
                )
        x = f4["run_folder"]
        row(
            f"CPU per round beyond backends, {x['size']} px, through the CLI's RunFolder",
            f"{_fmt(x['median'], 1)} ms",
            f"wall beyond backends {_fmt(x['wall_ms'], 1)} ms; the graph plus run.json and report.html each round"
            + ("" if f4["replica_matches_cli"] else f"; NOTE the CLI now builds Repainter with {f4['cli_settings']}"),
        )
    if "checkpoint_bytes_per_round" in figures:
        f5 = figures["checkpoint_bytes_per_round"]
        for size in s.cli_sizes:
            x = f5[str(size)]
            headline = size in s.checkpoint_sizes
            ok = None
            if headline and x["median"] is not None and x["growth_last_over_first"] is not None:
                ok = x["median"] < 16_000 and x["growth_last_over_first"] <= 1.05
            row(
                f"checkpoint bytes per round, {size} px (SQLite)",
                f"{_fmt(x['median'] / 1000, 1)} KB",
                f"round 2 {_fmt(x['first'] / 1000, 1)} KB -> round {s.cli_rounds} {_fmt(x['last'] / 1000, 1)} KB "
                f"(growth x{_fmt(x['growth_last_over_first'])}); round 1 with describing "
                f"{_fmt(x['round_1_bytes'] / 1000, 1)} KB; database file {_fmt(x['file_bytes'] / 1000, 0)} KB; "
                f"plus the round's records in the history store, written once: "
                f"{_fmt(x['history_bytes_per_round'] / 1000, 1)} KB",
                "< 16 KB and flat" if headline else "(context)",
                ok,
            )
    if "sandbox_images_to_paper_best" in figures:
        f6 = figures["sandbox_images_to_paper_best"]
        row(
            f"images default needs to reach paper's best (sandbox, {f6['count']} scenes)",
            f"{_fmt(f6['median'])} (<= 0.5 in {f6['at_most_half']}/{f6['count']})",
            f"never reached in {f6['never_reached']}; final best mean default {_fmt(f6['default_final_mean'], 3)} "
            f"vs paper {_fmt(f6['paper_final_mean'], 3)}; images per run {_fmt(f6['default_images_mean'], 1)} vs "
            f"{_fmt(f6['paper_images_mean'], 1)}",
            "<= 0.5 in >= 75% of scenes, same final quality",
            f6["at_most_half"] >= 0.75 * f6["count"] and f6["default_final_mean"] >= f6["paper_final_mean"] - 0.005,
        )
    if "import_cost" in figures:
        f7 = figures["import_cost"]
        for key in IMPORTS:
            x = f7[key]
            top = ", ".join(f"{t['package']} {t['self_s']:.2f}" for t in x["top_third_party"][:4])
            ours = ", ".join(f"{t['module']} {t['cumulative_s']:.2f}" for t in x["top_ours_cumulative"][:3])
            row(
                f"`{x['statement']}`",
                f"+{_fmt(x['median_s'])} s",
                f"+{x['modules']} modules; self time ours {_fmt(x['ours_self_s'])} s, third-party "
                f"{_fmt(x['third_party_self_s'])} s ({top}), stdlib {_fmt(x['stdlib_self_s'])} s; "
                f"ours cumulative: {ours}",
                "report; trim ours",
                None,
            )
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    lines = ["| figure | value | context | target | meets |", "|---|---|---|---|---|"]
    lines += [f"| {r['figure']} | {r['value']} | {r['context']} | {r['target']} | {r['meets']} |" for r in rows]
    return "\n".join(lines)


def run_suite(s: Settings, log: Callable[[str], None] = print, only: set[str] | None = None) -> dict[str, Any]:
    """Measure every figure (or those in ``only`` and the ones measured with them); returns the JSON
    document (machine, settings, figures, table)."""
    info = machine()
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    steps: list[tuple[tuple[str, ...], Callable[[Settings], Any]]] = [
        (("wall_over_critical_path", "describe_in_delays"), measure_critical_path),
        (("generate_efficiency",), measure_generate),
        (("graph_cpu_per_round", "checkpoint_bytes_per_round"), measure_cli),
        (("sandbox_images_to_paper_best",), measure_sandbox),
        (("import_cost",), measure_imports),
    ]
    for names, measure in steps:
        if only is not None and not only & set(names):
            continue
        t = time.perf_counter()
        out = measure(s)
        out = out if isinstance(out, tuple) else (out,)
        figures.update(zip(names, out, strict=True))
        log(f"measured {', '.join(names)} in {time.perf_counter() - t:.1f} s")
    info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    rows = table(figures, s)
    return {
        "machine": info,
        "settings": {**s.__dict__, "repetitions": s.repeat},
        "seconds": time.perf_counter() - started,
        "figures": figures,
        "table": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=None, help="repetitions per figure (N; default 3, short 1)")
    parser.add_argument("--json", type=Path, help="write every figure, the settings and the machine here")
    parser.add_argument("--short", action="store_true", help="a reduced run for CI (well under a minute)")
    parser.add_argument("--scenes", type=int, help="sandbox scenes (default 20, short 2)")
    parser.add_argument(
        "--only", nargs="+", choices=FIGURES, metavar="FIGURE", help=f"measure only these: {', '.join(FIGURES)}"
    )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    s = Settings.short_mode(args.repeat) if args.short else Settings(repeat=args.repeat or 3)
    if args.scenes is not None:
        s = Settings(**{**s.__dict__, "scenes": args.scenes})
    only = set(args.only) if args.only else None
    report = run_suite(s, log=lambda line: print(line, file=sys.stderr), only=only)
    m = report["machine"]
    print(
        f"{m['cpu_model']}, {m['usable_cores']} cores, load {m['load_average']}; Python {m['python']}, "
        f"torch {m['torch']}, langgraph {m['langgraph']}; commit {m['imagerepainter_commit']}; "
        f"medians of N={s.repeat}{' (short mode)' if s.short else ''}; {report['seconds']:.0f} s"
    )
    print(markdown(report["table"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
