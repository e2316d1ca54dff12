"""Exact SUMs of 64-bit columns (pico-USD, tokens) on every database.

PostgreSQL's SUM(bigint) widens to numeric; SQLite's SUM() raises "integer overflow" past 2**63 (≈ $9.2M in
pico-USD), so on SQLite each column is summed as its high and low 32-bit halves (each sum stays far inside 64 bits
for any row count below 2**31) and recombined exactly in Python (`sums_of`).

    rows = qs.values("model").annotate(**sum_expressions({"cost": "cost_pico"}))
    for row in rows:
        cost = sums_of(row, ["cost"])["cost"]
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from django.db import connection
from django.db.models import F, Q, Sum

_HALF = 32


def sum_expressions(columns: Mapping[str, str], *, filter: Q | None = None) -> dict[str, Sum]:
    """SUM per output name → column; on SQLite two half-width SUMs per name (`<name>_hi`, `<name>_lo`)."""
    if connection.vendor != "sqlite":
        return {name: Sum(column, filter=filter) for name, column in columns.items()}
    exprs: dict[str, Sum] = {}
    for name, column in columns.items():
        exprs[f"{name}_hi"] = Sum(F(column).bitrightshift(_HALF), filter=filter)
        exprs[f"{name}_lo"] = Sum(F(column).bitand((1 << _HALF) - 1), filter=filter)
    return exprs


def sums_of(row: Mapping[str, Any], names: Iterable[str]) -> dict[str, int]:
    """The exact integer sums (0 for an empty SUM) of a row annotated with `sum_expressions`."""
    if connection.vendor != "sqlite":
        return {name: int(row[name] or 0) for name in names}
    return {name: (int(row[f"{name}_hi"] or 0) << _HALF) + int(row[f"{name}_lo"] or 0) for name in names}


def rows_summed(rows: Iterable[dict[str, Any]], names: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Each row of a `.values().annotate(**sum_expressions(...))` queryset with its sums recombined under `names`."""
    names = tuple(names)
    for row in rows:
        yield {**row, **sums_of(row, names)}
