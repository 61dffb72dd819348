"""The environment manifest of an evaluation and ``imagerepainter verify``: numbers that reproduce.

Offline: sandbox backends on generated scenes, the sandbox MLLM over real HTTP on 127.0.0.1
where the MLLM's returned model and fingerprint matter.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagerepainter.bench import environment, verify
from imagerepainter.bench.environment import EnvironmentChange, environment_changes, environment_section
from imagerepainter.bench.runner import evaluate
from imagerepainter.bench.store import ResultsStore
from imagerepainter.cli.main import main
from imagerepainter.errors import ConfigurationError
from imagerepainter.sandbox import random_scene, render_scene

KEY = "sk-envtest-0123456789abcdefXYZ"


def _scenes(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        render_scene(random_scene(i), 96, 96).save(folder / f"scene_{i}.png")
    return folder


def _evaluate(refs: Path, out: Path, **kw: Any) -> Any:
    options: dict[str, Any] = {
        "mllm": "sandbox",
        "models": {"exact": "sandbox", "loose": "sandbox?fidelity=0.6"},
        "metrics": ["sandbox", "ssim", "psnr"],
        "settings": {"max_rounds": 2},
    }
    return evaluate(refs, out=out, **(options | kw))


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished offline evaluation: 2 scenes x 2 models x 2 modes, its reports written."""
    root = tmp_path_factory.mktemp("env")
    report = _evaluate(_scenes(root / "refs", 2), root / "out")
    assert report.computed == 8 and report.failed == 0
    report.write_reports()
    return report.out


def _alter(out: Path, metric: str, delta: float) -> dict[str, Any]:
    """Add ``delta`` to ``metric`` of one stored case, in the SQLite store itself; return the case's record."""
    with sqlite3.connect(out / "results.sqlite") as db:
        case_id, record = db.execute("SELECT case_id, record FROM cases ORDER BY case_id LIMIT 1").fetchone()
        data = json.loads(record)
        data["metrics"][metric] += delta
        db.execute("UPDATE cases SET record = ? WHERE case_id = ?", (json.dumps(data), case_id))
    return dict(data)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    return Path(shutil.copytree(src, dst))


# ----------------------------------------------------------------------------- the manifest


