"""The read at the start of an OTLP fold (`rollups.fold_stored`): a fold batch's events by id, in an org that
already holds many, with and without PostgreSQL's statistics of the events' partition.

One fresh bench database (bench/ingest.py's setup) gets `--spans` of bench/otlp.py's spans through the real
request and worker code (`otlp_ingest`, then `batch_process` draining them as a backed-up worker does). Then
the source of a fold of the org's last N events (one id run, as one INSERT's ids are) is run under EXPLAIN
ANALYZE, as shipped (`rollups.stored_source_sql`: the id runs read by primary key, the org's condition applied
after) and as it was (the org's condition in the same scan). First without statistics (never analyzed: this
machine's PostgreSQL runs with autovacuum off, and a new month's partition has none anywhere), then after
ANALYZE. Medians of `--repeat` runs; PostgreSQL's own execution time and the buffers it read.

    .venv/bin/python bench/fold_source.py [--spans 105000] [--repeat 5]
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", default="llmo_fold_source")
    args = parser.parse_args()
    bench.in_process(args.db, lambda ingest_key: measure(args, ingest_key))


def measure(args, ingest_key: str) -> None:
    from django.db import connection

    from ingestion import rollups
    from ingestion.models import TraceEvent

    ingest_in_process(ingest_key, args.spans)
    table = TraceEvent._meta.db_table
    columns = ", ".join(rollups.SOURCE_COLUMNS)
    variants = {
        "shipped (by primary key)": rollups.stored_source_sql(),
        "before (org in the scan)": f"SELECT {columns} FROM {rollups._RUNS} JOIN {table} "
                                    f"ON id BETWEEN run.first AND run.last WHERE org_id = %s",
    }
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT org_id, count(*), max(id) FROM {table} GROUP BY org_id")
        org_id, events, last = cursor.fetchone()
    print(f"one org, {events:,} events in its partition")
    for stats in ("no statistics", "after ANALYZE"):
        if stats == "after ANALYZE":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {table}")
        for n in (100, 1000, 4000):
            for name, source in variants.items():
                times, buffers = [], []
                for _ in range(args.repeat):
                    with connection.cursor() as cursor:
                        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT count(*) FROM ({source}) s",
                                       [[last - n + 1], [last], org_id])
                        plan = "\n".join(row[0] for row in cursor.fetchall())
                    times.append(float(re.search(r"Execution Time: ([\d.]+) ms", plan).group(1)))
                    top = re.search(r"^\s+Buffers: shared hit=(\d+)", plan, re.M)  # the top node's buffers
                    buffers.append(int(top.group(1)))
                print(f"  {stats:14s} fold of {n:5,} events  {name:26s} {statistics.median(times):7.2f} ms  "
                      f"{statistics.median(buffers):8,.0f} buffers")


if __name__ == "__main__":
    main()
