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

import queue
from collections.abc import Iterator, Sequence
from typing import Any

from .._imports import require
from ..images import encode_png
from ..results import Description
from .describer import Describer
from .engine import CaseJob, CaseOutcome, Workbench, WorkerSpec, failed_case
from .executors import bounded_map, prepare_case

__all__ = ["RayExecutor"]


class _CaseActor:
    """A Ray actor: one Workbench, kept for the whole evaluation."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.bench = Workbench(spec)

    def run_case(self, job: CaseJob, png: bytes, description: dict[str, Any]) -> CaseOutcome:
        from ..images import load_image

        return self.bench.run_case(job, load_image(png), Description.model_validate(description))


class RayExecutor:
    """Spread cases over a Ray cluster.

    Args:
        address: The cluster to join (``"auto"``, ``"ray://head:10001"``); ``None`` starts a
            local Ray (or uses the one this process already started with ``ray.init``).
        num_actors: How many actors; default one per GPU of the cluster (one on a machine
            without a GPU).
        gpus_per_actor: GPUs reserved by each actor; default 1 when the cluster has GPUs, else 0.
        cpus_per_actor: CPUs reserved by each actor.
        cases_per_actor: Cases an actor runs at once (their MLLM calls overlap; renders of one
            model still run one at a time on its GPU).
        max_concurrency: Cases in flight over the whole cluster.
        init_options: More keyword arguments for ``ray.init`` (e.g. ``num_cpus=2``).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_actors: int | None = None,
        gpus_per_actor: float | None = None,
        cpus_per_actor: float = 1,
        cases_per_actor: int = 2,
        max_concurrency: int = 4,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.address, self.num_actors, self.gpus_per_actor = address, num_actors, gpus_per_actor
        self.cpus_per_actor, self.cases_per_actor, self.max_concurrency = (
            cpus_per_actor,
            cases_per_actor,
            max_concurrency,
        )
        self.init_options = dict(init_options or {})

    def __call__(self, jobs: Sequence[CaseJob], worker: WorkerSpec, describer: Describer) -> Iterator[CaseOutcome]:
        ray = require("ray", extra="ray", purpose="the Ray executor")
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, **self.init_options)
        gpus = float(ray.cluster_resources().get("GPU", 0))
        count = self.num_actors or max(1, int(gpus))
        per_gpu = self.gpus_per_actor if self.gpus_per_actor is not None else (1.0 if gpus >= 1 else 0.0)
        actor_class = ray.remote(num_cpus=self.cpus_per_actor, num_gpus=per_gpu)(_CaseActor)
        actors = [actor_class.options(max_concurrency=self.cases_per_actor).remote(worker) for _ in range(count)]
        free: queue.Queue[Any] = queue.Queue()
        for actor in actors:
            for _ in range(self.cases_per_actor):
                free.put(actor)

        def task(job: CaseJob) -> CaseOutcome:
            prepared = prepare_case(job, describer)  # description and reference read here, on the driver
            if isinstance(prepared, CaseOutcome):
                return prepared
            image, description = prepared
            actor = free.get()
            try:
                return ray.get(actor.run_case.remote(job, encode_png(image), description.model_dump(mode="json")))  # type: ignore[no-any-return]
            except Exception as exc:  # the actor died or could not be built: this case fails, the rest go on
                return CaseOutcome(failed_case(job, exc))
            finally:
                free.put(actor)

        try:
            yield from bounded_map(task, jobs, max_concurrency=self.max_concurrency)
        finally:
            for actor in actors:
                ray.kill(actor)
            if started:
                ray.shutdown()
