"""Third-party backends, found through real entry points, get the same option checking as built-ins.

The plugin is a real installed distribution as far as ``importlib.metadata`` is concerned: a
``*.dist-info`` folder with ``METADATA`` and ``entry_points.txt`` on ``sys.path``, next to the
module it points at. Nothing is mocked.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagerepainter import Repainter
from imagerepainter.backends import available_backends, register_backend, resolve_scorer, resolve_t2i
from imagerepainter.backends.registry import BackendEntry, register_entry
from imagerepainter.errors import ConfigurationError, MissingDependencyError, UnknownBackendError

MODULE = "repainter_plugin_example"

PLUGIN = '''
from __future__ import annotations

from PIL import Image

from imagerepainter.backends import GeneratedImage, T2ICapabilities


class MineT2I:
    """A flat-colour renderer: a T2I backend from another package."""

    capabilities = T2ICapabilities(max_batch_size=4)

    def __init__(self, model: str | None = None, *, batch_size: int = 1, shade: float = 0.5,
                 dither: bool = False, device: str = "cpu") -> None:
        self.name = f"mine:{model or 'flat'}"
        self.batch_size, self.shade, self.dither, self.device = batch_size, shade, dither, device

    def generate(self, requests):
        grey = int(255 * self.shade)
        return [GeneratedImage(Image.new("RGB", (r.width or 32, r.height or 32), (grey,) * 3)) for r in requests]


class MeanScorer:
    name = "mean"
    higher_is_better = True
    bounds = (0.0, 1.0)

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def prepare(self, reference):
        return reference

    def score(self, prepared, candidates):
        return [self.scale for _ in candidates]


def make_scorer(model: str | None, *, scale: float = 1.0, window: int = 8) -> MeanScorer:
    """A factory function, as entry points may name one."""
    return MeanScorer(scale)
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the plugin distribution on sys.path for one test."""
    site = tmp_path / "site"
    (site / "repainter_plugin_example-1.0.dist-info").mkdir(parents=True)
    (site / f"{MODULE}.py").write_text(PLUGIN)
    info = site / "repainter_plugin_example-1.0.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: repainter-plugin-example\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [imagerepainter.backends]
            t2i.mine = {MODULE}:MineT2I
            scorer.mean = {MODULE}:make_scorer
            scorer.broken = {MODULE}_missing:make
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop(MODULE, None)


def test_entry_point_backends_are_listed_and_built(plugin: Path) -> None:
    listed = available_backends()
    assert "mine" in listed["t2i"] and {"mean", "broken"} <= set(listed["scorer"])
    t2i = resolve_t2i("mine:v2?batch_size=2&shade=0.25&dither=yes")
    assert (t2i.name, t2i.batch_size, t2i.shade, t2i.dither) == ("mine:v2", 2, 0.25, True)  # converted to their types
    assert resolve_scorer("mean?scale=0.5").scale == 0.5


@pytest.mark.parametrize(
    ("resolve", "spec", "expected"),
    [
        (resolve_t2i, "mine?bach=2", r"Unknown option 'bach' in the 'mine' text-to-image spec\. Did you mean"),
        (
            resolve_t2i,
            "mine?batch_sise=2",
            r"Did you mean 'batch_size'\? Accepted options: batch_size, device, dither, shade",
        ),
        (resolve_scorer, "mean?scael=2", r"Unknown option 'scael' in the 'mean' scorer spec\. Did you mean 'scale'\?"),
        (resolve_scorer, "mean?windw=3", r"Did you mean 'window'\? Accepted options: scale, window\."),
    ],
)
def test_a_misspelt_option_of_a_plugin_is_refused_with_a_suggestion(plugin, resolve, spec, expected) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        resolve(spec)


@pytest.mark.parametrize(
    ("resolve", "spec", "expected"),
    [
        (resolve_t2i, "mine?batch_size=two", r"Option 'batch_size' must be a whole number, got 'two'"),
        (resolve_t2i, "mine?dither=perhaps", r"Option 'dither' must be true or false, got 'perhaps'"),
        (resolve_scorer, "mean?scale=high", r"Option 'scale' must be a number, got 'high'"),
    ],
)
def test_a_plugin_option_value_is_converted_or_refused(plugin, resolve, spec, expected) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        resolve(spec)


def test_a_plugin_device_this_torch_cannot_use_is_refused(plugin: Path, monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigurationError, match=r"asks for CUDA, but torch .* sees no CUDA GPU"):
        resolve_t2i("mine?device=cuda:0")
    assert resolve_t2i("mine?device=tpu-pod-3").device == "tpu-pod-3"  # not a torch device: the plugin's business


def test_a_plugin_typo_fails_when_the_repainter_is_built(plugin: Path) -> None:
    with pytest.raises(ConfigurationError, match="Did you mean 'batch_size'"):
        Repainter(mllm="sandbox", t2i="mine?bach_size=2", scorer="sandbox")
    rp = Repainter(mllm="sandbox", t2i="mine?shade=0.2", scorer="mean", max_rounds=1)
    assert rp.run(Image.new("RGB", (32, 32), "white")).best is not None


