"""The daily prune's raw-batch step on a day with nothing old enough to delete, and what an index would change.

In process, on a fresh PostgreSQL bench database: --batches processed raw batches received over the last 89 days
(emptied payloads, as processed batches are), then `retention.events_prune(now=…)` run --repeat times as it is,
then again with a partial index of the processed rows by arrival created for the comparison (not in the schema:
every processed batch would pay for it). Prints the wall time of each run and of the step's chunk query (it reads
one chunk when none is old enough), the buffers PostgreSQL read for it (EXPLAIN (ANALYZE, BUFFERS)), and the
index's size.

    .venv/bin/python bench/raw_batch_prune.py [--batches 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the database setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", default="llmo_raw_batch_prune")
    parser.add_argument("--plan", action="store_true", help="print the chunk query's plans")
    args = parser.parse_args()
    bench.in_process(args.db, lambda ingest_key: measure(args))


def measure(args) -> None:
    from django.db import connection
    from django.utils import timezone

    from ingestion import retention
    from ingestion.models import RawBatch

    now = timezone.now()
    table = RawBatch._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM accounts_organization LIMIT 1")
        org_id = cursor.fetchone()[0]
        # Spread over 89 days in arrival order, as the requests write them.
        cursor.execute(
            f"INSERT INTO {table} (org_id, kind, api_key_id, payload, event_count, received_at, processed_at, "
            f"attempts, last_error, failed_events) SELECT %s, 'events', 0, ''::bytea, 100, "
            f"%s - (89 * interval '1 day') * (1 - g::float8 / %s), "
            f"%s - (89 * interval '1 day') * (1 - g::float8 / %s) + interval '1 second', 1, '', 0 "
            f"FROM generate_series(1, %s) g", [org_id, now, args.batches, now, args.batches, args.batches])
        cursor.execute(f"VACUUM ANALYZE {table}")
    query = retention.raw_batches_past_keep(now=now)  # what events_prune deletes
    print(f"{args.batches:,} processed raw batches received in the last 89 days; nothing to delete")
    for label in ("as it is", "with an index"):
        if label == "with an index":
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE INDEX bench_processed_idx ON {table} (received_at) WHERE processed_at IS NOT NULL")
                cursor.execute("SELECT pg_relation_size('bench_processed_idx'), pg_table_size(%s)", [table])
                index_size, table_size = cursor.fetchone()
            print(f"the index: {index_size / 2**20:.1f} MB, the table {table_size / 2**20:.1f} MB")
        sql, params = query.values_list("pk", flat=True)[:retention.CHUNK].query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        if args.plan:
            print(plan)
        top = re.search(r"Buffers: shared ([^\n]*)", plan)  # the top node's: the whole query's
        buffers = sum(int(n) for n in re.findall(r"=(\d+)", top.group(1))) if top else 0
        chunk, prune = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            assert not list(query.values_list("pk", flat=True)[:retention.CHUNK])
            chunk.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert retention.events_prune(now=now).raw_batches_deleted == 0
            prune.append(time.perf_counter() - start)
        print(f"{label:28s} the chunk query {statistics.median(chunk) * 1e3:8.2f} ms, {buffers:,} buffers; the whole "
              f"events_prune {statistics.median(prune) * 1e3:8.2f} ms (medians of {args.repeat})")


if __name__ == "__main__":
    main()
