"""Where an OTLP span's worker time goes, in process, on PostgreSQL (one database, no servers).

The spans of bench/otlp.py are stored through `otlp_ingest` (the request's write, committed), then processed
as a backed-up worker drains them: `batch_process` of the oldest pending batch, which takes its group along.
For the request's write and for the worker, per LLM call: wall time, this process's CPU, the PostgreSQL
backend's CPU (from /proc) and the WAL written; the worker's statements by total time; with --cprofile, the
worker's Python profile (CPU time, not waits); with --timers, the wall time of the resolution under the org's
lock (`_spans_process`) and of the functions it spends it in, and of the fold after it (`fold_stored`), per call.

    .venv/bin/python bench/otlp_profile.py [--spans 36000] [--group 15000] [--steps 1] [--cprofile] [--timers]
                                           [--db llmo_otlp14_profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the database setup and CPU reading
from otlp import make_otlp_batches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=36_000)
    parser.add_argument("--group", type=int, default=0, help="spans per drained group (default: the worker's)")
    parser.add_argument("--steps", type=int, default=1, help="agent steps per trace, 2 calls each (bench/otlp.py's)")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--timers", action="store_true", help="wall time per call of the resolution's parts")
    parser.add_argument("--db", default="llmo_otlp14_profile")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--stages", action="store_true", help="the events' insert and each fold statement timed "
                                                                 "apart (as bench/ingest_profile.py does)")
    parser.add_argument("--sql", action="append", default=[], help="run this first (A/B of a schema change)")
    args = parser.parse_args()
    bench.in_process(args.db, lambda ingest_key: profile(args, ingest_key), keep=args.keep)


class Meter:
    """Wall, own CPU, the backend's CPU and WAL between start() and stop(), summed over calls."""

    def __init__(self, connection):
        self.connection = connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            self.backend = cursor.fetchone()[0]
        self.totals = defaultdict(float)

    def _now(self) -> tuple[float, float, float, int]:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_insert_lsn() - '0/0'")
            lsn = int(cursor.fetchone()[0])
        return time.perf_counter(), time.process_time(), bench.cpu_ticks(self.backend) / bench.TICK, lsn

    def run(self, name: str, fn):
        before = self._now()
        out = fn()
        after = self._now()
        for key, a, b in zip(("wall", "cpu", "pg", "wal"), after, before):
            self.totals[f"{name} {key}"] += a - b
        return out