def test_an_evaluation_records_its_environment_in_the_store_and_every_report(evaluation: Path) -> None:
    from importlib.metadata import version

    history = ResultsStore(evaluation).get_meta("environments")
    assert len(history) == 1 and history[0]["cases"] == 8
    manifest = history[0]["manifest"]
    assert manifest["packages"]["imagerepainter"] == version("imagerepainter")
    assert manifest["packages"]["langchain-core"] == version("langchain-core")
    assert manifest["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert manifest["backends"]["t2i:exact"]["class"] == "SandboxT2I"  # what each model really ran on
    assert {"t2i:loose", "scorer", "metric:sandbox", "metric:ssim", "metric:psnr"} <= set(manifest["backends"])

    board = json.loads((evaluation / "leaderboard.json").read_text(encoding="utf-8"))
    assert board["environment"]["manifest"] == manifest and board["environment"]["runs"] == 1
    page = (evaluation / "leaderboard.html").read_text(encoding="utf-8")
    assert 'id="environment"' in page and "<dt>langchain-core</dt>" in page and "class=SandboxT2I" in page
    markdown = (evaluation / "leaderboard.md").read_text(encoding="utf-8")
    assert "## Environment" in markdown and "| packages.imagerepainter |" in markdown


def test_a_resumed_evaluation_says_what_changed_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refs = _scenes(tmp_path / "refs", 2)
    first = _evaluate(refs, tmp_path / "out", limit=1, modes=["single"])
    assert first.environment_changes == []

    real = environment.library_versions

    def upgraded(*names: str) -> dict[str, str | None]:
        return real(*names) | {"torch": "99.0.0"}

    monkeypatch.setattr(environment, "library_versions", upgraded)
    with caplog.at_level(logging.WARNING, logger="imagerepainter.bench"):
        resumed = _evaluate(refs, tmp_path / "out", modes=["single"])
    assert resumed.computed == 2 and resumed.skipped == 2
    before = real("torch")["torch"]
    assert EnvironmentChange(field="packages.torch", old=before, new="99.0.0") in resumed.environment_changes
    assert [c.field for c in resumed.environment_changes] == ["packages.torch"]  # nothing else moved
    assert f"packages.torch: {before} → 99.0.0" in caplog.text  # said as the call starts

    paths = resumed.write_reports()
    board = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert board["environment"]["runs"] == 2
    assert board["environment"]["changes"] == [{"field": "packages.torch", "old": before, "new": "99.0.0", "run": 2}]
    assert "environment-changes" in paths["html"].read_text(encoding="utf-8")


def test_the_eval_command_prints_the_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    refs = _scenes(tmp_path / "refs", 2)
    command = ["eval", str(refs), "--mllm", "sandbox", "--t2i", "m=sandbox", "--metrics", "sandbox",
               "--mode", "single", "--max-rounds", "1", "--out", str(tmp_path / "out"), "--quiet"]  # fmt: skip
    assert main([*command, "--limit", "1"]) == 0
    monkeypatch.setattr(environment.platform, "python_version", lambda: "3.99.0")
    capsys.readouterr()
    assert main(command) == 0
    err = capsys.readouterr().err
    assert "the environment changed since this folder's last evaluation" in err and "→ 3.99.0 (" in err


def test_changes_are_fields_both_manifests_have() -> None:
    old = {"packages": {"torch": "2.4"}, "backends": {"t2i:a": {"device": "cuda", "dtype": "float16"}}}
    new = {
        "packages": {"torch": "2.4"},
        "backends": {"t2i:a": {"device": "cuda", "dtype": "bfloat16"}, "t2i:b": {"device": "cpu"}},  # b: added
        "torch_runtime": {"cuda": "12.4"},  # only now loaded: not a change
    }
    assert [str(c) for c in environment_changes(old, new)] == ["backends.t2i:a.dtype: float16 → bfloat16"]


def test_collecting_the_environment_never_imports_torch() -> None:
    code = (
        "import sys; from imagerepainter.bench.environment import collect_environment; "
        "m = collect_environment(); assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'torch_runtime' not in m; print(m['packages']['torch'] is not None)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # the version, read from metadata all the same


def test_the_mllm_model_and_fingerprint_come_from_the_api_and_no_secret_is_recorded(tmp_path: Path) -> None:
    """Over real HTTP: ChatOpenAI against the sandbox MLLM server, which returns a system fingerprint."""
    from langchain_openai import ChatOpenAI

    from imagerepainter.backends import ChatModelMLLM
    from imagerepainter.sandbox.server import sandbox_server

    with sandbox_server() as server:
        chat = ChatOpenAI(base_url=server.base_url, api_key=KEY, model="sandbox", max_retries=0, timeout=20)
        report = _evaluate(_scenes(tmp_path / "refs", 1), tmp_path / "out", mllm=ChatModelMLLM(chat))
        assert server.chat_requests  # the loop and the description really went over the wire
    assert report.failed == 0
    paths = report.write_reports()
    manifest = ResultsStore(report.out).get_meta("environments")[-1]["manifest"]
    assert manifest["mllm"] == {"openai:sandbox": [{"model": "sandbox", "system_fingerprint": "fp_test"}]}
    for path in [report.out / "results.sqlite", *paths.values()]:
        assert KEY not in path.read_bytes().decode("utf-8", "replace"), path.name
        assert KEY[:16] not in path.read_bytes().decode("utf-8", "replace"), path.name


def test_a_secret_in_what_a_backend_describes_is_masked() -> None:
    class Leaky:
        name = "leaky"

        def describe(self) -> dict[str, Any]:
            return {"model": f"https://user:{KEY}@host/m?api_key={KEY}", "device": "cpu"}

    part = environment.worker_environment(t2i={"m": Leaky()})
    assert KEY not in json.dumps(part) and part["backends"]["t2i:m"]["device"] == "cpu"


# ----------------------------------------------------------------------------- verify


def test_verify_finds_no_drift_in_an_untouched_evaluation(evaluation: Path, capsys) -> None:
    report = verify(evaluation, sample=5, seed=3)
    assert report.ok and report.sampled == 5 and report.checked == 5
    assert report.metrics == ["sandbox", "ssim", "psnr"] and report.environment_recorded
    assert report.environment_changes == []
    assert verify(evaluation, sample=5, seed=3).model_dump() == report.model_dump()  # the same sample
    assert main(["verify", str(evaluation)]) == 0
    assert "verified 8 of 8 sampled cases" in capsys.readouterr().out


def test_verify_names_an_altered_metric_and_exits_1(evaluation: Path, tmp_path: Path, capsys) -> None:
    out = _copy(evaluation, tmp_path / "out")
    case = _alter(out, "ssim", 0.01)
    report = verify(out, sample=100)
    assert [(d.case_id, d.metric) for d in report.drifts] == [(case["case_id"], "ssim")]
    drift = report.drifts[0]
    assert drift.stored == pytest.approx(drift.now + 0.01) and drift.tolerance == 1e-4
    assert main(["verify", str(out), "--sample", "100"]) == 1
    printed = capsys.readouterr().out
    assert "1 metric value(s) drifted" in printed and f"ssim    {case['model']}" in printed
    # within a tolerance the user gives, it is not a drift
    assert verify(out, sample=100, tolerance="ssim=0.02").ok and verify(out, sample=100, tolerance=0.02).ok
    assert main(["verify", str(out), "--sample", "100", "--tolerance", "0.02"]) == 0


def test_verify_reports_the_environment_diff_and_what_it_could_not_check(
    evaluation: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = _copy(evaluation, tmp_path / "out")
    with sqlite3.connect(out / "results.sqlite") as db:
        case_id, record = db.execute("SELECT case_id, record FROM cases ORDER BY case_id LIMIT 1").fetchone()
    (out / json.loads(record)["best_image"]).unlink()
    monkeypatch.setattr(environment.platform, "python_version", lambda: "3.99.0")
    report = verify(out, sample=100)
    assert report.ok and report.checked == 7 and "is gone" in report.unchecked[case_id]
    assert [c.field for c in report.environment_changes] == ["python"]
    assert main(["verify", str(out), "--sample", "100"]) == 0
    printed = capsys.readouterr().out
    assert "the environment differs from the one recorded" in printed and "→ 3.99.0 (" in printed


def test_verify_skips_the_judge_without_an_mllm(tmp_path: Path) -> None:
    report = _evaluate(_scenes(tmp_path / "refs", 1), tmp_path / "out", metrics=["sandbox", "judge"], modes=["single"])
    placed = ResultsStore(report.out).get_meta("environments")[-1]["manifest"]["backends"]
    assert placed["metric:judge"] == {"class": "judge", "name": "sandbox"}  # the judge's MLLM is recorded
    result = verify(report.out)
    assert result.ok and result.metrics == ["sandbox"] and "--mllm" in result.skipped_metrics["judge"]
    assert verify(report.out, mllm="sandbox").metrics[:2] == ["sandbox", "judge"]  # asked: scored again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing-folder"], "holds no results.sqlite"),
        (["{out}", "--sample", "0"], "--sample must be at least 1"),
        (["{out}", "--tolerance", "ssim=-1"], "tolerance ssim='-1' is not a number >= 0"),
        (["{out}", "--tolerance", "soon"], "tolerance 'soon' is not a number"),
    ],
)
def test_verify_refuses_bad_input_with_exit_2(evaluation: Path, capsys, args: list[str], message: str) -> None:
    assert main(["verify", *(a.format(out=evaluation) for a in args)]) == 2
    assert message in capsys.readouterr().err


def test_verify_refuses_an_evaluation_with_nothing_finished(tmp_path: Path) -> None:
    ResultsStore(tmp_path)
    with pytest.raises(ConfigurationError, match="no finished case"):
        verify(tmp_path)


def test_the_leaderboard_has_no_environment_section_without_a_recorded_manifest(tmp_path: Path) -> None:
    assert environment_section(ResultsStore(tmp_path)) is None


@pytest.mark.slow
def test_a_torch_evaluation_records_devices_dtypes_and_verifies_its_embedding_metric(
    tiny_sd_dir: Path, tiny_clip_dir: Path, tiny_dinov2_dir: Path, tmp_path: Path
) -> None:
    """A real (tiny, random-weight) diffusers pipeline and the paper's CLIP + DINOv2 metric, on the CPU."""
    paper = f"paper?clip_model={tiny_clip_dir}&dinov2_model={tiny_dinov2_dir}"
    report = _evaluate(
        _scenes(tmp_path / "refs", 2),
        tmp_path / "out",
        models={"tiny": f"diffusers:{tiny_sd_dir}?device=cpu&torch_dtype=float32"},
        metrics=[paper, "ssim"],
        modes=["single"],
        settings={"height": 64, "width": 64, "num_inference_steps": 2},
    )
    assert report.failed == 0
    manifest = ResultsStore(report.out).get_meta("environments")[-1]["manifest"]
    tiny = manifest["backends"]["t2i:tiny"]
    assert (tiny["class"], tiny["device"], tiny["dtype"]) == ("DiffusersT2I", "cpu", "float32")  # what it ran on
    metric = manifest["backends"]["metric:paper"]
    assert metric["clip"]["device"] == "cpu" and metric["dinov2"]["dtype"] == "float32"
    assert "cuda" in manifest["torch_runtime"]  # torch was loaded by the backends: its runtime is recorded
    result = verify(report.out)
    assert result.ok and result.checked == 2 and result.metrics[:3] == ["paper", "paper.clip", "paper.dinov2"]


def test_verify_keeps_the_element_verdicts_and_scores_the_image_metrics_again(tmp_path: Path) -> None:
    report = _evaluate(
        _scenes(tmp_path / "refs", 1), tmp_path / "out", metrics=["sandbox", "elements"], modes=["single"]
    )
    for mllm in (None, "sandbox"):  # with or without an MLLM: the verdicts are the record
        result = verify(report.out, mllm=mllm)
        assert result.ok and result.metrics == ["sandbox"] and "verdicts stand" in result.skipped_metrics["elements"]
