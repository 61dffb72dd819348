"""The describer axis of ``imagerepainter eval``: several named MLLMs, one description per (reference,
describer), describers ranked per model with paired tests, in every report; one unnamed MLLM as before."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter

import pytest

from imagerepainter.bench.describer import description_key
from imagerepainter.bench.describer_specs import describer_specs, describers_from_flags, split_named
from imagerepainter.bench.leaderboard import Leaderboard, build_leaderboard
from imagerepainter.bench.records import DEFAULT_DESCRIBER, CaseResult
from imagerepainter.bench.runner import check_evaluation, evaluate
from imagerepainter.bench.store import ResultsStore, case_key
from imagerepainter.cli.main import main
from imagerepainter.config import RepainterConfig
from imagerepainter.errors import ConfigurationError, UnknownBackendError
from imagerepainter.sandbox import SandboxMLLM, random_scene, render_scene

SETTINGS = {"max_rounds": 2, "variants": 2}


class Tally:
    """An MLLM wrapped to count the requests it answers, by schema (thread-safe)."""

    def __init__(self, inner: SandboxMLLM) -> None:
        self.inner, self.name, self.capabilities = inner, f"tally-{inner.acuity}", inner.capabilities
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def structured(self, messages, schema):
        with self.lock:
            self.calls[schema.__name__] += 1
        return self.inner.structured(messages, schema)


@pytest.fixture
def scenes(tmp_path):
    folder = tmp_path / "scenes"
    folder.mkdir()
    for i in range(3):
        render_scene(random_scene(1000 + i), 96, 96).save(folder / f"scene_{i}.png")
    return folder


# ----------------------------------------------------------------------------- naming


def test_flags_name_describers_or_keep_one_unnamed_spec():
    assert split_named("qwen=openai:qwen2.5-vl?base_url=http://127.0.0.1:8000/v1") == (
        "qwen",
        "openai:qwen2.5-vl?base_url=http://127.0.0.1:8000/v1",
    )
    assert split_named("openai:gpt-4o?temperature=0") == (None, "openai:gpt-4o?temperature=0")
    assert describers_from_flags(["sandbox?acuity=0.3"]) == "sandbox?acuity=0.3"
    assert describers_from_flags(["sandbox", "sandbox?acuity=0.3"]) == "sandbox?acuity=0.3"  # a later flag overrides
    assert describers_from_flags(["a=sandbox", "b=sandbox?acuity=0.5"]) == {"a": "sandbox", "b": "sandbox?acuity=0.5"}
    assert describer_specs("sandbox") == {DEFAULT_DESCRIBER: "sandbox"}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["a=sandbox", "a=sandbox?acuity=0.5"], "'a' is given twice"),
        (["a=sandbox", "sandbox?acuity=0.5"], "has no name beside other --mllm flags"),
        (["a=", "b=sandbox"], "--mllm takes NAME=SPEC"),
    ],
)
def test_bad_describer_flags_are_refused_before_out_is_touched(scenes, tmp_path, capsys, flags, message):
    out = tmp_path / "never"
    args = ["eval", str(scenes), "--t2i", "m=sandbox", "--metrics", "sandbox", "--out", str(out)]
    for flag in flags:
        args += ["--mllm", flag]
    assert main(args) != 0
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("mllm", "error", "message"),
    [
        ({}, ConfigurationError, "empty mapping"),
        ({"two words": "sandbox"}, ConfigurationError, "Describer name 'two words' is not usable"),
        ({"Sharp": "sandbox", "sharp": "sandbox"}, ConfigurationError, "differ only in case"),
        (
            {"a": "sandbox", "b": "sandbx"},
            UnknownBackendError,
            "Describer 'b': Unknown MLLM 'sandbx'. Did you mean 'sandbox'",
        ),
        ({"a": "sandbox", "b": "sandbox?acuity=2"}, ConfigurationError, r"Describer 'b': .*acuity must be in"),
        ({"a": "sandbox", "openai": "gpt-4o"}, UnknownBackendError, "Did you mean the spec 'openai:gpt-4o'"),
        ({"a": "sandbox", "b": "openai:gpt-4o?api_key=sk-abc123456789"}, ConfigurationError, "The 'b' MLLM spec holds"),
    ],
)
def test_bad_describers_are_refused_before_anything_is_called(mllm, error, message):
    with pytest.raises(error, match=message) as caught:
        check_evaluation(mllm=mllm, models={"m": "sandbox"}, metrics=["sandbox"])
    assert "sk-abc" not in str(caught.value)


# ----------------------------------------------------------------------------- compatibility


def test_one_unnamed_describer_keeps_the_keys_it_always_had():
    """Pinned from the keys of result folders written before describers had names: they must resume."""
    key = case_key(reference_sha256="ab" * 32, model="m", model_spec="sandbox", mode="single",
                   metrics=["sandbox"], seed=0, config_hash="c" * 64)  # fmt: skip
    assert key == "23ba35b91b3a0fac025b468c1220d93e"
    assert description_key("ab" * 32, "sandbox", RepainterConfig()) == "d3dba1af029a7944c0c09c2cd2ba79b2"
    assert case_key(reference_sha256="ab" * 32, model="m", model_spec="sandbox", mode="single",
                    metrics=["sandbox"], seed=0, config_hash="c" * 64, describer="a") != key  # fmt: skip
    old = CaseResult(case_id="c", dataset="d", reference_id="r", reference_sha256="0" * 64, model="m",
                     model_spec="sandbox", mode="single", seed=0, status="ok").model_dump()  # fmt: skip
    del old["describer"]  # a record written before the field existed
    assert CaseResult.model_validate(old).describer == DEFAULT_DESCRIBER


def test_an_existing_folder_resumes_under_the_default_name_and_a_new_name_computes_anew(scenes, tmp_path):
    out = tmp_path / "eval"
    first = evaluate(scenes, mllm="sandbox", models={"m": "sandbox"}, out=out, metrics=["sandbox"], settings=SETTINGS)
    assert first.computed == 6 and {c.describer for c in first.cases} == {DEFAULT_DESCRIBER}
    same = evaluate(scenes, mllm={DEFAULT_DESCRIBER: "sandbox"}, models={"m": "sandbox"}, out=out,
                    metrics=["sandbox"], settings=SETTINGS)  # fmt: skip
    assert (same.computed, same.skipped, same.descriptions_computed) == (0, 6, 0)
    named = evaluate(scenes, mllm={"a": "sandbox"}, models={"m": "sandbox"}, out=out, metrics=["sandbox"],
                     settings=SETTINGS)  # fmt: skip
    assert (named.computed, named.descriptions_computed) == (6, 3)  # a named describer is its own


# ----------------------------------------------------------------------------- the grid


def test_one_description_per_reference_and_describer_and_each_critiques_its_cases(scenes, tmp_path):
    sharp, dull = Tally(SandboxMLLM()), Tally(SandboxMLLM(acuity=0.3))
    report = evaluate(scenes, mllm={"sharp": sharp, "dull": dull}, models={"m1": "sandbox", "m2": "sandbox?noise=4"},
                      out=tmp_path / "eval", metrics=["sandbox"], settings=SETTINGS)  # fmt: skip
    assert report.describers == ["sharp", "dull"] and report.failed == 0
    assert report.computed == 3 * 2 * 2 * 2  # references x models x modes x describers
    assert report.descriptions_computed == 3 * 2 == ResultsStore(report.out).description_count()
    assert sharp.calls["ObjectList"] == dull.calls["ObjectList"] == 3  # one description per reference each
    repaints = Counter(c.describer for c in report.cases if c.mode == "repaint")
    critiques = {"sharp": sharp.calls["CritiqueAndRevision"], "dull": dull.calls["CritiqueAndRevision"]}
    assert repaints == Counter(sharp=6, dull=6) and all(n >= 6 for n in critiques.values())  # each critiqued its own
    again = evaluate(scenes, mllm={"sharp": sharp, "dull": dull}, models={"m1": "sandbox", "m2": "sandbox?noise=4"},
                     out=report.out, metrics=["sandbox"], settings=SETTINGS)  # fmt: skip
    assert (again.computed, again.descriptions_computed) == (0, 0)


def test_sharp_describer_ranks_first_with_a_significant_test_in_every_report(tmp_path, monkeypatch, capsys):
    """The issue's check: two sandbox describers of different acuity, one model, generated scenes."""
    monkeypatch.setenv("IMAGEREPAINTER_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    args = ["eval", "sandbox-scenes", "--mllm", "sharp=sandbox", "--mllm", "dull=sandbox?acuity=0.3", "--t2i",
            "exact=sandbox", "--metrics", "sandbox", "--max-rounds", "3", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "24 descriptions computed" in captured.err  # 12 scenes x 2 describers
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM descriptions").fetchone()[0] == 24
    board = Leaderboard.model_validate_json((out / "leaderboard.json").read_text())
    section = board.describers
    assert section is not None and section.describers == ["dull", "sharp"]
    for mode in ("single", "repaint"):
        assert section.ranking("exact", mode) == ["sharp", "dull"]
    for test in section.comparisons:  # one test per mode, each its own family
        assert (test.describer_a, test.describer_b, test.family) == ("sharp", "dull", f"describers:{test.mode}:exact")
        assert test.p_adjusted is not None and test.p_adjusted < 0.05 and test.wins > test.losses, test
    assert all(i.same_best for i in section.interactions)  # one model: it is every describer's best

    rows = [line.split(",") for line in (out / "leaderboard.csv").read_text().splitlines()]
    assert rows[0][-1] == "describer" and {r[-1] for r in rows[1:]} == {"*", "sharp", "dull"}
    markdown, page = (out / "leaderboard.md").read_text(), (out / "leaderboard.html").read_text()
    assert "## Describers" in markdown and 'id="describers"' in page
    assert all(f"{mode} · {d}" in page for mode in ("single", "repaint") for d in ("sharp", "dull"))  # image grid
    for text in (markdown, page, captured.out):
        assert "sharp" in text and "dull" in text
    ranking = captured.out[captured.out.index("Describers per model") :].splitlines()
    assert ranking[2].split()[:3] == ["1", "sharp", "exact"] and ranking[3].split()[:2] == ["2", "dull"]


def test_one_describer_adds_nothing_to_the_reports(scenes, tmp_path):
    report = evaluate(scenes, mllm="sandbox", models={"m": "sandbox"}, out=tmp_path / "eval", metrics=["sandbox"],
                      settings=SETTINGS)  # fmt: skip
    paths = report.write_reports()
    assert json.loads(paths["json"].read_text())["describers"] is None
    assert "describer" not in paths["csv"].read_text().splitlines()[0]
    assert "Describers" not in paths["md"].read_text() and 'id="describers"' not in paths["html"].read_text()


def _case(describer: str, model: str, ref: int, value: float, mode: str = "single") -> CaseResult:
    return CaseResult(case_id=f"{describer}-{model}-{ref}-{mode}", dataset="d", reference_id=str(ref),
                      reference_sha256=f"{ref:064d}", model=model, model_spec="sandbox", describer=describer,
                      mode=mode, seed=0, status="ok", metrics={"sandbox": value}, higher_is_better={"sandbox": True},
                      primary_metric="sandbox")  # fmt: skip


def test_the_interaction_says_when_the_best_model_depends_on_the_describer():
    """With describer x, model a leads b; with y, b leads a: the best model depends on the describer."""
    cases = [_case("x", "a", r, 0.8 + r / 100) for r in range(12)] + [
        _case("x", "b", r, 0.6 + r / 90) for r in range(12)
    ]
    cases += [_case("y", "a", r, 0.5 + r / 80) for r in range(12)] + [
        _case("y", "b", r, 0.7 + r / 70) for r in range(12)
    ]
    section = build_leaderboard(cases).describers
    assert section is not None
    (interaction,) = section.interactions
    assert interaction.best_model == {"x": "a", "y": "b"} and not interaction.same_best and not interaction.same_order
    (contrast,) = interaction.contrasts
    assert (contrast.model_a, contrast.model_b, contrast.describer_x, contrast.describer_y) == ("a", "b", "x", "y")
    assert (
        contrast.gap_x > 0 > contrast.gap_y and contrast.p_adjusted < 0.01 and contrast.family == "interaction:single"
    )
    assert section.families == {"describers:single:a": 1, "describers:single:b": 1, "interaction:single": 1}
    assert section.ranking("a", "single") == ["x", "y"] and section.ranking("b", "single") == ["y", "x"]

    agreeing = [c for c in cases if c.describer == "x"] + [
        c.model_copy(update={"describer": "y", "case_id": c.case_id + "y"}) for c in cases if c.describer == "x"
    ]
    (same,) = build_leaderboard(agreeing).describers.interactions
    assert same.same_best and same.same_order and same.contrasts[0].p_value == 1.0  # identical gaps: nothing to test
