"""Run an evaluation's cases on a Ray cluster: one actor per GPU, results into the same database.

Each actor builds a :class:`~imagerepainter.bench.engine.Workbench` once (the text-to-image
models it is asked for, loaded on first use and kept; the loop's scorer; the metrics) and
runs the cases it is sent. The driver — the process that called ``evaluate`` — reads the
references, gets each one's shared description (the MLLM describes a reference once, for all
models and modes), sends the case with the reference's PNG bytes to a free actor (nothing
needs a shared file system), and writes what comes back into ``results.sqlite`` as the local
executor does; so a Ray run resumes, skips and retries exactly like a local one.

Needs the ``ray`` extra (``pip install "imagerepainter[ray]"``). Example for a machine or
cluster with 8 GPUs (one actor per GPU, each holding its own copy of the models)::

    ray start --head --num-gpus 8          # or a cluster: ray start --address HEAD:6379 on each node
    imagerepainter eval evalref-100 --mllm openai:gpt-4o \\
        --t2i sdxl="diffusers:stabilityai/sdxl-turbo?device=cuda&torch_dtype=float16" \\
        --executor ray --ray-address auto --max-concurrency 16 --out eval-sdxl

Use ``device=cuda`` in specs: Ray gives each actor one GPU and sets ``CUDA_VISIBLE_DEVICES``,
so ``cuda`` is that actor's GPU.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .._imports import require
from ..images import encode_png
from ..results import Description
from .breaker import BREAKER_THRESHOLD, CircuitBreaker
from .describer import Describers
from .engine import CaseJob, CaseOutcome, Workbench, WorkerSpec, failed_case
from .executors import describe_ahead, prepare_case
from .scheduler import schedule

__all__ = ["RayExecutor"]


class _CaseActor:
    """A Ray actor: one Workbench, kept for the whole evaluation."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.bench = Workbench(spec)

    def ready(self) -> bool:
        """Answers once the actor is built (its scorer and metrics loaded)."""
        return True

    def run_case(self, job: CaseJob, png: bytes, description: dict[str, Any]) -> CaseOutcome:
        from ..images import load_image

        return self.bench.run_case(job, load_image(png), Description.model_validate(description)).encoded()


class RayExecutor:
    """Spread cases over a Ray cluster.

    Args:
        address: The cluster to join (``"auto"``, ``"ray://head:10001"``); ``None`` starts a
            local Ray (or uses the one this process already started with ``ray.init``).
        num_actors: How many actors; default one per GPU of the cluster (one CPU actor on a
            machine without a GPU).
        gpus_per_actor: GPUs reserved by each actor; default 1 when the cluster has GPUs, else 0.
        cpus_per_actor: CPUs reserved by each actor.
        cases_per_actor: Cases an actor runs at once (their MLLM calls overlap, their renders are
            batched); default ``max_concurrency`` shared out over the actors, so
            ``max_concurrency`` is honoured with or without GPUs.
        max_concurrency: Cases in flight over the whole cluster.
        breaker_threshold: Consecutive failed cases that stop a model (see :mod:`~imagerepainter.bench.breaker`).
        init_options: More keyword arguments for ``ray.init`` (e.g. ``num_cpus=2``).

    A local Ray started here runs with token authentication and a fresh random token held in
    this process's environment for the evaluation (``RAY_AUTH_TOKEN``), so Ray neither warns
    about authentication nor writes a token file into the home folder; set ``RAY_AUTH_MODE``
    yourself to choose otherwise. Ray still keeps its session logs in its temporary folder
    (``/tmp/ray``). :attr:`start_seconds` is what starting Ray and the actors cost.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_actors: int | None = None,
        gpus_per_actor: float | None = None,
        cpus_per_actor: float = 1,
        cases_per_actor: int | None = None,
        max_concurrency: int = 4,
        breaker_threshold: int = BREAKER_THRESHOLD,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.address, self.num_actors, self.gpus_per_actor = address, num_actors, gpus_per_actor
        self.cpus_per_actor, self.cases_per_actor = cpus_per_actor, cases_per_actor
        self.max_concurrency, self.breaker_threshold = max_concurrency, breaker_threshold
        self.init_options = dict(init_options or {})
        self.start_seconds = 0.0
        """Seconds spent starting Ray (when started here) and building the actors."""

    def __call__(
        self, jobs: Sequence[CaseJob], worker: WorkerSpec, describer: Describers, budget: Any = None
    ) -> Iterator[CaseOutcome]:
        start = time.perf_counter()
        imported = sys.modules.get("ray")
        started = imported is None or not imported.is_initialized()
        with _quiet_local_auth(self.address if started else "joined"):
            ray = require("ray", extra="ray", purpose="the Ray executor")
            if started:
                ray.init(address=self.address, **({"include_dashboard": False} | self.init_options))
            try:
                actors, per_actor = self._actors(ray, worker)
                free: queue.Queue[Any] = queue.Queue()
                for actor in actors:
                    for _ in range(per_actor):
                        free.put(actor)
                ray.get([actor.ready.remote() for actor in actors])
                self.start_seconds = time.perf_counter() - start

                ahead = describe_ahead(jobs, describer, budget)

                def task(job: CaseJob) -> CaseOutcome:
                    ahead.started(job)
                    prepared = prepare_case(job, describer)  # description and reference read here, on the driver
                    if isinstance(prepared, CaseOutcome):
                        return prepared
                    image, description = prepared
                    actor = free.get()
                    try:
                        png, desc = encode_png(image), description.model_dump(mode="json")
                        return ray.get(actor.run_case.remote(job, png, desc))  # type: ignore[no-any-return]
                    except Exception as exc:  # the actor died: this case fails, the rest go on
                        return CaseOutcome(failed_case(job, exc))
                    finally:
                        free.put(actor)

                breaker = CircuitBreaker(self.breaker_threshold)
                try:
                    yield from schedule(
                        task, jobs, max_concurrency=self.max_concurrency, breaker=breaker, budget=budget
                    )
                finally:
                    ahead.close()
                    for actor in actors:
                        ray.kill(actor)
            finally:
                if started:
                    ray.shutdown()

    def _actors(self, ray: Any, worker: WorkerSpec) -> tuple[list[Any], int]:
        """The actors (CPU actors on a cluster without GPUs) and how many cases each runs at once."""
        gpus = float(ray.cluster_resources().get("GPU", 0))
        count = self.num_actors or max(1, int(gpus))
        per_gpu = self.gpus_per_actor if self.gpus_per_actor is not None else (1.0 if gpus >= 1 else 0.0)
        per_actor = self.cases_per_actor or max(1, -(-self.max_concurrency // count))
        actor_class = ray.remote(num_cpus=self.cpus_per_actor, num_gpus=per_gpu)(_CaseActor)
        return [actor_class.options(max_concurrency=per_actor).remote(worker) for _ in range(count)], per_actor


@contextlib.contextmanager
def _quiet_local_auth(address: str | None) -> Iterator[None]:
    """For a local Ray started here with no authentication settings: token authentication with a
    random token held in the environment for the evaluation (no warning, no token file)."""
    names = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    if address is not None or any(name in os.environ for name in names):
        yield
        return
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    _reload_ray_settings()
    try:
        yield
    finally:
        for name in names:
            os.environ.pop(name, None)
        _reload_ray_settings()


def _reload_ray_settings() -> None:
    """Ray reads ``RAY_AUTH_MODE`` when it is imported: have an imported Ray read it again."""
    if "ray" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["ray"]._raylet.Config.initialize("")
