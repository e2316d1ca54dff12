"""The one fold from events into the rollup tables, run summaries and run facets.

One description — the sums (`ROLLUP_SUMS`, `RUN_SUMS`), the grains (`ROLLUP_GRAINS`) and how each is
computed from event columns — generates the `INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`
statements for PostgreSQL and SQLite alike. Every writer goes through it:

* ingestion folds the rows its `INSERT … RETURNING` inserted (on PostgreSQL, as CTEs of the same
  statement; on SQLite, as N statements over a temp table of the new events);
* OTLP resolution on PostgreSQL stores its events and, in the same transaction, a fold batch of their ids
  (`RawBatch.Kind.FOLD`), folded by `fold_stored` in the next transaction: the org's resolution lock is
  then released before the fold (services.batch_process). A refold leaves out the events of unprocessed
  fold batches (`_unfolded_runs`): their batch counts them;
* re-pricing updates the events, then refolds their (org, day) ranges and runs from `TraceEvent`;
* `manage.py rebuild_rollups` (and the tests, as the oracle) deletes and refolds from `TraceEvent`.

Every merge is a commutative, associative one (sums, min/max, "earliest labelled value", count maps
added key by key — the latency histograms of `ingestion.histograms`), so folding
events batch by batch, in any order, gives exactly what one fold of all of them gives.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from . import histograms
from .models import ROLLUP_GRAINS, RawBatch, RollupHistograms, RunFacet, RunSummary, TraceEvent

# The columns a fold reads from events (a source relation must provide them).
SOURCE_COLUMNS = ("org_id", "run_id", "timestamp", "latency_ms", "section_path", "provider", "model", "customer_id",
                  "api_key_id", "status", "cost_pico", "input_tokens", "output_tokens", "cached_input_tokens",
                  "cache_write_tokens", "reasoning_tokens", "ttft_ms", "latency_bucket", "ttft_bucket",
                  "http_status", "endpoint")

# Sum column -> SQL over the source (the same on both backends).
ROLLUP_SUMS: dict[str, str] = {
    "calls": "count(*)",
    "errors": "count(*) FILTER (WHERE status <> 'ok')",
    "unpriced_calls": "count(*) FILTER (WHERE cost_pico IS NULL)",
    "input_tokens": "sum(input_tokens)",
    "output_tokens": "sum(output_tokens)",
    "cached_input_tokens": "sum(cached_input_tokens)",
    "cache_write_tokens": "sum(cache_write_tokens)",
    "reasoning_tokens": "sum(reasoning_tokens)",
    "cost_pico": "coalesce(sum(cost_pico), 0)",
    "latency_ms_sum": "coalesce(sum(latency_ms), 0)",
}
# Sum column -> SQL, only in the grains that keep histograms (`RollupHistograms`): what the latency and error
# reads add up beside the histograms. The fine grain, which they never read, is spared ten aggregates per row.
PERF_SUMS: dict[str, str] = {
    "latency_calls": "count(latency_ms)",
    "ttft_calls": "count(ttft_ms)",
    "ttft_ms_sum": "coalesce(sum(ttft_ms), 0)",
    "status_error": "count(*) FILTER (WHERE status = 'error')",
    "status_rate_limited": "count(*) FILTER (WHERE status = 'rate_limited')",
    "status_timeout": "count(*) FILTER (WHERE status = 'timeout')",
    "status_cancelled": "count(*) FILTER (WHERE status = 'cancelled')",
    "http_4xx": "count(*) FILTER (WHERE http_status >= 400 AND http_status < 500)",
    "http_5xx": "count(*) FILTER (WHERE http_status >= 500 AND http_status < 600)",
    "failed_cost_pico": "coalesce(sum(CASE WHEN status <> 'ok' THEN cost_pico END), 0)",
}
# Max column -> the source column (merged with the larger; NULL = no value yet).
ROLLUP_MAXES: dict[str, str] = {"latency_ms_max": "latency_ms", "ttft_ms_max": "ttft_ms"}
# Count-map column -> (source column, condition): {value: calls} maps (ingestion.histograms), merged by adding.
ROLLUP_COUNTS: dict[str, tuple[str, str]] = {
    "latency_hist": ("latency_bucket", "latency_bucket IS NOT NULL"),
    "ttft_hist": ("ttft_bucket", "ttft_bucket IS NOT NULL"),
    "http_codes": ("http_status", "http_status >= 400"),
}
RUN_SUMS = ("calls", "errors", "unpriced_calls", "input_tokens", "output_tokens", "cost_pico")
# A run's customer and agent are its earliest labelled event's (ties: the smallest value), kept with that time.


@dataclass(frozen=True)
class Dialect:
    pg: bool

    @property
    def agent(self) -> str:
        if self.pg:
            return "split_part(section_path, '/', 1)"
        return ("CASE WHEN instr(section_path, '/') > 0 THEN substr(section_path, 1, instr(section_path, '/') - 1) "
                "ELSE section_path END")

    def dim(self, column: str) -> str:
        return {"agent": self.agent, "customer_id": "coalesce(customer_id, '')"}.get(column, column)

    def floor(self, period: str) -> str:
        if self.pg:
            # UTC hours and days are fixed-length bins from a UTC midnight: plain arithmetic, no time zone lookup
            # per row (date_trunc(…, 'UTC') cost the fold ~1 µs per event).
            return f"date_bin('1 {period}', timestamp, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
        # Django stores SQLite datetimes as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        return "substr(timestamp, 1, 13) || ':00:00'" if period == "hour" else "substr(timestamp, 1, 10) || ' 00:00:00'"

    def dims_hash(self, columns: tuple[str, ...]) -> str:
        """MD5 of the dimension values joined by U+001F: the upsert key stays small whatever a path's length."""
        if self.pg:
            args = ", ".join(f"{self.dim(c)}::text" if c == "api_key_id" else self.dim(c) for c in columns)
            return f"md5(concat_ws(chr(31), {args}))"
        return "MD5(" + " || char(31) || ".join(self.dim(c) for c in columns) + ")"  # Django's SQLite MD5()

    def counts(self, column: str, condition: str) -> str:
        """The {value: calls} map of `column` over the group's rows matching `condition` (NULL if none); on
        PostgreSQL a histogram's is packed, added row by row (`histograms.pg_packed_sum`)."""
        if self.pg:
            if column in histograms.PACKED_SOURCES:
                return histograms.pg_packed_sum(column)  # NULL bucket (no latency): adds nothing
            # a subplan over the group's values counted per value: no function call per group, and none at all
            # for an empty map (HTTP codes ≥ 400: a failed call's)
            values = f"array_agg({column}) FILTER (WHERE {condition})"
            return (f"CASE WHEN count(*) FILTER (WHERE {condition}) > 0 THEN (SELECT jsonb_object_agg(v, n) FROM "
                    f"(SELECT v, count(*) AS n FROM unnest({values}) AS v GROUP BY v) c) END")
        return f"llmo_counts_agg(CASE WHEN {condition} THEN {column} END)"

    def run_end(self) -> str:
        if self.pg:
            return "max(timestamp + coalesce(latency_ms, 0) * interval '1 millisecond')"
        return "max(llmo_after_ms(timestamp, latency_ms))"

    def first(self, value: str) -> tuple[str, str]:
        """(value, time) of the earliest event whose `value` is not '' (ties: the smallest value)."""
        if self.pg:
            return (f"coalesce((array_agg({value} ORDER BY timestamp, {value}) FILTER (WHERE {value} <> ''))[1], '')",
                    f"min(timestamp) FILTER (WHERE {value} <> '')")
        # Text timestamps compare in time order, and a shorter one (no fraction) sorts first: U+001F < '.'.
        key = f"min(CASE WHEN {value} <> '' THEN timestamp || char(31) || {value} END)"
        return (f"coalesce(substr({key}, instr({key}, char(31)) + 1), '')",
                f"min(CASE WHEN {value} <> '' THEN timestamp END)")


