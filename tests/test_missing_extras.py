"""Missing optional packages: one message names every extra to install, before any backend is built.

A package is made unimportable the way Python itself records a failed import: its
``sys.modules`` entry set to ``None`` (``import torch`` then raises ImportError, and
``importlib.util.find_spec`` says it is not there), restored after each test.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from imagerepainter import Repainter
from imagerepainter.backends import registry
from imagerepainter.cli.main import main
from imagerepainter.errors import MissingDependencyError
from imagerepainter.sandbox import random_scene, render_scene

README_INSTALL_LACKS = ("torch", "diffusers", "transformers", "torchmetrics", "langchain_openai", "openai")
"""What `pip install -e ".[cli]"` (README's first command) does not install."""


def _uninstall(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The specs the registry builds backends from (an error before any is built leaves it empty)."""
    specs: list[str] = []
    build = registry._build

    def recording(kind: Any, spec: str) -> Any:
        specs.append(spec)
        return build(kind, spec)

    monkeypatch.setattr(registry, "_build", recording)
    return specs


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "my photo.png"  # a space: the suggested command must quote it
    render_scene(random_scene(3)).save(path)
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_run_after_the_readme_install_names_every_extra_at_once_and_the_offline_command(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, built: list[str]
) -> None:
    _uninstall(monkeypatch, *README_INSTALL_LACKS)
    out = tmp_path / "run"
    assert main(["run", str(reference), "--out", str(out)]) == 2  # the default backends
    line = _error_line(capsys)
    assert "the 'openai' MLLM needs langchain_openai (extra openai)" in line
    assert "the 'diffusers' text-to-image backend needs torch, diffusers and transformers (extra diffusers)" in line
    assert "the 'paper' scorer needs torch and transformers (extra metrics)" in line
    assert line.count("pip install") == 1 and 'pip install "imagerepainter[openai,diffusers,metrics]"' in line
    offline = f"imagerepainter run {shlex.quote(str(reference))} --mllm sandbox --t2i sandbox"
    assert line.endswith(offline)
    assert built == [] and not out.exists()  # raised before any backend was built or anything created
    # The suggested command works with what the README installs.
    argv = shlex.split(offline)[1:]
    assert main([*argv, "--max-rounds", "1", "--out", str(out), "--quiet", "--json"]) == 0
    assert (out / "run.json").is_file()


@pytest.mark.parametrize(
    ("scorer", "provider"), [("paper", "paper"), ("clip", "clip"), ("dinov2", "dinov2"), ("paper?device=cuda", "paper")]
)
def test_an_embedding_scorer_without_torch_names_the_metrics_extra(
    scorer: str,
    provider: str,
    tmp_path: Path,
    reference: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    built: list[str],
) -> None:
    _uninstall(monkeypatch, "torch")
    out = tmp_path / "run"
    assert (
        main(["run", str(reference), "--mllm", "sandbox", "--t2i", "sandbox", "--scorer", scorer, "--out", str(out)])
        == 2
    )
    line = _error_line(capsys)
    assert f"the '{provider}' scorer needs torch (extra metrics)" in line
    assert line.endswith('Install it with: pip install "imagerepainter[metrics]"')  # sandbox already: no hint
    assert "placing models" not in line and "diffusers" not in line
    assert built == [] and not out.exists()


def test_ssim_and_psnr_run_without_torch_or_scipy(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _uninstall(monkeypatch, *README_INSTALL_LACKS, "scipy", "scipy.ndimage")
    for scorer in ("ssim", "psnr"):
        out = tmp_path / scorer
        argv = ["run", str(reference), "--mllm", "sandbox", "--t2i", "sandbox", "--scorer", scorer]
        assert main([*argv, "--max-rounds", "1", "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
        assert (out / "run.json").is_file()


def test_repainter_names_every_missing_extra_in_one_error(monkeypatch: pytest.MonkeyPatch, built: list[str]) -> None:
    _uninstall(monkeypatch, "langchain_openai", "torch")
    with pytest.raises(MissingDependencyError) as caught:
        Repainter(mllm="openai:gpt-4o", t2i="diffusers:stabilityai/sdxl-turbo", scorer="clip")
    assert caught.value.extras == ("openai", "diffusers", "metrics")
    assert 'pip install "imagerepainter[openai,diffusers,metrics]"' in str(caught.value)
    assert built == []
    # Objects and installed backends are not in the way: only what is missing is named.
    with pytest.raises(MissingDependencyError) as caught:
        Repainter(mllm="sandbox", t2i="sandbox", scorer="dinov2")
    assert caught.value.extras == ("metrics",) and "sandbox" not in str(caught.value)


def test_a_device_check_without_torch_names_who_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagerepainter._loading import check_device
    from imagerepainter.scorers import CLIPScorer

    _uninstall(monkeypatch, "torch")
    with pytest.raises(MissingDependencyError, match=r"needed for CLIP similarity .*imagerepainter\[metrics\]"):
        CLIPScorer(device="cuda").load()
    with pytest.raises(MissingDependencyError, match=r"needed for the 'paper' scorer but"):
        check_device("cuda", extra="metrics", purpose="the 'paper' scorer")


def test_backends_lists_what_is_missing_and_the_extra_for_it(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    _uninstall(monkeypatch, "torch")
    assert main(["backends"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert rows["paper"].endswith('missing torch: pip install "imagerepainter[metrics]"')  # not [diffusers]
    assert rows["diffusers"].endswith('missing torch: pip install "imagerepainter[diffusers]"')
    assert rows["ssim"].endswith("available") and rows["psnr"].endswith("available")


def test_backends_lists_scorers_and_metrics_in_one_table_with_direction_and_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _uninstall(monkeypatch, "torch", "lpips")
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "Metrics (" not in out  # no second table: a metric is a scorer
    section = out.split("Scorers and metrics (--scorer, eval --metrics)", 1)[1].splitlines()[1:]
    rows = {line.split()[0]: line.split(None, 1)[1] for line in section if not line.startswith("  (")}
    assert set(rows) >= {"paper", "clip", "dinov2", "ssim", "psnr", "judge", "lpips", "dreamsim", "sandbox", "blend"}
    assert rows["paper"] == 'higher  missing torch: pip install "imagerepainter[metrics]"'
    assert rows["psnr"] == "higher  available" and rows["ssim"] == "higher  available"
    assert rows["judge"] == "higher  available (eval --metrics only: asks the --mllm)"
    assert rows["lpips"].startswith("lower   missing torch,") and "lpips" in rows["lpips"]
    assert rows["lpips"].endswith('pip install "imagerepainter[perceptual]"')
    assert rows["dreamsim"].startswith("lower   missing torch")


def test_eval_names_every_missing_extra_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, built: list[str]
) -> None:
    _uninstall(monkeypatch, *README_INSTALL_LACKS)
    out = tmp_path / "eval"
    argv = ["eval", "sandbox-scenes:2", "--mllm", "openai:gpt-4o", "--t2i", "sd=diffusers:stabilityai/sdxl-turbo"]
    assert main([*argv, "--t2i", "exact=sandbox", "--metrics", "sandbox,clip", "--out", str(out), "--quiet"]) == 2
    line = _error_line(capsys)
    assert (
        "the 'openai' MLLM needs langchain_openai" in line and "the 'clip' scorer needs torch and transformers" in line
    )
    assert 'pip install "imagerepainter[openai,diffusers,metrics]"' in line  # the clip metric, not the sandbox scorer
    assert built == [] and not out.exists()


@pytest.mark.parametrize(
    ("backends", "message"),
    [
        (["--mllm", "sandbox", "--t2i", "sandbx"], "Unknown text-to-image backend 'sandbx'. Did you mean 'sandbox'?"),
        (["--t2i", "sandbx"], "Unknown text-to-image backend 'sandbx'. Did you mean 'sandbox'?"),  # default MLLM
        (["--mllm", "foo:bar", "--t2i", "sandbox"], "Unknown MLLM 'foo:bar'."),
        (["--mllm", "sandbx", "--t2i", "sandbox"], "Unknown MLLM 'sandbx'. Did you mean 'sandbox'?"),
        (["--mllm", "sandbox", "--t2i", "sandbox?fidelty=0.6"], "Unknown option 'fidelty' in the 'sandbox' text-to"),
        (["--mllm", "sandbox", "--t2i", "sandbox", "--scorer", "ssmi"], "Unknown scorer 'ssmi'. Did you mean 'ssim'?"),
    ],
)
def test_a_typo_without_torch_is_named_as_a_typo_with_the_closest_names(
    backends: list[str], message: str, tmp_path: Path, reference: Path, monkeypatch: Any, capsys: Any, built: list[str]
) -> None:
    _uninstall(monkeypatch, *README_INSTALL_LACKS)
    out = tmp_path / "run"
    assert main(["run", str(reference), *backends, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert message in line
    assert "torch" not in line and "pip install" not in line and "offline" not in line
    assert built == [] and not out.exists()


def test_a_sandbox_renderer_with_options_runs_without_torch_with_the_sandbox_scorer(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import json

    _uninstall(monkeypatch, *README_INSTALL_LACKS)
    out = tmp_path / "run"
    argv = ["run", str(reference), "--mllm", "sandbox", "--t2i", "sandbox?fidelity=0.6", "--max-rounds", "1"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["specs"]["scorer"] == "sandbox"


def test_repainter_checks_every_spec_before_the_extras_and_picks_the_scorer_from_the_backends(
    monkeypatch: pytest.MonkeyPatch, built: list[str]
) -> None:
    from imagerepainter.errors import ConfigurationError, UnknownBackendError

    _uninstall(monkeypatch, *README_INSTALL_LACKS)
    with pytest.raises(UnknownBackendError) as caught:
        Repainter(mllm="sandbox", t2i="sandbx")
    assert caught.value.suggestions == ("sandbox",) and caught.value.spec == "sandbx"
    with pytest.raises(UnknownBackendError, match="Unknown MLLM 'foo:bar'"):
        Repainter(mllm="foo:bar", t2i="sandbox")
    with pytest.raises(ConfigurationError, match="Did you mean 'fidelity'"):
        Repainter(mllm="sandbox", t2i="sandbox?fidelty=0.6")
    assert built == []
    rp = Repainter(mllm="sandbox", t2i="sandbox?fidelity=0.6", max_rounds=1)  # no scorer given: the sandbox's
    assert rp.scorer.name == "sandbox" and rp.run(render_scene(random_scene(2))).best.score > 0
    # Only what is really needed is named: the openai MLLM and, with it, the paper scorer; not the sandbox renderer.
    with pytest.raises(MissingDependencyError) as missing:
        Repainter(mllm="openai:gpt-4o", t2i="sandbox?fidelity=0.6")
    assert missing.value.extras == ("openai", "metrics") and "sandbox" not in str(missing.value)


def test_eval_names_a_metric_typo_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    _uninstall(monkeypatch, *README_INSTALL_LACKS)
    out = tmp_path / "eval"
    argv = ["eval", "sandbox-scenes:2", "--mllm", "sandbox", "--t2i", "a=sandbox", "--metrics", "sandbx,ssim"]
    assert main([*argv, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "Unknown metric 'sandbx'. Did you mean 'sandbox'?" in line and "torch" not in line
    assert not out.exists()
    # The sandbox world needs no torch in eval either, whatever the first metric: the loop's scorer follows the
    # backends. (evaluate() alone: the reports' statistics use scipy, which takes a None in sys.modules for torch.)
    from imagerepainter.bench import evaluate
    from imagerepainter.bench.datasets import sandbox_scenes

    scenes, models = sandbox_scenes(2, size=64, cache_dir=tmp_path / "cache"), {"a": "sandbox", "b": "sandbox?noise=9"}
    report = evaluate(scenes, mllm="sandbox", models=models, metrics=["ssim"], modes=["single"], out=out)
    assert (report.computed, report.failed) == (4, 0)
