"""Learned perceptual distances as scorers: LPIPS and DreamSim (lower is more similar).

Both are image-to-image distances, so they are :class:`~imagerepainter.backends.base.Scorer` s
with ``higher_is_better = False``: the loop selects the candidate with the **smallest** distance
and converges on it (``--scorer lpips``), and the benchmark reports them as metrics
(``--metrics lpips``) through the same registry row.

* :class:`LPIPSScorer` — LPIPS (Zhang et al. 2018) from the ``lpips`` package: the reference and
  each candidate (resized to the reference's size, bicubic) scaled to ``[-1, 1]`` and compared by
  the network; ``net`` is ``alex`` (default), ``vgg`` or ``squeeze``.
* :class:`DreamSimScorer` — DreamSim (Fu et al. 2023) from the ``dreamsim`` package, with the
  package's own preprocessing; ``dreamsim_type`` is ``ensemble`` (default) or one backbone.

Nothing is imported when a scorer is built: the packages (``pip install "imagerepainter[perceptual]"``,
with a torchvision that matches your torch) and the pretrained weights are loaded on the first
:meth:`~LPIPSScorer.load` or score, once per process for the same settings (the model cache of
:mod:`imagerepainter._loading`). A missing package is a
:class:`~imagerepainter.errors.MissingDependencyError` naming the ``perceptual`` extra; weights that
cannot be loaded (offline, nothing cached) a :class:`~imagerepainter.errors.MetricUnavailableError`
(also a ``MissingDependencyError``) that says where they come from.

Example:
    >>> scorer = LPIPSScorer(net="vgg")          # cheap: nothing is loaded yet
    >>> scorer.spec, scorer.higher_is_better, scorer.bounds
    ('lpips?net=vgg', False, (0.0, inf))
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from PIL import Image

from .._imports import is_available
from .._loading import check_device, get_or_load, library_versions, model_key
from ..backends.base import describe_scorer
from ..errors import ConfigurationError, MetricUnavailableError, MissingDependencyError
from .pixel import to_array

__all__ = ["PERCEPTUAL_NEEDS", "DreamSimScorer", "LPIPSScorer"]

PERCEPTUAL_NEEDS: dict[str, tuple[str, ...]] = {
    "lpips": ("torch", "torchvision", "lpips"),
    "dreamsim": ("torch", "torchvision", "dreamsim"),
}
"""The packages each distance imports (all installed by the ``perceptual`` extra)."""

_WEIGHTS = {
    "lpips": "LPIPS needs the ImageNet backbone from torchvision's model zoo: offline, put the file torchvision "
    "would download into $TORCH_HOME/hub/checkpoints, or choose another scorer.",
    "dreamsim": "DreamSim downloads its checkpoint (GitHub releases) and backbones (torch hub) on first use: run it "
    "once online to fill the cache, or choose another scorer.",
}
"""Where each distance's pretrained weights come from, for the error when they cannot be loaded."""


class _PerceptualScorer:
    """Shared machinery: lazy, cached loading of a network and scoring one candidate at a time."""

    name: ClassVar[str]
    higher_is_better: bool = False
    bounds: tuple[float, float] = (0.0, math.inf)
    _defaults: ClassVar[dict[str, str]] = {}
    """The spec options besides ``device``, with their defaults (the attributes of the same names)."""

    def __init__(self, *, device: str = "cpu") -> None:
        self.device = str(device)
        """Device the network runs on (``"cpu"``, ``"cuda:0"``, ...); never chosen automatically."""
        self._model: Any = None
        self._load_lock = threading.Lock()

    def _options(self) -> dict[str, str]:
        """The spec options that differ from their defaults, in the order the spec writes them."""
        defaults = {**self._defaults, "device": "cpu"}
        return {name: getattr(self, name) for name, default in defaults.items() if getattr(self, name) != default}

    @property
    def spec(self) -> str:
        """``"lpips"``, or with the options that differ from their defaults: ``"lpips?net=vgg"``."""
        options = self._options()
        return self.name + ("?" + "&".join(f"{k}={v}" for k, v in options.items()) if options else "")

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of what computed the distances, for run results and benchmark records."""
        return {
            **describe_scorer(self),
            "device": self.device,
            **self._options(),
            "versions": library_versions("torch", "torchvision", self.name),
        }

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in {"device": self.device, **self._options()}.items())
        return f"{type(self).__name__}({options})"

    def load(self) -> _PerceptualScorer:
        """Load the network now (it is otherwise loaded on the first score); return ``self``.

        Raises:
            MissingDependencyError: a package of the ``perceptual`` extra is not installed.
            MetricUnavailableError: the pretrained weights cannot be loaded.
            ConfigurationError: the device cannot be used here.
        """
        self._network()
        return self

    def _network(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    module = import_perceptual(self.name)
                    check_device(self.device, extra="perceptual", purpose=f"the {self.name!r} scorer")
                    key = model_key(type(self).__name__, repr(self._options()), self.device, "float32")
                    self._model = get_or_load(key, lambda: self._load_weights(module))
        return self._model

    def _load_weights(self, module: Any) -> Any:
        try:
            return self._build(module)
        except Exception as exc:
            raise MetricUnavailableError(
                f"The {self.name!r} scorer cannot load its pretrained weights ({type(exc).__name__}: {exc}). "
                f"{_WEIGHTS[self.name]}",
                metric=self.name,
                missing=(self._missing_weights(),),
            ) from None

    def _build(self, module: Any) -> Any:
        """The network (and whatever else scoring needs) from the imported package."""
        raise NotImplementedError

    def _missing_weights(self) -> str:
        raise NotImplementedError

    def prepare(self, reference: Image.Image) -> Any:
        """The reference as the network's input, computed once per reference."""
        if not isinstance(reference, Image.Image):
            raise ConfigurationError(f"Scorers take PIL images, got {type(reference).__name__}.")
        self._network()  # a missing package or weights is named here, before the run's first paid call
        return self._tensor(reference, reference.size)

    def score(self, prepared: Any, candidates: Sequence[Image.Image]) -> list[float]:
        """The distance of each candidate from the prepared reference, in order (0 for the same image)."""
        torch = importlib.import_module("torch")
        network = self._network()
        size = (int(prepared.shape[-1]), int(prepared.shape[-2]))
        with torch.inference_mode():
            return [float(self._distance(network, prepared, self._tensor(c, size)).flatten()[0]) for c in candidates]

    def _tensor(self, image: Image.Image, size: tuple[int, int]) -> Any:
        raise NotImplementedError

    def _distance(self, network: Any, reference: Any, candidate: Any) -> Any:
        return network(reference, candidate)