ROLLUP_TABLES = [(grain, model, period)
                 for grain, (_, hourly, daily) in ROLLUP_GRAINS.items()
                 for model, period in ((hourly, "hour"), (daily, "day"))]


def _rollup_sql(d: Dialect, src: str, model, period: str, columns: tuple[str, ...]) -> str:
    table = model._meta.db_table
    dims = [d.dim(c) for c in columns]
    perf = issubclass(model, RollupHistograms)
    sums = {**ROLLUP_SUMS, **PERF_SUMS} if perf else ROLLUP_SUMS
    maxes, counts = (ROLLUP_MAXES, ROLLUP_COUNTS) if perf else ({}, {})
    targets = [*sums, *maxes, *counts]
    values = ", ".join([*sums.values(), *(f"max({c})" for c in maxes.values()),
                        *(d.counts(c, cond) for c, cond in counts.values())])
    group = ", ".join(["org_id", d.floor(period), *dims])
    updates = ", ".join(
        [f"{c} = {table}.{c} + excluded.{c}" for c in sums]
        + [f"{c} = CASE WHEN {table}.{c} IS NULL OR excluded.{c} > {table}.{c} THEN excluded.{c} ELSE {table}.{c} END"
           for c in maxes]
        + [f"{c} = CASE WHEN excluded.{c} IS NULL THEN {table}.{c} ELSE llmo_counts_merge({table}.{c}, excluded.{c}) "
           f"END" for c in counts])
    return (f"INSERT INTO {table} (org_id, {period}, dims_hash, {', '.join(columns)}, {', '.join(targets)}) "
            f"SELECT org_id, {d.floor(period)}, {d.dims_hash(columns)}, {', '.join(dims)}, {values} "
            f"FROM {src} WHERE true GROUP BY {group} ORDER BY 2, 3 "
            f"ON CONFLICT (org_id, {period}, dims_hash) DO UPDATE SET {updates}")


