"""The fold's PostgreSQL CPU per event by the number of events it folds at once, on bench/otlp.py's calls.

Why an OTLP call costs PostgreSQL more than a native event in bench/otlp.py: both are folded by the same
statements (ingestion.rollups), but a fold's cost per event falls with its size — the rollup rows it updates
(an hour's or a day's sums per section, model, customer) are shared by more of its events — and OTLP folds one
resolution group at a time (`services.COALESCE_MAX_SPANS` spans: about 5,600 calls of `--steps 4` traces),
where a native group folds up to `LLMOBSERVE_INGEST_GROUP_EVENTS` events (20,000).

One fresh bench database (bench/ingest.py's setup) gets `--spans` of bench/otlp.py's spans (`--steps 4`) through
the real request and worker code (`otlp_ingest`, then `batch_process` draining them as a backed-up worker does), so
every rollup row exists, as in steady state. Then, `--repeat` times and the sizes interleaved, the org's events of
one id run of each size are folded again (`rollups.fold_stored`, as a fold batch is) in a transaction that is
rolled back; the PostgreSQL backend's own CPU (`/proc/<pid>/schedstat`) is divided by the events folded. Medians.
With --statements, each statement's execution time per event (EXPLAIN ANALYZE of one fold of each size).

    .venv/bin/python bench/fold_group_size.py [--spans 105000] [--sizes 1000,2000,5000,10000,20000,40000]
                                              [--repeat 5] [--statements]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the database setup
from otlp import ingest_in_process  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=105_000)
    parser.add_argument("--sizes", default="1000,2000,5000,10000,20000,40000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--statements", action="store_true", help="each fold statement's time per event too")
    parser.add_argument("--db", default="llmo_fold_group_size")
    args = parser.parse_args()
    bench.in_process(args.db, lambda ingest_key: measure(args, ingest_key))


def measure(args, ingest_key: str) -> None:
    from django.conf import settings
    from django.db import connection, transaction

    from ingestion import rollups, services
    from ingestion.models import TraceEvent

    calls = ingest_in_process(ingest_key, args.spans)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT org_id, count(*), min(id), max(id) FROM {TraceEvent._meta.db_table} GROUP BY org_id")
        org_id, events, first_id, last_id = cursor.fetchone()
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    sizes = [n for n in (int(s) for s in args.sizes.split(",")) if n <= events]
    print(f"one org, {events:,} events ({args.spans:,} spans, {calls:,} calls); an OTLP fold holds about "
          f"{services.COALESCE_MAX_SPANS * calls // args.spans:,} calls, a native one up to "
          f"{settings.LLMOBSERVE_INGEST_GROUP_EVENTS:,} events; load average {os.getloadavg()[0]:.2f}", flush=True)

    def backend_cpu_ns() -> int:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])

    def run_of(n: int, turn: int) -> tuple[int, int]:
        """One id run of n events, a different one each turn (the same rows folded again would find them hot)."""
        start = first_id + (turn * 7919) % (last_id - first_id + 2 - n)
        return start, start + n - 1

    cpu: dict[int, list[float]] = {n: [] for n in sizes}
    for turn in range(args.repeat):
        for n in sizes:
            with transaction.atomic():
                services._pg_session_setup()
                start, end = run_of(n, turn)
                before = backend_cpu_ns()
                rollups.fold_stored(org_id=org_id, runs=[(start, end)])
                cpu[n].append((backend_cpu_ns() - before) / 1000 / n)
                transaction.set_rollback(True)
    print(f"fold of N events: PostgreSQL CPU per event (median of {args.repeat})")
    for n in sizes:
        print(f"  {n:>7,} events  {statistics.median(cpu[n]):6.1f} µs/event")
    if not args.statements:
        return
    names = [name for name, _ in rollups.fold_statements(pg=True, src="src")]
    print("each statement's execution time per event (µs), one fold of each size (EXPLAIN ANALYZE):")
    print("  " + f"{'events':>7}  " + " ".join(f"{name[:13]:>13}" for name in names))
    source = rollups.stored_source_sql()
    for n in sizes:
        start, end = run_of(n, 0)
        sql = (f"EXPLAIN (ANALYZE, TIMING ON) WITH src AS MATERIALIZED ({source}),\n"
               f"{rollups.fold_ctes(pg=True, src='src')}\nSELECT 1")
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [[start], [end], org_id])
                plan = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
        # each CTE's Insert node, in statement order: its total time
        times = [float(t) for t in re.findall(r"Insert on \S+ .*?actual time=[\d.]+\.\.([\d.]+)", plan)]
        print("  " + f"{n:>7,}  " + " ".join(f"{t * 1000 / n:13.1f}" for t in times))


if __name__ == "__main__":
    main()
