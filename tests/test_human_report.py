"""The agreement report on an evaluation folder: simulated raters of known accuracy, imported judgments,
the fitted blend as a scorer, and the page in headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imagerepainter import Repainter
from imagerepainter.bench.datasets import sandbox_scenes
from imagerepainter.bench.runner import evaluate
from imagerepainter.bench.store import ResultsStore
from imagerepainter.cli.main import main
from imagerepainter.errors import ConfigurationError
from imagerepainter.human.blend import load_blend
from imagerepainter.human.judgments import JudgmentStore, export_judgments, read_judgments_file
from imagerepainter.sandbox import random_scene, render_scene
from imagerepainter.testing.raters import SimulatedRater, evaluation_pairs, evaluation_truth
from tests import browser

ERROR = 0.15


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sandbox evaluation (three models of known strength, both modes) judged by three simulated raters."""
    root = tmp_path_factory.mktemp("agreement")
    data = sandbox_scenes(8, size=64, cache_dir=root / "cache")
    models = {"exact": "sandbox", "loose": "sandbox?fidelity=0.6", "weak": "sandbox?fidelity=0.3"}
    out = root / "eval"
    settings = {"max_rounds": 2, "variants": 2, "height": 64, "width": 64}
    evaluate(data, mllm="sandbox", models=models, out=out, metrics=["sandbox", "ssim", "psnr"], settings=settings)
    cases = ResultsStore(out).cases()
    truth = evaluation_truth(cases)
    pairs = [p for p in evaluation_pairs(cases) if truth(p[0], p[1]) != truth(p[0], p[2])]  # a true difference
    judgments = []
    for k in range(3):
        rater = SimulatedRater(truth, name=f"r{k}", error_rate=ERROR, cant_tell_rate=0.05, seed=k)
        judgments += rater.judge(pairs, repeat_every=4)
    JudgmentStore(out).add_many(judgments)
    return out


@pytest.fixture(scope="module")
def report(evaluation: Path) -> dict:
    assert main(["agreement", str(evaluation), "--fit"]) == 0
    return json.loads((evaluation / "agreement.json").read_text())


def test_the_report_recovers_the_raters_known_accuracy(report):
    metrics = {m["name"]: m for m in report["metrics"]}
    assert list(metrics) == ["sandbox", "ssim", "psnr"]  # every metric the evaluation stored
    truth = metrics["sandbox"]["agreement"]  # the sandbox score is the truth: agreement is 1 - error
    assert truth["low"] <= 1 - ERROR <= truth["high"] and truth["high"] - truth["low"] < 0.15
    assert truth["excluded"] > 0 and truth["references"] == 8  # "can't tell" left out and counted
    inter = report["ceiling"]["inter_rater"]  # two raters agree when both are right or both wrong
    assert inter["low"] <= (1 - ERROR) ** 2 + ERROR**2 <= inter["high"]
    assert report["ceiling"]["intra_rater"]["n"] > 0 and 0.5 < report["ceiling"]["krippendorff_alpha"] < 0.9
    assert metrics["sandbox"]["majority"]["value"] > truth["value"]  # three raters' majority errs less
    assert metrics["sandbox"]["sentence"].startswith(
        f"On {metrics['sandbox']['majority']['n']} judged pairs from 3 raters, sandbox agrees with the raters' majority"
    )


def test_people_rank_the_models_in_their_true_order(report):
    order = [b["system"] for b in report["bradley_terry"]]
    assert len(order) == 6
    assert order.index("exact · repaint") < order.index("loose · repaint") < order.index("weak · repaint")
    assert order.index("exact · single") < order.index("weak · single")
    tau = next(m for m in report["metrics"] if m["name"] == "sandbox")["kendall_tau"]
    assert tau["systems"] == 6 and tau["tau"] > 0.5 and tau["low"] <= tau["tau"] <= tau["high"]
    assert set(report["groups"]["category"]) == {"few shapes", "some shapes"}


