"""Latency histograms: the one definition of the buckets, shared by ingestion, the fold and the reads.

Fixed log-scale buckets of ratio `RATIO` (1.04) from 1 ms to 1 hour, plus an underflow (< 1 ms, index 0)
and an overflow (≥ 1 hour, index `OVERFLOW`) bucket. Bucket i (1 ≤ i < OVERFLOW) holds
[RATIO**(i-1), RATIO**i) ms, so its geometric midpoint is within sqrt(1.04) - 1 ≈ 1.98% of any value in it:
a percentile read from merged counts is within 2% of the exact nearest-rank one.

The bucket index is computed here, in Python, once per event at insert time (`TraceEvent.latency_bucket`,
`ttft_bucket`); the fold only counts events per index, so PostgreSQL and SQLite never disagree on a
boundary. A histogram is merged by adding counts (`counts_merge`), a commutative, associative merge like
the fold's sums. Stored form, None when empty:

* SQLite: a count map {index: count}, JSON text.
* PostgreSQL: one `numeric`, the counts packed in base 10**WIDTH — sum(count_i · 10**(WIDTH·i)) — so that
  adding two histograms is adding two numbers, done in C by `+` and the built-in `sum(numeric)` at the same
  cost however many of the 388 buckets are filled (a count map's merge costs per filled bucket: at a million
  events a row fills ~90 buckets where a quiet org's fills ~16, and the latency reads grew with it). A bucket
  holds fewer than 10**16 calls, so the packed sum is exact (`unpack` reads it back; `pack` writes it).

The HTTP status codes of failed calls (a handful of keys) stay count maps on both databases (jsonb on
PostgreSQL).
"""

from __future__ import annotations

import json
import math
import operator
import struct
from bisect import bisect_left
from collections import deque
from decimal import Context, Decimal
from functools import lru_cache
from itertools import accumulate
from typing import Any, Iterable, Mapping, Sequence

from django.db import models
from django.db.models import Aggregate, TextField

RATIO = 1.04
LOW_MS = 1.0
HIGH_MS = 3_600_000.0
_LOG_RATIO = math.log(RATIO)
OVERFLOW = math.ceil(math.log(HIGH_MS / LOW_MS) / _LOG_RATIO) + 1  # index of the ≥ 1 hour bucket (387)
SIZE = OVERFLOW + 1  # the length of a dense histogram (a list of counts by index, what the reads merge)
WIDTH = 16  # decimal digits per bucket in PostgreSQL's packed form (a bucket's count < 10**16)
EXACT = Context(prec=WIDTH * SIZE + 1)  # Decimal arithmetic on packed histograms without rounding

Counts = dict[int, int]


def _lower(index: int) -> float:
    return LOW_MS * RATIO ** (index - 1)


def bucket_of(ms: float | None) -> int | None:
    """The bucket index of a duration in milliseconds (None stays None: no latency recorded)."""
    if ms is None or math.isnan(ms):
        return None
    if ms < LOW_MS:
        return 0
    if ms >= HIGH_MS:
        return OVERFLOW
    index = int(math.log(ms / LOW_MS) / _LOG_RATIO) + 1
    # log() may land one bucket off at a boundary: settle on the bucket whose [lower, upper) holds ms
    while index > 1 and ms < _lower(index):
        index -= 1
    while index < OVERFLOW - 1 and ms >= _lower(index + 1):
        index += 1
    return index


def representative(index: int) -> float:
    """The value a bucket stands for: its geometric midpoint (under/overflow: see `percentile`)."""
    if index <= 0:
        return LOW_MS / 2
    if index >= OVERFLOW:
        return HIGH_MS
    return _lower(index) * math.sqrt(RATIO)


def counts_merge(*maps: Mapping[Any, int] | None) -> Counts:
    """The sum of count maps (keys as ints); None and empty maps add nothing."""
    out: Counts = {}
    for counts in maps:
        for key, n in (counts or {}).items():
            k = int(key)
            out[k] = out.get(k, 0) + int(n)
    return out


def counts_add(into: Counts, counts: Mapping[Any, int] | None) -> Counts:
    """Add `counts` into `into` in place (the read side's loop over rollup rows)."""
    for key, n in (counts or {}).items():
        k = int(key)
        into[k] = into.get(k, 0) + int(n)
    return into


def counts_of(values: Iterable[int | None]) -> Counts:
    out: Counts = {}
    for value in values:
        if value is not None:
            out[value] = out.get(value, 0) + 1
    return out


def encode(counts: Mapping[Any, int] | None) -> str | None:
    """Canonical JSON text of a count map (keys ascending), None when empty."""
    if not counts:
        return None
    return json.dumps({str(k): int(counts[k]) for k in sorted(counts, key=int)}, separators=(",", ":"))