def profile(args, ingest_key: str) -> None:
    from django.db import connection, transaction

    from accounts.selectors import api_key_get_active
    from ingestion import services
    from ingestion.models import RawBatch
    from ingestion.otlp_services import otlp_ingest

    if args.group:
        services.COALESCE_MAX_SPANS = args.group
    if args.stages:
        from ingestion import rollups
        store_pg = services._store_pg
        services._store_pg = lambda rows, *, fold=True: _store_pg_staged(rows) if fold else store_pg(rows, fold=False)
        rollups.fold = _fold_staged
    for sql in args.sql:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    bodies, calls = make_otlp_batches(args.spans, 512, steps=args.steps)
    key = api_key_get_active(raw_key=ingest_key)
    from ingestion.pricing import price_book_get

    price_book_get()  # loaded once per worker process: not a cost of these spans
    meter = Meter(connection)

    def ingest_all():
        for body in bodies:
            with transaction.atomic():
                otlp_ingest(api_key=key, body=gzip.decompress(body), json_body=False)
    meter.run("request write", ingest_all)

    sql_time: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])

    def wrapper(execute, sql, params, many, context):
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = sql_time[" ".join(sql.split())[:110]]
            entry[0] += time.perf_counter() - t
            entry[1] += 1

    profiler = cProfile.Profile(time.process_time) if args.cprofile else None  # CPU, not waits
    groups = 0

    def drain():
        nonlocal groups
        while True:
            first = RawBatch.objects.unscoped().filter(processed_at__isnull=True).order_by("pk").first()
            if first is None:
                return
            groups += 1
            if profiler:
                profiler.enable()
            services.batch_process(batch_id=first.pk)
            if profiler:
                profiler.disable()
    commit = connection._commit

    def sql_entry(name: str):
        def record(secs: float) -> None:
            entry = sql_time[name]
            entry[0] += secs
            entry[1] += 1
        return record
    connection._commit = _timed(commit, sql_entry("COMMIT"))
    from ingestion import otlp_services

    otlp_services._spans_insert = _timed(otlp_services._spans_insert,
                                         sql_entry("_spans_insert (COPY ingestion_otlpspan)"))
    otlp_services._hierarchy_write = _timed(otlp_services._hierarchy_write,
                                            sql_entry("_hierarchy_write (COPY ingestion_otlptrace)"))
    timers = _timers_install() if args.timers else {}
    with connection.execute_wrapper(wrapper):
        meter.run("worker", drain)
    connection._commit = commit
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ingestion_traceevent")
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE is_call), pg_total_relation_size('ingestion_otlpspan')"
                       " FROM ingestion_otlpspan")
        span_rows, call_rows, span_bytes = cursor.fetchone()
        cursor.execute("SELECT count(*), pg_total_relation_size('ingestion_otlptrace') FROM ingestion_otlptrace")
        trace_rows, trace_bytes = cursor.fetchone()
    print(f"{args.spans:,} spans, {calls:,} calls in {len(bodies)} exports; {groups} groups "
          f"(≤ {services.COALESCE_MAX_SPANS:,} spans); stored {stored:,} events; otlpspan rows {span_rows:,} "
          f"({call_rows:,} calls), {span_bytes / 1e6:.1f} MB; otlptrace rows {trace_rows:,}, {trace_bytes / 1e6:.1f} MB; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name in ("request write", "worker"):
        t = meter.totals
        print(f"  {name:14s} µs per call: wall {t[name + ' wall'] / calls * 1e6:6.1f}   "
              f"python {t[name + ' cpu'] / calls * 1e6:6.1f}   postgres {t[name + ' pg'] / calls * 1e6:6.1f}   "
              f"WAL {t[name + ' wal'] / calls:6.0f} B")
    print("  worker statements by total time (ms, count):")
    for sql, (secs, n) in sorted(sql_time.items(), key=lambda kv: -kv[1][0])[:14]:
        print(f"    {secs * 1000:8.1f} {n:5d}  {sql}")
    if timers:
        print("  worker wall time by function (µs per call; nested: `_spans_process` holds the org's lock and "
              "contains the others but `fold_stored`):")
        for name, secs in sorted(timers.items(), key=lambda kv: -kv[1]):
            print(f"    {secs / calls * 1e6:8.1f}  {name}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats("ingestion|psycopg|msgspec", 45)


def _timers_install() -> dict[str, float]:
    """Wrap the worker's OTLP stages (looked up by module at call time) to sum their wall time; returns the sums."""
    from ingestion import otlp_services, rollups, services

    stages = {otlp_services: ("_spans_process", "_spans_of", "_resolve", "_one_per_response", "_response_times_adopt",
                              "_hierarchy_write", "_spans_insert", "_mark"),
              services: ("_store_group", "_event_rows", "_store_pg"), rollups: ("fold_stored",)}
    totals = {name: 0.0 for names in stages.values() for name in names}

    def total(name: str):
        def record(secs: float) -> None:
            totals[name] += secs
        return record
    for module, names in stages.items():
        for name in names:
            setattr(module, name, _timed(getattr(module, name), total(name)))
    return totals


def _timed(fn, record):
    """`fn`, calling `record(seconds)` with the wall time of each call."""
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record(time.perf_counter() - start)
    return timed


def _store_pg_staged(rows: list[tuple]) -> int:
    """services._store_pg with the insert and each fold statement as separate statements (the wrapper times each)."""
    from django.db import connection

    from ingestion import rollups, services
    from ingestion.models import TraceEvent

    ev, cols = TraceEvent._meta.db_table, ", ".join(services._EVENT_COLUMNS)
    src_cols = ", ".join(rollups.SOURCE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS _events_in ON COMMIT DELETE ROWS AS "
                       f"SELECT {cols} FROM {ev} WITH NO DATA")
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS _ins ON COMMIT DELETE ROWS AS "
                       f"SELECT {src_cols} FROM {ev} WITH NO DATA")
        cursor.execute("DELETE FROM _events_in")
        cursor.execute("DELETE FROM _ins")
        with cursor.cursor.copy(f"COPY _events_in ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"WITH ins AS (INSERT INTO {ev} ({cols}) SELECT {cols} FROM _events_in ON CONFLICT "
                       f'(org_id, event_id, "timestamp") DO NOTHING RETURNING {src_cols}) '
                       f"INSERT INTO _ins SELECT * FROM ins")
        inserted = cursor.rowcount
        for name, sql in rollups.fold_statements(pg=True, src="_ins"):
            cursor.execute(f"/* fold {name} */ {sql}")
    return inserted


def _fold_staged(*, source_sql: str, params: list, **parts: bool) -> None:
    """rollups.fold (of a fold batch's events) with each fold statement apart, over a temp table of the source."""
    from django.db import connection

    from ingestion import rollups

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS _fold_src")
        cursor.execute(f"/* fold source */ CREATE TEMP TABLE _fold_src ON COMMIT DROP AS {source_sql}", params)
        for name, sql in rollups.fold_statements(pg=True, src="_fold_src", **parts):
            cursor.execute(f"/* fold {name} */ {sql}")


if __name__ == "__main__":
    main()