def test_judgments_imported_from_a_csv_give_the_same_figures(evaluation, report, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(evaluation, copy, ignore=shutil.ignore_patterns("judgments.sqlite", "agreement.*", "blend.json"))
    export_judgments(JudgmentStore(evaluation).judgments(), tmp_path / "judgments.csv")
    JudgmentStore(copy).add_many(read_judgments_file(tmp_path / "judgments.csv"))
    assert main(["agreement", str(copy), "--fit"]) == 0
    again = json.loads((copy / "agreement.json").read_text())
    assert again["metrics"] == report["metrics"] and again["ceiling"] == report["ceiling"]
    assert again["bradley_terry"] == report["bradley_terry"]


def test_metrics_named_on_the_command_line_are_computed_on_the_best_images(evaluation, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(evaluation, copy)
    assert main(["agreement", str(copy), "--metrics", "ssim7=ssim?kernel_size=7", "--out", str(tmp_path / "o")]) == 2
    assert "No copy of reference" in capsys.readouterr().err and not (tmp_path / "o").exists()
    refs = copy / "judging" / "references"  # where the judging page keeps the references
    refs.mkdir(parents=True)
    data = sandbox_scenes(8, size=64, cache_dir=evaluation.parent / "cache")
    for ref, case in {c.reference_id: c for c in ResultsStore(copy).cases()}.items():
        source = next(r.path for r in data if r.id == ref)
        shutil.copy(source, refs / f"{case.reference_sha256}{source.suffix}")
    assert main(["agreement", str(copy), "--metrics", "ssim7=ssim?kernel_size=7", "--out", str(tmp_path / "o")]) == 0
    names = [m["name"] for m in json.loads((tmp_path / "o" / "agreement.json").read_text())["metrics"]]
    assert names == ["sandbox", "ssim", "psnr", "ssim7"]


def test_no_judgments_is_refused_with_how_to_get_some(evaluation, tmp_path, capsys):
    empty = tmp_path / "empty"
    shutil.copytree(evaluation, empty, ignore=shutil.ignore_patterns("judgments.sqlite", "agreement.*", "blend.json"))
    assert main(["agreement", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "holds no judgments yet" in err and "imagerepainter judge" in err and "judgments import" in err
    assert not list(empty.glob("agreement.*"))


def test_the_fitted_blend_is_a_scorer_for_eval_and_the_loop(evaluation, report, tmp_path):
    blend = json.loads((evaluation / "blend.json").read_text())
    assert [m["name"] for m in blend["metrics"]] == ["psnr", "sandbox", "ssim"]
    assert blend["fitted_on"]["judgments"] == report["blend"]["held_out_agreement"]["n"]
    assert len(blend["fitted_on"]["judgments_sha256"]) == 64 and blend["fitted_on"]["references"] == 8
    held = blend["held_out_agreement"]
    assert held["low"] <= held["value"] <= held["high"] and held["value"] > 0.6
    path = evaluation / "blend.json"
    out = tmp_path / "eval"
    argv = [
        "eval",
        "sandbox-scenes",
        "--mllm",
        "sandbox",
        "--t2i",
        "a=sandbox",
        "--metrics",
        f"people=blend:{path},ssim",
    ]
    argv += [
        "--max-rounds",
        "1",
        "--variants",
        "1",
        "--height",
        "64",
        "--width",
        "64",
        "--limit",
        "1",
        "--out",
        str(out),
    ]
    assert main([*argv, "--quiet"]) == 0
    case = ResultsStore(out).cases()[0]
    assert set(case.metrics) == {"people", "ssim"} and case.higher_is_better["people"] is True
    rp = Repainter(mllm="sandbox", t2i="sandbox", scorer=f"blend:{path}", max_rounds=1)
    result = rp.run(render_scene(random_scene(2), seed=3))
    assert result.best.score is not None and rp.scorer.name == "blend"
    scorer = load_blend(str(path))
    reference = render_scene(random_scene(2), seed=3)
    near, far = scorer.score(scorer.prepare(reference), [reference, render_scene(random_scene(5), seed=1)])
    assert near > far


def test_a_bad_blend_file_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="No blend file"):
        load_blend(str(tmp_path / "none.json"))
    (tmp_path / "b.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(ConfigurationError, match=r"is not a blend\.json"):
        Repainter(mllm="sandbox", t2i="sandbox", scorer=f"blend:{tmp_path / 'b.json'}")


_PROBE = browser.chart_probe(
    "agreement-chart", points="circle.pt", more='  d.quotes = String(document.querySelectorAll("blockquote").length);'
)


@pytest.mark.browser
@pytest.mark.skipif(browser.chromium_binary() is None, reason="headless Chromium not found")
@pytest.mark.parametrize("width", [480, 1280])
def test_the_page_in_headless_chromium(evaluation, report, width):
    page = evaluation / "agreement.html"
    assert "<script" not in page.read_text()
    found = browser.probe(page, window=(width, 1200), script=_PROBE)
    assert found.get("data-probe") == "done"
    assert found["data-points"] == "4"  # three metrics and the blend
    assert found["data-quotes"] == "3" and found["data-overflow-x"] == "false"
    assert 300 < int(found["data-chart-width"]) <= width
