"""CSV cells that a spreadsheet cannot run (formula injection, OWASP "CSV Injection").

Excel, LibreOffice and Google Sheets treat a cell starting with `=`, `+`, `-`, `@`, a tab or a
carriage return as a formula, so a label chosen by whoever sends events (a section, a customer id,
a model name) could run `=HYPERLINK(…)` or `=cmd|…` on the machine of the person who opens the
export. Such text cells get a leading `'`, which spreadsheets show as text. Only text columns are
touched: a number (a token count, a cost) is never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text_cell(value: str) -> str:
    """A text cell, neutralised when it starts like a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_safe_row(values: Iterable[Any], *, columns: Sequence[str], numeric: frozenset[str]) -> list[Any]:
    """One row for csv.writer: None as "", text columns (all but `numeric`) through csv_text_cell."""
    row = []
    for column, value in zip(columns, values, strict=True):
        if value is None:
            row.append("")
        elif column not in numeric and isinstance(value, str):
            row.append(csv_text_cell(value))
        else:
            row.append(value)
    return row
