"""The benchmark's cost ledger, prices and budget, end to end on the sandbox world."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from imagerepainter.bench import evaluate
from imagerepainter.bench.costs import case_dollars, description_shares
from imagerepainter.bench.prices import load_prices
from imagerepainter.bench.records import CaseResult
from imagerepainter.bench.store import ResultsStore
from imagerepainter.errors import ConfigurationError
from imagerepainter.sandbox import random_scene, render_scene

PRICES: dict[str, Any] = {
    "mllm": {"sandbox": {"input_per_million": 3.0, "output_per_million": 15.0}},
    "t2i": {"exact": {"per_image": 0.01}, "loose": {"per_gpu_hour": 7.0}},
}
MODELS = {"exact": "sandbox", "loose": "sandbox?fidelity=0.6"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    for i in range(3):
        render_scene(random_scene(i), 64, 64).save(folder / f"scene_{i}.png")
    return folder


def _evaluate(scenes: Path, out: Path, **kw: Any) -> Any:
    args: dict[str, Any] = {"mllm": "sandbox", "models": MODELS, "metrics": ["sandbox"], "settings": {"max_rounds": 2}}
    return evaluate(scenes, out=out, **(args | kw))


@pytest.fixture(scope="module")
def priced(scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    report = _evaluate(scenes, tmp_path_factory.mktemp("priced"), prices=PRICES)
    return report, report.write_reports()


def test_each_case_costs_its_tokens_times_prices_plus_its_images_and_the_cases_add_up(priced: Any) -> None:
    report, paths = priced
    assert report.computed == 12 and all(c.cost is not None for c in report.cases)  # read back from the store
    board = json.loads(paths["json"].read_text())["costs"]
    shares = description_shares(report.cases)
    assert set(shares.values()) == {4}  # 2 models x 2 modes share each reference's description
    total = 0.0
    for case in report.cases:
        cost = case.cost
        tokens = cost.mllm.get("sandbox")
        mllm = 0.0 if tokens is None else (tokens.input_tokens * 3.0 + tokens.output_tokens * 15.0) / 1e6
        t2i = cost.images * 0.01 if case.model == "exact" else cost.t2i_seconds / 3600 * 7.0
        d = cost.description
        share = (d.input_tokens * 3.0 + d.output_tokens * 15.0) / 1e6 / 4
        assert case_dollars(case, load_prices(PRICES), shares) == pytest.approx((mllm + t2i, share))
        total += mllm + t2i + share
        if case.mode == "repaint":
            assert tokens is not None and tokens.input_tokens > 0 and cost.images >= 1 and cost.t2i_seconds > 0
    descriptions = {c.cost.description.id: c.cost.description for c in report.cases}
    once = sum((d.input_tokens * 3.0 + d.output_tokens * 15.0) / 1e6 for d in descriptions.values())
    assert len(descriptions) == 3 and once > 0
    assert board["total_dollars"] == pytest.approx(total)
    assert board["description_dollars"] == pytest.approx(once)
    assert sum(r["total_dollars"] for r in board["rows"]) == pytest.approx(total)
    row = next(r for r in board["rows"] if (r["model"], r["mode"]) == ("exact", "single"))
    assert row["dollars"] == pytest.approx(row["total_dollars"] / row["cases"])
    gain = next(g for g in board["gains"] if g["model"] == "exact")
    repaint = next(r for r in board["rows"] if (r["model"], r["mode"]) == ("exact", "repaint"))
    assert gain["extra_dollars"] == pytest.approx(repaint["dollars"] - row["dollars"])
    assert gain["gain_per_dollar"] == pytest.approx(gain["gain"] / gain["extra_dollars"])
    assert "USD" in paths["md"].read_text() and "Cost per reference" in paths["html"].read_text()


def test_without_prices_no_report_shows_a_dollar_figure(
    scenes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from imagerepainter.cli.main import main

    code = main(["eval", str(scenes), "--mllm", "sandbox", "--t2i", "exact=sandbox", "--metrics", "sandbox",
                 "--max-rounds", "2", "--out", str(tmp_path), "--quiet"])  # fmt: skip
    terminal = capsys.readouterr()
    assert code == 0
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert board["costs"]["rows"] and board["costs"]["priced"] is False  # the usage is there
    texts = [(tmp_path / f"leaderboard.{ext}").read_text() for ext in ("json", "md", "html", "csv")]
    for text in [*texts, terminal.out, terminal.err]:
        assert "dollar" not in text.lower() and "USD" not in text and "$" not in text


def test_the_csv_appends_each_model_and_modes_cost_per_reference_and_dollars_only_when_priced(
    priced: Any, tmp_path: Path
) -> None:
    from imagerepainter.bench.leaderboard import write_reports
    from imagerepainter.bench.leaderboard_text import CSV_COLUMNS, CSV_COST_FIELDS, CSV_DOLLAR_FIELDS

    report, _ = priced
    refs = sorted({c.reference_id for c in report.cases})  # two categories: rows per category besides "all"
    cases = [c.model_copy(update={"category": f"kind {refs.index(c.reference_id) % 2}"}) for c in report.cases]
    files = {
        "priced": write_reports(cases, tmp_path / "priced", prices=load_prices(PRICES)),
        "unpriced": write_reports(cases, tmp_path / "unpriced"),
    }
    tables = {k: list(csv.reader(io.StringIO(f["csv"].read_text()))) for k, f in files.items()}
    fields = [*CSV_COST_FIELDS, *CSV_DOLLAR_FIELDS]
    header = tables["priced"][0]
    assert header[: len(CSV_COLUMNS)] == list(CSV_COLUMNS) and header[len(CSV_COLUMNS)] == "mean_sandbox"
    assert header[-len(fields) :] == [f"cost_{f}" for f in fields]  # appended after the metrics
    assert tables["unpriced"][0] == header[: -len(CSV_DOLLAR_FIELDS)]  # unpriced: no dollar column
    assert "dollar" not in files["unpriced"]["csv"].read_text()
    for kind, table in tables.items():
        costs = {(r["model"], r["mode"]): r for r in json.loads(files[kind]["json"].read_text())["costs"]["rows"]}
        names = [f for f in fields if f"cost_{f}" in table[0]]
        rows = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
        assert {r["group"] for r in rows} > {"all"}  # categories too: their cost cells stay empty
        for row in rows:
            cells = [row[f"cost_{f}"] for f in names]
            if row["group"] == "all":
                cost = costs[(row["model"], row["mode"])]
                assert [float(c) for c in cells] == [cost[f] for f in names]  # to the last digit, as in the JSON
            else:
                assert set(cells) == {""}
    total = sum(float(r[-1]) for r in tables["priced"][1:] if r[2] == "all")
    assert total == pytest.approx(json.loads(files["priced"]["json"].read_text())["costs"]["total_dollars"])


def test_token_counts_flow_from_the_wire_into_the_ledger(scenes: Path, tmp_path: Path) -> None:
    from imagerepainter.sandbox.server import sandbox_server
    from imagerepainter.testing.openai_server import ChatReply

    server = sandbox_server()
    answer = server.responder
    server.responder = lambda request: ChatReply(
        payload=answer(request), usage={"prompt_tokens": 100, "completion_tokens": 7}
    )
    with server:
        spec = f"openai:sandbox?base_url={server.base_url}"
        prices = {"mllm": {"openai:sandbox": {"input_per_million": 1, "output_per_million": 1}}, "t2i": PRICES["t2i"]}
        report = _evaluate(scenes, tmp_path, mllm=spec, models={"exact": "sandbox"}, scorer="sandbox", limit=1,
                           prices=prices)  # fmt: skip
        requests = len(server.chat_requests)
    cases = report.cases
    own = [c.cost.mllm["openai:sandbox"] for c in cases if c.cost.mllm]
    description = cases[0].cost.description
    assert requests > 0 and description.calls > 0 and own
    assert sum(u.input_tokens for u in own) + description.input_tokens == 100 * requests
    assert sum(u.output_tokens for u in own) + description.output_tokens == 7 * requests


def test_a_budget_stops_starting_cases_and_the_next_call_finishes_them(scenes: Path, tmp_path: Path) -> None:
    first = _evaluate(scenes, tmp_path, prices=PRICES, budget=1e-6, max_concurrency=2)
    assert first.computed == 2 and first.not_started == 10  # the two cases in flight finished and were kept
    assert first.descriptions_computed == 1  # both were the first reference's: nothing described ahead under a budget
    assert first.budget_stop is not None and first.budget_stop["spent"] >= 1e-6
    note = json.loads(first.write_reports()["json"].read_text())["costs"]["budget_note"]
    assert "did not start" in note and "10 cases" in note
    kept = {c.case_id for c in first.cases}
    second = _evaluate(scenes, tmp_path, prices=PRICES, budget=100.0)
    assert second.computed == 10 and second.skipped == 2 and second.not_started == 0
    assert kept < {c.case_id for c in second.cases} and len(second.cases) == 12
    assert ResultsStore(tmp_path).get_meta("budget_stop") is None  # the reports no longer say it stopped


def test_a_budget_needs_prices_covering_the_run_refused_before_anything_runs(scenes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigurationError, match="needs prices"):
        _evaluate(scenes, out, budget=1.0)
    with pytest.raises(ConfigurationError, match="positive number"):
        _evaluate(scenes, out, prices=PRICES, budget=-1)
    missing = {"mllm": PRICES["mllm"], "t2i": {"exakt": {"per_image": 1}}}
    with pytest.raises(ConfigurationError, match=r"no price for t2i 'exact'.*Did you mean 'exakt'"):
        _evaluate(scenes, out, prices=missing)
    assert not out.exists()


def test_a_prices_file_error_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text("[t2i.sdxl]\nper_image = 0.01\nper_gpu_hour = 2\n")
    with pytest.raises(ConfigurationError, match=r"prices\.toml.*t2i\.sdxl.*exactly one of per_image or per_gpu_hour"):
        load_prices(path)
    path.write_text('[mllm."openai:gpt-4o"]\ninput_per_million = -1\noutput_per_million = 1\n')
    with pytest.raises(ConfigurationError, match=r"mllm\.openai:gpt-4o\.input_per_million"):
        load_prices(path)
    path.write_text("[mllm\n")
    with pytest.raises(ConfigurationError, match="not readable TOML"):
        load_prices(path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_prices(tmp_path / "nope.toml")


def test_the_example_prices_file_loads_and_the_cli_refuses_a_budget_without_prices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from imagerepainter.cli.main import main

    example = load_prices(Path(__file__).parents[1] / "examples" / "prices.toml")
    assert example.t2i["exact"].per_image is not None and "openai:gpt-4o" in example.mllm
    code = main(["eval", "sandbox-scenes", "--mllm", "sandbox", "--t2i", "exact=sandbox", "--budget", "5",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2 and "--prices" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_store_written_before_the_ledger_still_loads_and_is_reported_as_unknown(priced: Any) -> None:
    from imagerepainter.bench.costs import cost_section

    report, _ = priced
    old = CaseResult.model_validate(report.cases[0].model_dump(exclude={"cost"}))
    assert old.cost is None
    section = cost_section([old, *report.cases[1:]], prices=load_prices(PRICES))
    assert section is not None and section.unknown == 1


def test_the_leaderboard_command_prices_a_finished_evaluation_at_the_prices_given(
    priced: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from imagerepainter.bench import CostSection, Prices, load_prices
    from imagerepainter.cli.main import main

    report, _ = priced
    assert isinstance(load_prices(PRICES), Prices)
    doubled = report.out / "doubled.toml"
    doubled.write_text(
        "[mllm.sandbox]\ninput_per_million = 6\noutput_per_million = 30\n"
        "[t2i.exact]\nper_image = 0.02\n[t2i.loose]\nper_gpu_hour = 14\n"
    )
    assert main(["leaderboard", str(report.out), "--prices", str(doubled)]) == 0
    assert "USD" in capsys.readouterr().out
    board = json.loads((report.out / "leaderboard.json").read_text())
    costs = CostSection.model_validate(board["costs"])
    assert costs.priced and costs.total_dollars is not None
    once = report.write_reports()  # the evaluation's own prices again
    assert json.loads(once["json"].read_text())["costs"]["total_dollars"] == pytest.approx(costs.total_dollars / 2)
    assert main(["leaderboard", str(report.out)]) == 0
    assert "USD" not in capsys.readouterr().out and "dollar" not in (report.out / "leaderboard.json").read_text()
    wrong = report.out / "wrong.toml"
    wrong.write_text("[mllm.sandbox]\ninput_per_million = 1\noutput_per_million = 1\n[t2i.exact]\nper_image = 1\n")
    assert main(["leaderboard", str(report.out), "--prices", str(wrong)]) == 2
    assert "no price for t2i 'loose'" in capsys.readouterr().err
    report.write_reports()  # the module's reports as the other tests read them


def test_a_case_that_fails_mid_run_keeps_what_it_spent(scenes: Path, tmp_path: Path) -> None:
    from imagerepainter.errors import GenerationError
    from imagerepainter.testing import FakeT2I

    class SecondRenderFails(FakeT2I):
        def generate(self, requests: Any) -> Any:
            if self.batches >= 1:
                raise GenerationError("the device fell over", backend=self.name)
            return super().generate(requests)

    prices = {"mllm": PRICES["mllm"], "t2i": {"flaky": {"per_image": 0.5}}}
    report = _evaluate(scenes, tmp_path, models={"flaky": SecondRenderFails()}, modes=["repaint"], scorer="sandbox",
                       limit=1, prices=prices)  # fmt: skip
    (case,) = report.cases
    assert case.status == "failed" and "fell over" in (case.error or "")
    assert case.cost is not None and case.cost.images == 1 and case.cost.mllm["sandbox"].calls >= 1  # the critique
    own, share = case_dollars(case, load_prices(prices), description_shares([case]))
    tokens = case.cost.mllm["sandbox"]
    assert own == pytest.approx(0.5 + (tokens.input_tokens * 3.0 + tokens.output_tokens * 15.0) / 1e6)
    assert share > 0


def test_a_budget_counts_each_describers_descriptions_at_its_own_prices() -> None:
    from types import SimpleNamespace

    from imagerepainter.bench.budget import Budget
    from imagerepainter.bench.prices import load_prices
    from imagerepainter.results import Description

    prices = load_prices(
        {"mllm": {"cheap": {"input_per_million": 1, "output_per_million": 1},
                  "dear": {"input_per_million": 100, "output_per_million": 100}}, "t2i": {}}
    )  # fmt: skip
    used = {"mllm_calls": 1, "input_tokens": 10_000, "output_tokens": 0}
    described = [Description(prompt=f"p{i}", understanding=None, usage=used) for i in range(2)]
    panel = SimpleNamespace(describers={
        "a": SimpleNamespace(mllm="cheap?temperature=0", described=described[:1]),
        "b": SimpleNamespace(mllm="dear", described=described[1:]),
    })  # fmt: skip
    # 10,000 tokens at $1 and at $100 per million: each describer's description at its own price
    assert Budget(5.0, prices, describer=panel).spent == pytest.approx(0.01 + 1.0)
