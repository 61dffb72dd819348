"""Leaderboard groups are typed records in Python and the same text as before in the report files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from imagerepainter.bench.leaderboard import Leaderboard, build_leaderboard, write_reports
from imagerepainter.bench.records import GROUP_ALL, Group
from imagerepainter.errors import ConfigurationError
from tests.test_bench_report import make_case


@pytest.mark.parametrize(
    ("group", "text"),
    [
        (GROUP_ALL, "all"),
        (Group.category("portrait"), "category:portrait"),
        (Group.style("flat vector art"), "style:flat vector art"),
        (Group.category("a:b"), "category:a:b"),
        (Group.style(":"), "style::"),
        (Group.category("all"), "category:all"),
    ],
)
def test_group_round_trips_through_its_text(group: Group, text: str) -> None:
    assert str(group) == text
    assert Group.parse(text) == group
    assert Group.parse(str(group)).name == group.name


@pytest.mark.parametrize("text", ["", "All", "category", "category:", "kind:x", "all:x", "style"])
def test_text_that_is_no_group_is_a_typed_error_that_says_what_to_write(text: str) -> None:
    with pytest.raises(ConfigurationError, match="'all', 'category:<name>' or 'style:<name>'"):
        Group.parse(text)


@pytest.mark.parametrize(("kind", "name"), [("all", "x"), ("category", None), ("style", ""), ("tag", "x")])
def test_a_group_refuses_a_name_that_does_not_fit_its_kind(kind: str, name: str | None) -> None:
    with pytest.raises(ConfigurationError, match="'all'"):
        Group(kind, name)  # type: ignore[arg-type]


def test_groups_sort_in_report_order() -> None:
    groups = [Group.style("b"), Group.category("b"), GROUP_ALL, Group.style("a"), Group.category("a:z")]
    assert sorted(groups, key=lambda g: g.sort_key) == [
        GROUP_ALL,
        Group.category("a:z"),
        Group.category("b"),
        Group.style("a"),
        Group.style("b"),
    ]


def _cases() -> list:
    return [
        make_case(model, mode, ref, 0.5 + ref / 20 + (model == "b") / 10, category=category, style=style)
        for model in ("a", "b")
        for mode in ("single", "repaint")
        for ref, (category, style) in enumerate([("a:b", "photo"), ("a:b", "ink"), ("scene", "photo")] * 2)
    ]


def test_the_leaderboard_built_from_categories_and_styles_has_typed_groups() -> None:
    board = build_leaderboard(_cases())
    expected = [GROUP_ALL, Group.category("a:b"), Group.category("scene"), Group.style("ink"), Group.style("photo")]
    for mode in ("single", "repaint"):
        assert [r.group for r in board.rows if r.mode == mode and r.model == "a"] == expected
    assert all(isinstance(x.group, Group) for x in [*board.rows, *board.gains, *board.comparisons])
    row = board.row("b", "single", Group.category("a:b"))
    assert row is not None and row.n == 4 and row.rank == 1
    assert board.ranking("single", Group.category("a:b")) == ["b", "a"] == board.ranking("single", "category:a:b")
    assert board.row("b", "single", "category:a:b") == row and board.row("b", "single", "category:none") is None
    with pytest.raises(ConfigurationError, match="not a leaderboard group: 'a:b'"):
        board.row("b", "single", "a:b")
    assert {g.group for g in board.gains} == set(expected)


def test_report_files_keep_the_group_text_and_json_reads_back_typed(tmp_path: Path) -> None:
    cases = _cases()
    paths = write_reports(cases, tmp_path / "out")
    board = build_leaderboard(cases)
    texts = [str(r.group) for r in board.rows]
    assert "category:a:b" in texts and "style:ink" in texts
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [r["group"] for r in data["rows"]] == texts
    assert [g["group"] for g in data["gains"]] == [str(g.group) for g in board.gains]
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text(encoding="utf-8"))))
    assert [r["group"] for r in rows] == texts
    assert "| category:a:b |" in paths["md"].read_text(encoding="utf-8")
    assert Leaderboard.model_validate_json(paths["json"].read_text(encoding="utf-8")) == board


def test_json_schema_documents_the_group_as_text() -> None:
    schema = Leaderboard.model_json_schema()
    row = schema["$defs"]["LeaderboardRow"]["properties"]["group"]
    assert row["type"] == "string" and "category:<name>" in row["description"]