def test_a_plugin_that_cannot_be_imported_names_itself(plugin: Path) -> None:
    with pytest.raises(MissingDependencyError, match=r"'broken' scorer backend \(repainter_plugin_example_missing"):
        resolve_scorer("broken")


def test_entry_points_are_read_again_when_sys_path_changes(plugin: Path, monkeypatch) -> None:
    assert "mine" in available_backends()["t2i"]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(plugin)])
    assert "mine" not in available_backends()["t2i"]
    with pytest.raises(UnknownBackendError):
        resolve_t2i("mine")


def test_register_backend_gets_the_same_checks() -> None:
    def make(model: str | None, *, steps: int = 1, **anything: Any) -> Any:  # **anything is not an option
        return resolve_t2i("sandbox")

    register_backend("t2i", "coded", make)
    try:
        with pytest.raises(ConfigurationError, match=r"Did you mean 'steps'\? Accepted options: steps\."):
            resolve_t2i("coded?step=2")
        with pytest.raises(ConfigurationError, match="must be a whole number"):
            resolve_t2i("coded?steps=many")
        assert resolve_t2i("coded?steps=3").name == "sandbox"
    finally:
        register_entry(BackendEntry("t2i", "coded", make))  # leave a harmless row; providers cannot be removed


def test_secret_options_and_secret_values_are_never_echoed(plugin: Path) -> None:
    token = "Zq7RkP2mXw9vLs4TgB8nYc3H"
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY") as info:
        resolve_t2i(f"mine?api_key={token}")
    assert token not in str(info.value)
    with pytest.raises(ConfigurationError, match="Option 'shade' must be a number, got a value of 24") as info:
        resolve_t2i(f"mine?shade={token}")  # a key pasted into the wrong option
    assert token not in str(info.value)


# ----------------------------------------------------------------------------- the docs' example

DOC = Path(__file__).resolve().parents[1] / "docs" / "backends.md"


def _fenced(text: str, language: str) -> list[str]:
    return [block.split("```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


@pytest.fixture
def docs_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Install the backends of docs/backends.md's "Registering a backend from your package"."""
    section = DOC.read_text().split("### Registering a backend from your package", 1)[1]
    (toml,) = _fenced(section, "toml")
    python = _fenced(section, "python")
    assert len(python) == 2 and all(len(block.strip().splitlines()) < 20 for block in python)  # the docs promise
    site = tmp_path / "site"
    info = site / "my_backends-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "my_backends.py").write_text("\n\n".join(python))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-backends\nVersion: 0.1\n")
    lines = [line.replace('"', "") for line in toml.splitlines() if line.startswith('"')]
    (info / "entry_points.txt").write_text("[imagerepainter.backends]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("my_backends", None)


def test_the_docs_example_backends_work_and_are_checked(docs_plugin: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Did you mean 'shade'\?"):
        resolve_t2i("flat?shde=0.2")
    with pytest.raises(ConfigurationError, match=r"Unknown option 'sise' in the 'mean' scorer spec\. Did you mean"):
        resolve_scorer("mean?sise=32")
    rp = Repainter(mllm="sandbox", t2i="flat:dark?shade=0.2&batch_size=2", scorer="mean?size=32", max_rounds=1)
    result = rp.run(Image.new("RGB", (32, 32), (51, 51, 51)))
    assert rp.t2i.name == "flat:dark" and rp.t2i.batch_size == 2
    assert result.best is not None and result.best.score == pytest.approx(1.0)  # the flat grey is the reference


def test_a_plugin_scorer_registered_once_is_a_loop_scorer_and_a_benchmark_metric(plugin: Path, tmp_path: Path) -> None:
    import json

    from imagerepainter.cli.main import main
    from imagerepainter.sandbox import random_scene, render_scene

    reference = tmp_path / "ref.png"
    render_scene(random_scene(2), seed=1).save(reference)
    run = ["run", str(reference), "--mllm", "sandbox", "--t2i", "sandbox", "--max-rounds", "1", "--quiet"]
    assert main([*run, "--scorer", "mean?scale=0.5", "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["specs"]["scorer"] == "mean?scale=0.5" and record["result"]["best"]["score"] == 0.5

    manifest = tmp_path / "refs.jsonl"
    manifest.write_text(json.dumps({"id": "r1", "path": "ref.png", "category": "scene"}) + "\n")
    out = tmp_path / "eval"
    models = ["--t2i", "exact=sandbox", "--max-rounds", "1", "--height", "64", "--width", "64"]
    argv = ["eval", str(manifest), "--mllm", "sandbox", *models, "--metrics", "mean?scale=0.25,ssim", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["metrics"] == ["mean", "ssim"] and board["directions"]["mean"] is True
    rows = [r for r in board["rows"] if r["group"] == "all"]
    assert len(rows) == 2 and all(r["metrics"]["mean"] == 0.25 for r in rows)  # the same factory, as a metric
