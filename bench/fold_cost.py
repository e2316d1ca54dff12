"""What the latency and error columns cost the fold: PostgreSQL CPU per event, with and without them.

Issue 15 asks that ingest be at most 10% slower with the histograms than without. End to end
(`bench/ingest.py`) that difference is smaller than the run-to-run noise of a shared 2-core machine, so this
measures the part that changes — the fold's statements — directly, in one process:

1. a fresh bench database (bench/ingest.py's setup) gets `--warm` groups of 1,000-event batches through the
   real request and worker code, so the rollup rows exist and the fold below updates them, as in steady state;
2. for each of `--groups` further groups: the events are inserted (`INSERT … RETURNING` into a temp table,
   as the worker does), then each variant's fold statements run in turn, each rolled back to a savepoint;
   `--rounds` times, the variants interleaved;
3. the PostgreSQL backend's own CPU time (`/proc/<pid>/schedstat`, in ns: contention changes it far less
   than wall time) is divided by the events folded. Medians are printed.

Variants: `shipped` (the fold as it is), `no histograms` (no latency/TTFT histogram folded), and `no latency
or error columns` (none of `rollups.PERF_SUMS`, `ROLLUP_MAXES`, `ROLLUP_COUNTS` folded: the ingest cost as it
was before issue 15 added them). Run it where PostgreSQL is local (it reads /proc).

    .venv/bin/python bench/fold_cost.py [--warm 6] [--groups 2] [--rounds 9]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the bench's events and database setup

GROUP = 5  # batches of 1,000 events per drained group


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm", type=int, default=6, help="groups stored first (the rollup rows to update)")
    parser.add_argument("--groups", type=int, default=2, help="groups whose fold is measured")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--db", default="llmo_fold_cost")
    args = parser.parse_args()
    bench.in_process(args.db, lambda ingest_key: measure(args, ingest_key))


@contextmanager
def variant(name: str):
    """The fold's definitions as `name` has them, for the statements generated inside."""
    from ingestion import rollups

    saved = dict(rollups.PERF_SUMS), dict(rollups.ROLLUP_MAXES), dict(rollups.ROLLUP_COUNTS)
    if name == "no histograms":
        for column in ("latency_hist", "ttft_hist"):
            rollups.ROLLUP_COUNTS.pop(column)
    elif name == "no latency or error columns":
        rollups.PERF_SUMS.update(dict.fromkeys(rollups.PERF_SUMS, "0"))  # NOT NULL columns: a constant 0
        rollups.ROLLUP_MAXES.clear()
        rollups.ROLLUP_COUNTS.clear()
    try:
        yield
    finally:
        for current, old in zip((rollups.PERF_SUMS, rollups.ROLLUP_MAXES, rollups.ROLLUP_COUNTS), saved):
            current.clear()
            current.update(old)


VARIANTS = ("shipped", "no histograms", "no latency or error columns")


def measure(args, ingest_key: str) -> None:
    from django.db import connection, transaction

    from accounts.selectors import api_key_get_active
    from ingestion import rollups, services
    from ingestion.models import RawBatch, TraceEvent
    from ingestion.pricing import price_book_get
    from ingestion.schema import batch_decode, events_decode, events_validate

    n_batches = (args.warm + args.groups) * GROUP
    print(f"storing {n_batches:,} batches of 1,000 events …", flush=True)
    key = api_key_get_active(raw_key=ingest_key)
    bodies = bench.make_batches(n_batches * 1000, 1000)

    def store(part: list[bytes]) -> None:
        for body in part:
            accepted, rejected = events_validate(typed=batch_decode(gzip.decompress(body))[0], raw=[])
            with transaction.atomic():
                services.events_ingest(api_key=key, events=accepted, rejected=rejected)

    def pending() -> list[RawBatch]:
        return list(RawBatch.objects.unscoped().filter(processed_at__isnull=True).order_by("pk"))

    store(bodies[:args.warm * GROUP])
    while batches := pending():  # the warm batches, folded for real (a drain may take several groups' worth)
        services.batch_process(batch_id=batches[0].pk)
    store(bodies[args.warm * GROUP:])
    left = pending()
    measured = [left[g * GROUP:(g + 1) * GROUP] for g in range(args.groups)]

    statements = {}
    for name in VARIANTS:
        with variant(name):
            statements[name] = [sql for _, sql in rollups.fold_statements(pg=True, src="_fc_src")]
    book = price_book_get()
    ev, cols = TraceEvent._meta.db_table, ", ".join(services._EVENT_COLUMNS)
    src_cols = ", ".join(rollups.SOURCE_COLUMNS)
    pid = _one(connection, "SELECT pg_backend_pid()")
    cpu_us: dict[str, list[float]] = {name: [] for name in VARIANTS}

    def backend_cpu_ns() -> int:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])

    for group_rows in measured:
        with transaction.atomic():
            services._pg_session_setup()
            group = [(raw, events_decode(bytes(raw.payload))) for raw in group_rows]
            rows, _ = services._event_rows(group_rows[0].org_id, book, group)
            _exec(connection, f"CREATE TEMP TABLE _fc_in ON COMMIT DROP AS SELECT {cols} FROM {ev} WITH NO DATA")
            _exec(connection, f"CREATE TEMP TABLE _fc_src ON COMMIT DROP AS SELECT {src_cols} FROM {ev} WITH NO DATA")
            with connection.cursor() as cursor, cursor.cursor.copy(f"COPY _fc_in ({cols}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
            _exec(connection, f"WITH ins AS (INSERT INTO {ev} ({cols}) SELECT {cols} FROM _fc_in "
                              f'ON CONFLICT (org_id, event_id, "timestamp") DO NOTHING RETURNING {src_cols}) '
                              f"INSERT INTO _fc_src SELECT * FROM ins")
            n = _one(connection, "SELECT count(*) FROM _fc_src")
            for _ in range(args.rounds):
                for name in VARIANTS:
                    _exec(connection, "SAVEPOINT fold")
                    before = backend_cpu_ns()
                    for sql in statements[name]:
                        _exec(connection, sql)
                    cpu_us[name].append((backend_cpu_ns() - before) / 1000 / n)
                    _exec(connection, "ROLLBACK TO SAVEPOINT fold")
            transaction.set_rollback(True)

    print(f"the fold's PostgreSQL CPU per event, median of {args.rounds} × {args.groups} groups of {GROUP * 1000:,} "
          f"events over {args.warm * GROUP * 1000:,} stored; load average {os.getloadavg()[0]:.2f}")
    base = statistics.median(cpu_us[VARIANTS[-1]])
    for name in VARIANTS:
        value = statistics.median(cpu_us[name])
        print(f"  {name:<30} {value:7.1f} µs/event   (+{value - base:.1f} over the last)")


def _exec(connection, sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _one(connection, sql: str):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


if __name__ == "__main__":
    main()
