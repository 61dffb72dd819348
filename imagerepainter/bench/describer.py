"""The shared description: the MLLM describes each reference once, for every model and mode.

The paper's regeneration starts from the MLLM's reading of the reference (Image
Understanding Tree, then a prompt). For a fair comparison every text-to-image model, in both
modes, must start from the *same* prompt, and the MLLM must not be paid again for each
model. :class:`Describer` computes a description once per key (reference sha256, MLLM,
prompt version, the settings that shape a description), stores it in the results database,
and hands the stored one to every later case, in this process or after a restart. Cases of
the same reference that run at the same time wait for the one description in flight.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

from PIL import Image

from ..config import RepainterConfig
from ..loop.prompts import PROMPT_VERSION
from ..results import Description
from .records import DEFAULT_DESCRIBER
from .store import ResultsStore, stable_hash

__all__ = ["DESCRIPTION_SETTINGS", "Describer", "Describers", "description_key"]

DESCRIPTION_SETTINGS = ("preset", "max_objects", "prompt_style", "mllm_image_max_side", "mllm_image_format")
"""The settings that change what the MLLM is asked when it describes a reference."""


def description_key(reference_sha256: str, mllm: str, config: RepainterConfig, describer: str | None = None) -> str:
    """The key a description is stored under: the reference, the MLLM, the prompt version and
    the settings of :data:`DESCRIPTION_SETTINGS`; and a named describer's name (two describers
    with one spec describe separately); ``None``, one unnamed MLLM, keys as it always did.

    Example:
        >>> a = description_key("0" * 64, "sandbox", RepainterConfig())
        >>> a == description_key("0" * 64, "sandbox", RepainterConfig(max_rounds=9))  # not a description setting
        True
        >>> a == description_key("0" * 64, "sandbox", RepainterConfig(max_objects=2))
        False
    """
    settings = {name: getattr(config, name) for name in DESCRIPTION_SETTINGS}
    named = {} if describer is None else {"describer": describer}
    fields = {"reference": reference_sha256, "mllm": mllm, "prompt_version": PROMPT_VERSION, **settings, **named}
    return stable_hash(fields)[:32]


class Describer:
    """Describes each reference once and keeps the descriptions in the results database.

    Args:
        mllm: The resolved MLLM.
        mllm_key: How the MLLM is named in keys (its spec).
        config: The evaluation's settings (only :data:`DESCRIPTION_SETTINGS` matter).
        store: The results database.
        name: The describer's name (``--mllm NAME=SPEC``); part of the key unless it is
            :data:`~imagerepainter.bench.records.DEFAULT_DESCRIBER`.
    """

    def __init__(
        self, *, mllm: Any, mllm_key: str, config: RepainterConfig, store: ResultsStore, name: str = DEFAULT_DESCRIBER
    ) -> None:
        self.mllm, self.mllm_key, self.config, self.store, self.name = mllm, mllm_key, config, store, name
        self.computed = 0
        """Descriptions computed (paid for) by this describer."""
        self.reused = 0
        """Descriptions read back from the database instead."""
        self.described: list[Description] = []
        """The descriptions this describer computed (paid for), in order: what a budget counts."""
        self._futures: dict[str, Future[Description]] = {}
        self._lock = threading.Lock()
        self._repainter: Any = None

    def key(self, reference_sha256: str) -> str:
        """The storage key of a reference's description."""
        named = None if self.name == DEFAULT_DESCRIBER else self.name
        return description_key(reference_sha256, self.mllm_key, self.config, named)

    def get(self, reference_sha256: str, image: Image.Image) -> Description:
        """The description of the reference: stored, in flight, or computed now.

        A failure is kept for this describer's lifetime (the other cases of the reference
        fail with it instead of paying again); a new evaluation tries again.
        """
        key = self.key(reference_sha256)
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if owner:
                future = self._futures[key] = Future()
        assert future is not None
        if not owner:
            return future.result()
        try:
            stored = self.store.get_description(key)
            if stored is not None:
                description = Description.model_validate(stored["description"])
                with self._lock:
                    self.reused += 1
            else:
                start = time.perf_counter()
                description = self._describing_repainter().describe(image)
                self.store.put_description(
                    key,
                    reference_sha256=reference_sha256,
                    mllm=self.mllm_key,
                    prompt_version=description.prompt_version,
                    record={"description": description.model_dump(mode="json"), "seconds": time.perf_counter() - start},
                )
                with self._lock:
                    self.computed += 1
                    self.described.append(description)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(description)
        return description

    def _describing_repainter(self) -> Any:
        """A Repainter that only describes: its MLLM and settings are the evaluation's; its
        renderer and scorer are the light sandbox ones, never called when describing (a model
        is never loaded just to describe)."""
        with self._lock:
            if self._repainter is None:
                from ..repainter import Repainter
                from ..sandbox import SandboxScorer, SandboxT2I

                self._repainter = Repainter(
                    mllm=self.mllm, t2i=SandboxT2I(), scorer=SandboxScorer(), config=self.config
                )
            return self._repainter

    @property
    def described_with(self) -> Any:
        """The resolved MLLM that described references in this process, or ``None`` when none was needed."""
        return None if self._repainter is None else self._repainter.mllm

    def close(self) -> None:
        """Release the describing Repainter's worker threads."""
        if self._repainter is not None:
            self._repainter.close()


class Describers:
    """The describers of an evaluation by name (one per ``--mllm NAME=SPEC``), each describing
    every reference once; what the executors ask for a case's description.

    Args:
        describers: Each describer by its name.
    """

    def __init__(self, describers: dict[str, Describer]) -> None:
        self.describers = describers

    @classmethod
    def of(cls, source: Describer | Describers) -> Describers:
        """``source`` as describers: a single :class:`Describer` is the panel of its one name."""
        return source if isinstance(source, Describers) else cls({source.name: source})

    def get(self, reference_sha256: str, image: Image.Image, describer: str = DEFAULT_DESCRIBER) -> Description:
        """The description of the reference by ``describer`` (see :meth:`Describer.get`)."""
        found = self.describers.get(describer)
        if found is None:
            raise KeyError(f"No describer {describer!r} in this evaluation; it has {sorted(self.describers)}.")
        return found.get(reference_sha256, image)

    @property
    def computed(self) -> int:
        """Descriptions computed (paid for), over every describer."""
        return sum(d.computed for d in self.describers.values())

    @property
    def reused(self) -> int:
        """Descriptions read back from the database, over every describer."""
        return sum(d.reused for d in self.describers.values())

    @property
    def described_with(self) -> list[Any]:
        """The resolved MLLMs that described references in this process (see :attr:`Describer.described_with`)."""
        return [d.described_with for d in self.describers.values() if d.described_with is not None]

    def close(self) -> None:
        """Release every describer's worker threads."""
        for describer in self.describers.values():
            describer.close()