def _runs_sql(d: Dialect, src: str) -> str:
    t = RunSummary._meta.db_table
    firsts, merges = [], []
    for column, value in (("customer_id", "coalesce(customer_id, '')"), ("agent", d.agent)):
        first, at = d.first(value)
        firsts += [first, at]
        at_col = f"{column.removesuffix('_id')}_at"
        newer = (f"excluded.{at_col} IS NOT NULL AND ({t}.{at_col} IS NULL OR excluded.{at_col} < {t}.{at_col} "
                 f"OR (excluded.{at_col} = {t}.{at_col} AND excluded.{column} < {t}.{column}))")
        merges += [f"{column} = CASE WHEN {newer} THEN excluded.{column} ELSE {t}.{column} END",
                   f"{at_col} = CASE WHEN {newer} THEN excluded.{at_col} ELSE {t}.{at_col} END"]
    least, greatest = ("LEAST", "GREATEST") if d.pg else ("MIN", "MAX")
    updates = ", ".join([f"{c} = {t}.{c} + excluded.{c}" for c in RUN_SUMS] + [
        f"started_at = {least}({t}.started_at, excluded.started_at)",
        f"ended_at = {greatest}({t}.ended_at, excluded.ended_at)", *merges])
    return (f"INSERT INTO {t} (org_id, run_id, started_at, ended_at, {', '.join(RUN_SUMS)}, "
            f"customer_id, customer_at, agent, agent_at) "
            f"SELECT org_id, run_id, min(timestamp), {d.run_end()}, "
            f"{', '.join(ROLLUP_SUMS[c] for c in RUN_SUMS)}, {', '.join(firsts)} "
            f"FROM {src} WHERE true GROUP BY org_id, run_id ORDER BY run_id "
            f"ON CONFLICT (org_id, run_id) DO UPDATE SET {updates}")


def _facets_sql(d: Dialect, src: str) -> str:
    customer = "coalesce(customer_id, '')"
    return (f"INSERT INTO {RunFacet._meta.db_table} (org_id, run_id, kind, value) "
            f"SELECT org_id, run_id, kind, value FROM ("
            f"SELECT org_id, run_id, 'section' AS kind, section_path AS value FROM {src} WHERE section_path <> '' "
            # agent '' = the run has a call without a section: the runs filter behind the Untracked row
            f"UNION SELECT org_id, run_id, 'agent', {d.agent} FROM {src} "
            f"UNION SELECT org_id, run_id, 'model', model FROM {src} WHERE model <> '' "
            f"UNION SELECT org_id, run_id, 'customer', {customer} FROM {src} WHERE {customer} <> '' "
            f"UNION SELECT org_id, run_id, 'status', status FROM {src} WHERE status <> 'ok'"
            f") f WHERE true ORDER BY kind, value, run_id "
            f"ON CONFLICT (org_id, kind, value, run_id) DO NOTHING")


def fold_statements(*, pg: bool, src: str, rollups: bool = True, runs: bool = True, facets: bool = True
                    ) -> list[tuple[str, str]]:
    """(name, statement) for each table the fold writes, reading the events of relation `src`."""
    d = Dialect(pg=pg)
    out = []
    if rollups:
        out += [(f"{grain}_{period}", _rollup_sql(d, src, model, period, ROLLUP_GRAINS[grain][0]))
                for grain, model, period in ROLLUP_TABLES]
    if runs:
        out.append(("run_rows", _runs_sql(d, src)))
    if facets:
        out.append(("facet_rows", _facets_sql(d, src)))
    return out


def fold_ctes(*, pg: bool, src: str, **parts: bool) -> str:
    """The fold as data-modifying CTEs (PostgreSQL), to follow a CTE named `src` in one statement."""
    return ",\n".join(f"{name} AS ({sql})" for name, sql in fold_statements(pg=pg, src=src, **parts))


