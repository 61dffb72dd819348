"""LPIPS and DreamSim are scorers (lower is better): one registry row serves ``--scorer`` and ``--metrics``.

The ``lpips`` and ``dreamsim`` packages are not installed here. The missing-package path is tested
as it is; the scoring logic runs on stand-in modules put in ``sys.modules`` with the packages' real
API shape (``lpips.LPIPS(net=..., verbose=False)`` a torch module called on two ``[-1, 1]``
tensors; ``dreamsim.dreamsim(pretrained=True, device=..., dreamsim_type=...)`` returning the model
and its preprocessing). The networks are replaced by a mean absolute difference, so the values
are checkable by hand.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from imagerepainter import Repainter
from imagerepainter.backends.registry import check_backends, resolve_scorer
from imagerepainter.bench.metrics import compute_metrics, resolve_metrics
from imagerepainter.errors import ConfigurationError, MetricUnavailableError, MissingDependencyError
from imagerepainter.scorers import clear_model_cache
from imagerepainter.scorers.perceptual import DreamSimScorer, LPIPSScorer

torch = pytest.importorskip("torch")


def flat(color: tuple[int, int, int], size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), color)


class MeanAbs(torch.nn.Module):  # stands in for a network: |a - b| averaged over what the scorer feeds it
    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        MeanAbs.built.append(kwargs)

    def forward(self, a: Any, b: Any) -> Any:
        assert a.shape == b.shape and a.dim() == 4
        return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``lpips``, ``dreamsim`` and ``torchvision`` as importable modules with the real entry points."""
    MeanAbs.built = []

    def dreamsim(*, pretrained: bool, device: str, dreamsim_type: str) -> Any:
        assert pretrained
        MeanAbs.built.append({"dreamsim_type": dreamsim_type})

        def preprocess(image: Image.Image) -> Any:  # DreamSim resizes to its own size, in [0, 1]
            pixels = torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32) / 255.0)
            return pixels.permute(2, 0, 1)[None]

        def model(a: Any, b: Any) -> Any:
            return (a - b).abs().mean(dim=(1, 2, 3))

        return model, preprocess

    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=MeanAbs))
    monkeypatch.setitem(sys.modules, "dreamsim", types.SimpleNamespace(dreamsim=dreamsim))
    if "torchvision" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    clear_model_cache()
    yield
    clear_model_cache()


# ----------------------------------------------------------------------------- missing packages


@pytest.mark.parametrize("name", ["lpips", "dreamsim"])
def test_a_missing_package_names_the_perceptual_extra_for_scorer_and_metric(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, name, None)  # not importable, whatever is installed
    for attempt in (lambda: resolve_scorer(name), lambda: resolve_metrics([name])):
        with pytest.raises(MissingDependencyError, match=r"imagerepainter\[perceptual\]") as info:
            attempt()
        assert name in str(info.value) and info.value.extras == ("perceptual",)
    with pytest.raises(MissingDependencyError, match=rf"'{name}' scorer needs .*{name}") as info:
        check_backends(mllm="sandbox", t2i="sandbox", scorer=name)  # before a run builds anything
    assert info.value.extras == ("perceptual",)
    scorer = LPIPSScorer() if name == "lpips" else DreamSimScorer()  # built in Python: cheap, fails on load
    with pytest.raises(MissingDependencyError, match=r'pip install "imagerepainter\[perceptual\]"') as info:
        scorer.load()
    assert info.value.extras == ("perceptual",)


def test_weights_that_cannot_load_say_where_they_come_from(stand_ins: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.error import URLError

    def offline(**kwargs: Any) -> Any:
        raise URLError("no network")  # what torchvision's model zoo raises offline

    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=offline))
    scorer = resolve_scorer("lpips?net=vgg")  # resolving loads nothing
    with pytest.raises(MetricUnavailableError, match=r"pretrained weights \(URLError") as info:
        scorer.load()
    assert info.value.missing == ("torchvision ImageNet vgg weights",) and "TORCH_HOME" in str(info.value)
    with pytest.raises(ConfigurationError, match="device"):  # checked with the spec, before any weight is loaded
        resolve_scorer("lpips?device=cuda:7")
    with pytest.raises(ConfigurationError, match=r"Did you mean 'net'"):
        resolve_metrics(["lpips?nett=vgg"])


# ----------------------------------------------------------------------------- scoring


def test_lpips_scores_images_scaled_to_minus_one_one_and_loads_once(stand_ins: None) -> None:
    scorer = resolve_scorer("lpips")
    assert (scorer.higher_is_better, scorer.spec) == (False, "lpips")
    white = flat((255, 255, 255))
    values = scorer.score(scorer.prepare(white), [white, flat((0, 0, 0), 32)])
    assert values == pytest.approx([0.0, 2.0])  # white vs black spans [-1, 1]; the 32 px image is resized
    (metric,) = resolve_metrics(["lpips"])  # the same row, as a metric
    assert metric.higher_is_better is False and metric.describe()["scorer"]["spec"] == "lpips"
    assert compute_metrics([metric], white, [flat((0, 0, 0))])["lpips"] == pytest.approx([2.0])
    assert MeanAbs.built == [{"net": "alex", "verbose": False}]  # one network per process for one setting
    resolve_scorer("lpips?net=vgg").load()
    assert [b["net"] for b in MeanAbs.built] == ["alex", "vgg"]


def test_dreamsim_uses_its_own_preprocessing(stand_ins: None) -> None:
    scorer = resolve_scorer("dreamsim?dreamsim_type=dino_vitb16")
    assert scorer.spec == "dreamsim?dreamsim_type=dino_vitb16" and scorer.higher_is_better is False
    grey = flat((0, 0, 0), 24)
    assert scorer.score(scorer.prepare(grey), [grey, flat((255, 0, 0), 40)]) == pytest.approx([0.0, 1 / 3])
    assert scorer.describe()["dreamsim_type"] == "dino_vitb16"


# ----------------------------------------------------------------------------- the loop with a distance


def test_the_loop_selects_the_smallest_distance_and_stops_on_a_target_below(stand_ins: None) -> None:
    from imagerepainter.sandbox import random_scene, render_scene

    reference = render_scene(random_scene(5), seed=3)
    rp = Repainter(mllm="sandbox", t2i="sandbox?fidelity=0.5", scorer="lpips", max_rounds=3, variants=2)
    result = rp.run(reference, patience=None)
    scores = [c.score for r in result.rounds for c in r.candidates if c.score is not None]
    assert len(result.rounds) == 3 and len(set(scores)) > 1  # candidates that differ, so the choice matters
    assert result.best is not None and result.best.score == min(scores)
    for rnd in result.rounds:
        round_scores = [c.score for c in rnd.candidates if c.score is not None]
        assert rnd.candidates[rnd.best_index].score == min(round_scores)
    so_far = [r.best_score_so_far for r in result.rounds]
    assert so_far == sorted(so_far, reverse=True)  # the best so far only ever goes down
    # A target is reached by going *below* it: a first round's distance under 10 stops the loop at once.
    stopped = rp.run(reference, target_score=10.0, patience=None)
    assert (stopped.stop_reason, len(stopped.rounds)) == ("target_reached", 1)
    unreachable = rp.run(reference, target_score=-1.0, patience=None)  # no distance is below 0
    assert unreachable.stop_reason == "max_rounds"