class LPIPSScorer(_PerceptualScorer):
    """LPIPS distance (Zhang et al. 2018); lower is more similar.

    Args:
        net: The backbone: ``"alex"`` (default, as the LPIPS authors recommend), ``"vgg"`` or ``"squeeze"``.
        device: The torch device.
    """

    name = "lpips"
    _defaults: ClassVar[dict[str, str]] = {"net": "alex"}

    def __init__(self, *, net: str = "alex", device: str = "cpu") -> None:
        if net not in ("alex", "vgg", "squeeze"):
            raise ConfigurationError(f"lpips net must be 'alex', 'vgg' or 'squeeze', got {net!r}.")
        super().__init__(device=device)
        self.net = net

    def _build(self, module: Any) -> Any:
        return module.LPIPS(net=self.net, verbose=False).eval().to(self.device)

    def _missing_weights(self) -> str:
        return f"torchvision ImageNet {self.net} weights"

    def _tensor(self, image: Image.Image, size: tuple[int, int]) -> Any:
        torch = importlib.import_module("torch")
        array = to_array(image, size) * 2.0 - 1.0  # LPIPS takes [-1, 1]
        return torch.from_numpy(array).permute(2, 0, 1).float()[None].to(self.device)


class DreamSimScorer(_PerceptualScorer):
    """DreamSim distance (Fu et al. 2023); lower is more similar.

    Args:
        dreamsim_type: ``"ensemble"`` (default) or one backbone the ``dreamsim`` package offers.
        device: The torch device.
    """

    name = "dreamsim"
    _defaults: ClassVar[dict[str, str]] = {"dreamsim_type": "ensemble"}

    def __init__(self, *, dreamsim_type: str = "ensemble", device: str = "cpu") -> None:
        super().__init__(device=device)
        self.dreamsim_type = dreamsim_type
        self._preprocess: Any = None

    def _build(self, module: Any) -> Any:
        return module.dreamsim(pretrained=True, device=self.device, dreamsim_type=self.dreamsim_type)

    def _missing_weights(self) -> str:
        return f"DreamSim {self.dreamsim_type} checkpoint"

    def _tensor(self, image: Image.Image, size: tuple[int, int]) -> Any:
        _, preprocess = self._network()  # DreamSim resizes with its own preprocessing
        return preprocess(image.convert("RGB")).to(self.device)

    def _distance(self, network: Any, reference: Any, candidate: Any) -> Any:
        model, _ = network
        return model(reference, candidate)


def import_perceptual(name: str) -> Any:
    """Import the package of the ``lpips`` or ``dreamsim`` scorer, or say what to install.

    Raises:
        MissingDependencyError: a package of :data:`PERCEPTUAL_NEEDS` is not installed, or is
            installed but cannot be imported (e.g. a torchvision built for another torch); its
            ``extras`` is ``("perceptual",)``.
    """
    needs = PERCEPTUAL_NEEDS[name]
    install = (
        f'pip install "imagerepainter[perceptual]" (installs {", ".join(needs[1:])}; torchvision must match your torch)'
    )
    missing = [module for module in needs if not is_available(module)]
    if missing:
        error = MissingDependencyError(
            f"The {name!r} scorer needs the packages {', '.join(missing)}, which are not installed: {install}."
        )
    else:
        try:
            return importlib.import_module(name)
        except ImportError as exc:  # installed but broken
            error = MissingDependencyError(
                f"The {name!r} scorer cannot import {name!r}: {type(exc).__name__}: {exc}. {install}."
            )
    error.extras = ("perceptual",)
    raise error
