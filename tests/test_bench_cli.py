"""``imagerepainter eval`` and ``imagerepainter leaderboard`` end to end, on EvalRef-100 with sandbox models."""

from __future__ import annotations

import sqlite3

import pytest

from imagerepainter.bench.runner import ProgressEvent
from imagerepainter.cli.bench import CounterLine
from imagerepainter.cli.main import main

FAST = ["--metrics", "sandbox", "--max-rounds", "2", "--variants", "2", "--height", "64", "--width", "64"]


def _count(out, where="1=1"):
    with sqlite3.connect(out / "results.sqlite") as db:
        return db.execute(f"SELECT COUNT(*) FROM cases WHERE {where}").fetchone()[0]


def test_eval_on_evalref_then_resume_then_add_a_model(evalref_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    base = ["eval", str(evalref_dir), "--mllm", "sandbox", "--limit", "2", *FAST, "--out", str(out)]
    assert main([*base, "--t2i", "a=sandbox", "--t2i", "b=sandbox?jitter=0.05", "--category", "portrait"]) == 0
    err = capsys.readouterr().err
    assert "licence CC-BY-NC 4.0" in err and "8 cases computed (0 failed)" in err and "2 descriptions computed" in err
    assert _count(out) == 8 and _count(out, "status = 'ok'") == 8
    with sqlite3.connect(out / "results.sqlite") as db:
        refs = {r[0] for r in db.execute("SELECT reference_id FROM cases")}
    assert refs == {"portrait_1.png", "portrait_10.png"}  # the category, then the limit

    assert main([*base, "--t2i", "a=sandbox", "--t2i", "b=sandbox?jitter=0.05", "--category", "portrait"]) == 0
    assert "0 cases computed (0 failed), 8 already done" in capsys.readouterr().err

    more = ["--t2i", "a=sandbox", "--t2i", "b=sandbox?jitter=0.05", "--t2i", "c=sandbox?noise=6"]
    assert main([*base, *more, "--category", "portrait", "--mode", "single", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "2 cases computed (0 failed), 4 already done; 0 descriptions computed, 2 reused" in err

    reports = {name: out / f"leaderboard.{name}" for name in ("csv", "md", "html")}
    assert all(path.is_file() for path in reports.values())
    page = reports["html"].read_text()  # the image grid shows each reference beside the models' best
    assert "image unavailable" not in page and page.count("data:image/") >= 2 * 3
    reports["csv"].unlink()
    assert main(["leaderboard", str(out)]) == 0  # rebuilt from results.sqlite alone
    rows = reports["csv"].read_text().splitlines()
    assert rows[0].startswith("model,mode,group,n,mean,std,ci_low,ci_high")
    groups = {tuple(r.split(",")[:3]) for r in rows[1:]}
    assert {("c", "single", "all"), ("a", "repaint", "category:portrait")} <= groups


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--t2i", "nameless"], "--t2i takes NAME=SPEC"),
        (["--t2i", "a=sandbox", "--t2i", "a=sandbox"], "given twice"),
        (["--t2i", "a=nosuchbackend"], "Unknown text-to-image backend"),
        (["--t2i", "a=sandbox", "--mode", "single,twice"], "modes must be among"),
        (["--t2i", "a=sandbox", "--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["--t2i", "a=sandbox", "--category", "cartoons"], "has category 'cartoons'"),
    ],
)
def test_eval_errors_are_one_line_and_exit_2(evalref_dir, tmp_path, capsys, args, message):
    code = main(
        ["eval", str(evalref_dir), "--mllm", "sandbox", *FAST, "--limit", "1", "--out", str(tmp_path / "o"), *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and message in err[-1]


def test_eval_of_a_missing_dataset_and_leaderboard_of_an_empty_folder(tmp_path, capsys):
    assert (
        main(["eval", str(tmp_path / "nope"), "--mllm", "sandbox", "--t2i", "a=sandbox", "--out", str(tmp_path)]) == 2
    )
    assert "is not a folder, a JSONL manifest or a named set" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "holds no results.sqlite" in capsys.readouterr().err


def test_counter_line_without_tqdm_shows_counts_and_eta(capsys):
    import io

    stream = io.StringIO()
    line = CounterLine(stream)
    line(ProgressEvent(done=0, total=4, skipped=2, failed=0))
    line(ProgressEvent(done=1, total=4, skipped=2, failed=1))
    text = stream.getvalue().splitlines()
    assert text[0].startswith("cases 0/4 (2 already done, 0 failed)") and text[0].endswith("ETA ?")
    assert text[1].startswith("cases 1/4 (2 already done, 1 failed)") and "ETA " in text[1] and "ETA ?" not in text[1]


def test_per_category_gives_a_leaderboard_row_per_category(evalref_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", str(evalref_dir), "--mllm", "sandbox", "--t2i", "a=sandbox", "--mode", "single", *FAST]
    assert main([*args, "--per-category", "1", "--out", str(out), "--quiet"]) == 0
    assert "4 cases computed (0 failed)" in capsys.readouterr().err
    groups = {line.split(",")[2] for line in (out / "leaderboard.csv").read_text().splitlines()[1:]}
    assert {f"category:{c}" for c in ("complex", "object", "portrait", "scene")} <= groups


def _scenes(folder, count=3, missing=()):
    """A JSONL manifest of sandbox scenes; ``missing`` names references whose file is not there (failed cases)."""
    import json

    from imagerepainter.sandbox import random_scene, render_scene

    folder.mkdir()
    rows = []
    for i in range(count):
        render_scene(random_scene(i), 64, 64).save(folder / f"scene_{i}.png")
        rows.append({"path": f"scene_{i}.png"})
    rows += [{"path": name} for name in missing]
    (folder / "refs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder / "refs.jsonl"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--t2i", "a=sandbox", "--metrics", "sandbox,ssmi"], "Unknown metric 'ssmi'. Did you mean 'ssim'?"),
        (["--t2i", "x=sandbox?fidelty=0.6"], "Model 'x': Unknown option 'fidelty'"),
        (["--t2i", "a=sandbx"], "Model 'a': Unknown text-to-image backend 'sandbx'. Did you mean 'sandbox'?"),
        (["--t2i", "a=sandbox", "--metrics", "sandbox,ssim?kernal_size=3"], "Did you mean 'kernel_size'?"),
        (["--t2i", "a=sandbox", "--metrics", "sandbox,judge?repets=2"], "Did you mean 'repeats'?"),
        (["--t2i", "a=sandbox", "--metrics", "sandbox,judge?repeats=99"], "repeats must be a whole number from 1"),
        (["--t2i", "a=sandbox", "--metrics", "sandbox,judge.semantik"], "has no part 'semantik'"),
        (["--t2i", "a=sandbox", "--metrics", "sandbox,paper.clpi"], "has no part 'clpi'; its parts: clip, dinov2."),
        (["--t2i", "a=sandbox", "--metrics", "sandbox,ssim?kernel_size=3,ssim"], "Two different metrics"),
        (["--t2i", "a=sandbox", "--scorer", "sandbox?x=1"], "Unknown option 'x' in the 'sandbox' scorer spec"),
        (["--t2i", "a=sandbox", "--mllm", "sandbox?max_edit=2"], "Did you mean 'max_edits'?"),
        (["--t2i", "a=sandbox", "--max-rounds", "0"], "max_rounds"),
    ],
)
def test_eval_checks_every_argument_before_it_loads_the_dataset_or_touches_out(
    tmp_path, capsys, monkeypatch, args, message
):
    from imagerepainter.bench import datasets

    def not_yet(*a, **k):
        raise AssertionError("the dataset was loaded before the arguments were checked")

    monkeypatch.setattr(datasets, "load_dataset", not_yet)
    out = tmp_path / "o"
    argv = ["eval", "sandbox-scenes:2", "--mllm", "sandbox", "--metrics", "sandbox", "--out", str(out), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err  # no progress bar either
    assert not out.exists()


def _table(stdout):
    """The ranking table at the end of the output: the title line and what follows it."""
    lines = stdout.rstrip("\n").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Ranking by "))
    return lines[start:]


def test_eval_ends_with_the_ranking_of_every_model_and_mode(tmp_path, capsys):
    import json

    manifest = _scenes(tmp_path / "refs", missing=["gone.png"])  # one reference fails in every case
    out = tmp_path / "eval"
    models = ["--t2i", "exact=sandbox", "--t2i", "loose=sandbox?fidelity=0.3&noise=40"]
    argv = ["eval", str(manifest), "--mllm", "sandbox", *models, *FAST, "--out", str(out), "--quiet"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    table = _table(stdout)
    assert table[0] == "Ranking by sandbox (higher is better), 12 of 16 cases finished:"
    assert table[1].split() == ["rank", "model", "mode", "mean", "95%", "interval", "n", "failed"]
    assert all(len(line) <= 100 for line in table)
    board = json.loads((out / "leaderboard.json").read_text())
    main_rows = [r for r in board["rows"] if r["group"] == "all"]
    assert len(table) == 2 + len(main_rows) == 2 + 4  # every model in every mode, nothing else
    for row in main_rows:
        line = next(line for line in table[2:] if line.split()[1:3] == [row["model"], row["mode"]])
        cells = line.split()
        interval = f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
        assert cells[0] == str(row["rank"]) and cells[3] == f"{row['mean']:.4g}" and interval in line
        assert cells[-2:] == [str(row["n"]), "1"] and row["n"] == 3 and row["failed"] == 1
    for mode in ("single", "repaint"):  # best first within each mode
        ranks = [line.split()[0] for line in table[2:] if line.split()[2] == mode]
        assert ranks == ["1", "2"]
    assert [line.split()[1] for line in table[2:] if line.split()[2] == "repaint"] == ["exact", "loose"]

    assert main(["leaderboard", str(out)]) == 0  # rebuilt from the database: the same ranking
    assert _table(capsys.readouterr().out) == table


def test_the_ranking_table_stays_narrow_and_shows_what_is_missing():
    from imagerepainter.bench.leaderboard import build_leaderboard
    from imagerepainter.bench.records import CaseResult
    from imagerepainter.cli.bench import ranking_table

    long_name = "a-model-name-that-goes-on-and-on-" + "x" * 40

    def case(model, ref, status="ok", value=0.5):
        metrics = {"psnr": value} if status == "ok" else {}
        return CaseResult(case_id=f"{model}-{ref}", dataset="d", reference_id=ref, reference_sha256=ref * 64,
                          model=model, model_spec="sandbox", mode="repaint", seed=0, status=status,
                          primary_metric="psnr", metrics=metrics, higher_is_better={"psnr": True})  # fmt: skip

    cases = [case(long_name, "1", value=31.25), case(long_name, "2", value=28.5), case("broken", "1", "failed")]
    text = ranking_table(build_leaderboard(cases))
    lines = text.splitlines()
    assert lines[0] == "Ranking by psnr (higher is better), 2 of 3 cases finished:"
    assert all(len(line) <= 100 for line in lines)
    assert lines[2].split()[:4] == ["1", long_name[:27] + "…", "repaint", "29.88"]
    assert lines[3].split() == ["-", "broken", "repaint", "-", "-", "0", "1"]  # no mean, no interval: one failure


def test_a_device_is_checked_against_this_machine_only_when_the_cases_run_here(monkeypatch):
    from imagerepainter.bench.runner import check_evaluation
    from imagerepainter.errors import ConfigurationError

    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    arguments = {"mllm": "sandbox", "models": {"a": "sandbox"}, "metrics": ["sandbox", "clip?device=cuda"]}
    with pytest.raises(ConfigurationError, match="asks for CUDA"):
        check_evaluation(**arguments)  # the local executor: this machine computes the metric
    check_evaluation(**arguments, executor="ray")  # Ray actors have their own GPUs: checked there
    with pytest.raises(ConfigurationError, match="Did you mean 'device'"):
        check_evaluation(**{**arguments, "metrics": ["sandbox", "clip?devise=cuda"]}, executor="ray")