def decode(value: str | bytes | Mapping[str, int] | list | None) -> Counts:
    """A count map from its stored form ({"index": count} JSON or mapping) or `CountsSum`'s [[index, count], …]."""
    if value is None:
        return {}
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    if isinstance(value, list):
        return dict(value)  # CountsSum's pairs: integers already
    return {int(k): int(n) for k, n in value.items()}


def dense(value: str | bytes | Mapping[Any, int] | list | None) -> list[int]:
    """A histogram as a dense list of `SIZE` counts by index ([] when empty), from its stored map, from
    `CountsSum`'s [[index, count], …] pairs or packed text (PostgreSQL), or a dense list (returned as is). Dense
    histograms merge and read in C (`dense_add`, `percentile`) at the same cost however many buckets are filled."""
    if value is None:
        return []
    if isinstance(value, Decimal) or isinstance(value, str) and value[:1].isdigit():
        return unpack(value)  # PostgreSQL's packed form (CountsSum: its text)
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    if isinstance(value, list):
        if not value or not isinstance(value[0], list):
            return value
        out = [0] * SIZE
        indexes, counts = zip(*value)
        deque(map(out.__setitem__, indexes, counts), maxlen=0)  # the pairs scattered in C
        return out
    out = [0] * SIZE
    for key, n in value.items():
        out[int(key)] += int(n)
    return out


def pack(counts: Mapping[Any, int] | None) -> Decimal | None:
    """PostgreSQL's stored form of a count map: sum(count · 10**(WIDTH·index)) (None when empty)."""
    if not counts:
        return None
    if any(not 0 <= int(k) < SIZE or not 0 <= int(n) < 10 ** WIDTH for k, n in counts.items()):
        raise ValueError(f"a histogram's buckets are 0..{SIZE - 1}, each under 10**{WIDTH} calls: {dict(counts)}")
    total = Decimal(0)  # exponent 0: the sum is written out as an integer
    for k, n in counts.items():
        total = EXACT.add(total, Decimal(int(n)).scaleb(WIDTH * int(k), EXACT))
    return total


@lru_cache(maxsize=SIZE + 1)
def _chunks(n: int) -> struct.Struct:
    return struct.Struct(f"{WIDTH}s" * n)


def unpack(value: Decimal | str) -> list[int]:
    """The dense histogram (`SIZE` counts by index) of a packed one (a Decimal or its digits, e.g. `sum(…)::text`).

    The digits are cut into WIDTH-digit counts by `struct` and parsed by `int` (which refuses a non-digit), both
    in C: ~15–30 µs per histogram whatever its fill."""
    text = value if isinstance(value, str) else format(value, "f")
    n = -(-len(text) // WIDTH)
    if n > SIZE:
        raise ValueError(f"not a packed histogram: {len(text)} digits")
    counts = list(map(int, _chunks(n).unpack(text.zfill(n * WIDTH).encode())))
    counts.reverse()  # the most significant digits hold the highest bucket
    counts.extend([0] * (SIZE - n))
    return counts


def dense_add(a: list[int], b: list[int]) -> list[int]:
    """The sum of two dense histograms (either may be []): a new list, or one of them (never changed in place)."""
    if not a:
        return b
    if not b:
        return a
    return list(map(operator.add, a, b))


def percentile(counts: Mapping[int, int] | Sequence[int], p: float, *, max_ms: float | None = None
               ) -> float | None:
    """Nearest-rank percentile `p` (0 < p ≤ 100) of a histogram, in ms: the representative of the bucket
    holding rank ceil(p/100 · n), clamped to the observed maximum (exact for the top of the distribution; the
    overflow bucket reads as the maximum). Sub-millisecond values (the underflow bucket) read as 0.5 ms: the
    2% bound holds from 1 ms to 1 hour. None for an empty histogram."""
    if isinstance(counts, Sequence):  # dense: the first index whose running total reaches the rank
        total = sum(counts)
        if total <= 0:
            return None
        rank = max(1, math.ceil(p / 100 * total - 1e-9))
        return _value_at(bisect_left(list(accumulate(counts)), rank), max_ms)
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * total - 1e-9))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return _value_at(index, max_ms)
    return max_ms


def _value_at(index: int, max_ms: float | None) -> float:
    value = representative(index)
    if index >= OVERFLOW:
        value = max_ms if max_ms is not None else value
    elif max_ms is not None:
        value = min(value, max_ms)
    return value


def percentiles(counts: Mapping[int, int], ps: Iterable[float], *, max_ms: float | None = None
                ) -> dict[float, float | None]:
    return {p: percentile(counts, p, max_ms=max_ms) for p in ps}


# --- the databases' side of the merge -----------------------------------------------------------

