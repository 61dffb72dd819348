"""Markdown tables for every section of ``leaderboard.md`` (the main rows, costs, elements, describers).

Every cell that comes from a record (model names, groups, element texts, errors) is made inert by
:func:`markdown_cell`; :func:`markdown_table` draws a header, its rule (left-aligned text columns,
right-aligned numbers when asked) and the rows.

Example:
    >>> print("\\n".join(markdown_table(["model", "mean"], [["sd_xl", "0.5"]], text=1)))
    | model | mean |
    |---|---:|
    | sd\\_xl | 0.5 |
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

__all__ = ["markdown_cell", "markdown_table"]

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_|"})


def markdown_cell(value: object) -> str:
    """A Markdown table cell: HTML escaped, emphasis, code and pipes backslashed, no link syntax, one line."""
    text = html.escape(str(value), quote=False).translate(_MD_SPECIAL).replace("](", "]\\(")
    text = re.sub(r"&lt;(?=[\d\s.])", "<", text)  # "<1e-4" starts no tag: keep it readable
    return " ".join(text.split())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], *, text: int | None = None) -> list[str]:
    """The table's lines, every cell through :func:`markdown_cell`.

    With ``text``, the first ``text`` columns are text and the rest numbers, right-aligned
    (``---:``); without it no column is aligned.
    """
    rule = ["---" if text is None or i < text else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(markdown_cell(h) for h in header) + " |", "|" + "".join(f"{r}|" for r in rule)]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return lines