def _after_ms(timestamp: str | None, latency_ms: float | None) -> str | None:
    if timestamp is None:
        return None
    return str(datetime.fromisoformat(timestamp) + timedelta(milliseconds=latency_ms or 0))


def sqlite_functions_register() -> None:
    connection.ensure_connection()
    connection.connection.create_function("llmo_after_ms", 2, _after_ms, deterministic=True)
    connection.connection.create_aggregate("llmo_counts_agg", 1, histograms.SqliteCounts)
    connection.connection.create_aggregate("llmo_counts_sum", 1, histograms.SqliteCountsSum)
    connection.connection.create_function("llmo_counts_merge", 2, histograms.sqlite_counts_merge, deterministic=True)


def fold(*, source_sql: str, params: list, rollups: bool = True, runs: bool = True, facets: bool = True) -> None:
    """Fold the events `source_sql` selects (its columns: SOURCE_COLUMNS) into the tables, adding to them."""
    pg = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if pg:
            ctes = fold_ctes(pg=True, src="src", rollups=rollups, runs=runs, facets=facets)
            cursor.execute(f"WITH src AS MATERIALIZED ({source_sql}),\n{ctes}\nSELECT 1", params)
            return
        sqlite_functions_register()
        cursor.execute("DROP TABLE IF EXISTS temp._fold_src")
        cursor.execute(f"CREATE TEMP TABLE _fold_src AS {source_sql}", params)
        for _, sql in fold_statements(pg=False, src="temp._fold_src", rollups=rollups, runs=runs, facets=facets):
            cursor.execute(sql)
        cursor.execute("DROP TABLE temp._fold_src")


def _events_sql(where: str) -> str:
    return f"SELECT {', '.join(SOURCE_COLUMNS)} FROM {TraceEvent._meta.db_table} WHERE {where}"


def fold_new_events(*, org_id: int, after_id: int) -> None:
    """SQLite ingestion: fold the org's events inserted with an id above `after_id` (ids only grow)."""
    fold(source_sql=_events_sql("org_id = %s AND id > %s"), params=[org_id, after_id])


def fold_ids_encode(ids: list[int]) -> bytes:
    """A fold batch's payload: its event ids as runs of consecutive ids, (first, last) 64-bit pairs. One INSERT's
    ids are mostly consecutive (a sequence), so a few runs, which PostgreSQL reads as index ranges; an id list
    costs it a probe per id and partition (5–50× the time, measured with bench/otlp_profile.py's events)."""
    runs: list[int] = []
    for event_id in sorted(ids):
        if runs and runs[-1] == event_id - 1:
            runs[-1] = event_id
        else:
            runs += [event_id, event_id]
    return array("q", runs).tobytes()


def fold_runs_decode(payload: bytes) -> list[tuple[int, int]]:
    values = array("q")
    values.frombytes(payload)
    return list(zip(values[0::2], values[1::2]))


def _runs_params(runs: list[tuple[int, int]]) -> list[list[int]]:
    """`runs` as the two arrays `unnest(%s::bigint[], %s::bigint[]) AS run (first, last)` reads."""
    return [[first for first, _ in runs], [last for _, last in runs]]


_RUNS = "unnest(%s::bigint[], %s::bigint[]) AS run (first, last)"


def fold_stored(*, org_id: int, runs: list[tuple[int, int]]) -> None:
    """PostgreSQL: fold stored events by id (the runs of fold batches), under the org's shared fold lock."""
    if not runs:
        return
    lock_org(org_id, exclusive=False)
    fold(source_sql=stored_source_sql(), params=[*_runs_params(runs), org_id])


def stored_source_sql() -> str:
    """The events of id runs (params: the runs' two arrays, then the org id), as `fold_stored` reads them.

    OFFSET 0 keeps the org's condition out of the events' scan, so each run is read by primary key whatever the
    statistics say. Joined with it, PostgreSQL without statistics of the partition (a new month's, autovacuum
    behind) read every event of the org in the partition for each fold: a cost that grew with the org
    (bench/fold_source.py)."""
    columns = ", ".join(SOURCE_COLUMNS)
    return (f"SELECT {columns} FROM {_RUNS} CROSS JOIN LATERAL (SELECT {columns} FROM {TraceEvent._meta.db_table} "
            f"WHERE id BETWEEN run.first AND run.last OFFSET 0) event WHERE org_id = %s")