# PostgreSQL: created by migration ingestion 0011. The fold builds a group's count map inline (a subplan:
# `jsonb_object_agg` over the unnested values, `ingestion.rollups.Dialect.counts`); `llmo_counts_merge(a, b)`
# adds two maps when a row exists already (ON CONFLICT). Since 0017 only the HTTP-code maps use it.
PG_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION llmo_counts_merge(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN a IS NULL THEN b WHEN b IS NULL THEN a ELSE (
            SELECT jsonb_object_agg(k, n) FROM (
                SELECT k, sum(v::bigint) AS n FROM (
                    SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) e(k, v)
                GROUP BY k) s) END
    $$""",
]
PG_FUNCTIONS_DROP = ["DROP FUNCTION IF EXISTS llmo_counts_merge(jsonb, jsonb)"]

# PostgreSQL, migration ingestion 0017: the packed histograms' merge on conflict (an overload of the same name,
# so the fold's ON CONFLICT clause reads the same for both kinds of count column).
PG_PACKED_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION llmo_counts_merge(a numeric, b numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT coalesce(a + b, a, b) $$""",
]
PG_PACKED_FUNCTIONS_DROP = ["DROP FUNCTION IF EXISTS llmo_counts_merge(numeric, numeric)"]
# The fold's columns whose count maps are histograms (packed on PostgreSQL); the others stay count maps.
PACKED_SOURCES = ("latency_bucket", "ttft_bucket")


def pg_packed_sum(index: str) -> str:
    """PostgreSQL: the packed histogram of the rows' bucket `index` — each row adds 10**(WIDTH·index), written
    '1e' || WIDTH·index (its input reads one digit and sets the exponent, no long string), added by
    `sum(numeric)` in C (the digits between stay implicit zeros); NULL over no bucket. One aggregate in the
    fold's own grouping: no subplan per group (a subplan counting each bucket first made the whole fold 96 µs
    of PostgreSQL CPU per event against 86–89 µs, the same events side by side: docs/dashboard.md)."""
    return f"sum(('1e' || {WIDTH} * {index})::numeric)"


class HistogramField(models.JSONField):
    """A latency histogram column: a JSON count map on SQLite, the packed `numeric` on PostgreSQL (module
    docstring). Its Python value is the count map {"index": count} on both databases (None when empty)."""

    def db_type(self, connection):
        return "numeric" if connection.vendor == "postgresql" else super().db_type(connection)

    def from_db_value(self, value, expression, connection):
        if connection.vendor != "postgresql" or value is None:
            return super().from_db_value(value, expression, connection)
        return {str(index): n for index, n in enumerate(unpack(value)) if n}

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        return None if value is None else pack(value)


class CountsSum(Aggregate):
    """The sum of the group's histograms or count maps, done by the database, as text that `dense` / `decode`
    read; None when every one is None.

    PostgreSQL: a packed histogram (`HistogramField`) is summed by `sum(numeric)`, in C, whatever its fill: the
    text of the packed sum. A jsonb count map (the HTTP codes), by a subplan per group over its maps' entries
    (`jsonb_each_text`, summed per key): JSON [[key, count], …] by key. SQLite: the aggregate `llmo_counts_sum`
    (`SqliteCountsSum`, `counts_add`), JSON pairs too."""

    function = "llmo_counts_sum"
    name = "CountsSum"
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra_context):
        if isinstance(self.get_source_fields()[0], HistogramField):
            template = "sum(%(expressions)s)::text"
        else:
            template = ("(SELECT to_json(array_agg(ARRAY[k, n] ORDER BY k))::text FROM ("
                        "SELECT e.key::bigint AS k, sum(e.value::bigint) AS n "
                        "FROM unnest(array_agg(%(expressions)s)) AS m(map), jsonb_each_text(m.map) AS e GROUP BY 1) s)")
        return super().as_sql(compiler, connection, template=template, **extra_context)


class SqliteCountsSum:
    """SQLite aggregate `llmo_counts_sum(map)`: `CountsSum` — the sum of JSON count maps, as JSON [index, count]
    pairs by index (None if every map is None)."""

    def __init__(self) -> None:
        self.counts: Counts = {}
        self.seen = False

    def step(self, value: str | None) -> None:
        if value is not None:
            self.seen = True
            counts_add(self.counts, json.loads(value))

    def finalize(self) -> str | None:
        if not self.seen:
            return None
        return json.dumps(sorted(self.counts.items()), separators=(",", ":"))


class SqliteCounts:
    """SQLite aggregate `llmo_counts_agg(value)`: the count map of the non-null values, as JSON text."""

    def __init__(self) -> None:
        self.counts: Counts = {}

    def step(self, value: int | None) -> None:
        if value is not None:
            self.counts[value] = self.counts.get(value, 0) + 1

    def finalize(self) -> str | None:
        return encode(self.counts)


def sqlite_counts_merge(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return encode(counts_merge(decode(a), decode(b)))