def _unfolded_runs(org_id: int) -> list[tuple[int, int]]:
    """The id runs of the org's events stored but not folded yet: their fold batch (unprocessed, or quarantined
    until an operator retries it) counts them, so a refold must not. Read under the exclusive fold lock: a batch
    being folded holds the shared one, and a store creates its fold batch in the transaction that inserts the
    events. Empty on SQLite (only PostgreSQL stores fold batches)."""
    return [run for payload in RawBatch.objects.unscoped().filter(
        org_id=org_id, kind=RawBatch.Kind.FOLD, processed_at__isnull=True).values_list("payload", flat=True)
        for run in fold_runs_decode(bytes(payload))]


def _refold(*, where: str, params: list, unfolded: list[tuple[int, int]], **parts: bool) -> None:
    """Fold the org's events `where` selects, but those in the `unfolded` runs (their fold batch counts them)."""
    if unfolded:
        where = f"{where} AND NOT EXISTS (SELECT 1 FROM {_RUNS} WHERE id BETWEEN run.first AND run.last)"
        params = [*params, *_runs_params(unfolded)]
    fold(source_sql=_events_sql(where), params=params, **parts)


def lock_org(org_id: int, *, exclusive: bool) -> None:
    """PostgreSQL: ingestion folds under a shared lock per org, refolds under an exclusive one, so a refold
    never deletes and recomputes a range while a concurrent fold's additions are in flight."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        cursor.execute(f"SELECT {fn}(%s, %s)", [LOCK_NAMESPACE, org_id])


LOCK_NAMESPACE = 0x4C4C4D  # advisory lock key space of the fold ("LLM")


def _adapt(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def refold_days(*, org_id: int, days: list[datetime]) -> None:
    """Recompute the hourly and daily rollups of whole UTC days (00:00) from the events."""
    lock_org(org_id, exclusive=True)
    unfolded = _unfolded_runs(org_id)
    ranges = _ranges(sorted(set(days)))
    for start, end in ranges:
        with connection.cursor() as cursor:
            for _, model, period in ROLLUP_TABLES:
                cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE org_id = %s AND {period} >= %s "
                               f"AND {period} < %s", [org_id, _adapt(start), _adapt(end)])
        _refold(where="org_id = %s AND timestamp >= %s AND timestamp < %s",
                params=[org_id, _adapt(start), _adapt(end)], unfolded=unfolded, runs=False, facets=False)


def _ranges(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for day in days:
        if out and out[-1][1] == day:
            out[-1] = (out[-1][0], day + timedelta(days=1))
        else:
            out.append((day, day + timedelta(days=1)))
    return out


def refold_runs(*, org_id: int, run_ids: list[str], facets: bool = False, chunk: int = 500) -> None:
    """Recompute run summaries (and facets) of these runs from all their events."""
    lock_org(org_id, exclusive=True)
    unfolded = _unfolded_runs(org_id)
    run_ids = sorted(set(run_ids))
    for start in range(0, len(run_ids), chunk):
        part = run_ids[start:start + chunk]
        marks = ", ".join(["%s"] * len(part))
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {RunSummary._meta.db_table} WHERE org_id = %s AND run_id IN ({marks})",
                           [org_id, *part])
            if facets:
                cursor.execute(f"DELETE FROM {RunFacet._meta.db_table} WHERE org_id = %s AND run_id IN ({marks})",
                               [org_id, *part])
        _refold(where=f"org_id = %s AND run_id IN ({marks})", params=[org_id, *part], unfolded=unfolded,
                rollups=False, facets=facets)


def rollups_rebuild(*, org_id: int, since: datetime | None = None) -> None:
    """Recompute every rollup, run summary and facet of the org from its events (from `since`'s UTC day on;
    runs with an event from then on are recomputed whole)."""
    lock_org(org_id, exclusive=True)
    ev = TraceEvent.objects.unscoped().filter(org_id=org_id)
    if since is None:
        with connection.cursor() as cursor:
            for _, model, _period in ROLLUP_TABLES:
                cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE org_id = %s", [org_id])
            for model in (RunSummary, RunFacet):
                cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE org_id = %s", [org_id])
        _refold(where="org_id = %s", params=[org_id], unfolded=_unfolded_runs(org_id))
        return
    first = since.replace(hour=0, minute=0, second=0, microsecond=0)
    last = ev.order_by("-timestamp").values_list("timestamp", flat=True).first()
    if last is None:
        days = []
    else:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    with connection.cursor() as cursor:  # rollup rows past the last event (events since deleted)
        for _, model, period in ROLLUP_TABLES:
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE org_id = %s AND {period} >= %s",
                           [org_id, _adapt(first)])
    refold_days(org_id=org_id, days=days)
    run_ids = list(ev.filter(timestamp__gte=first).values_list("run_id", flat=True).distinct())
    refold_runs(org_id=org_id, run_ids=run_ids, facets=True)
