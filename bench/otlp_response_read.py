"""The OTLP worker's read of a response's stored event (`_response_times_adopt`) against a year of monthly
partitions: bounded to a day around the group's spans (as built) and unbounded (as before), on PostgreSQL.

A year of events (--per-month in each of 12 monthly partitions), then the read of --ids response ids that are
not stored (a group of new calls, the usual case), best of --repeat.

    .venv/bin/python bench/otlp_response_read.py [--per-month 200000] [--ids 4000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the database setup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-month", type=int, default=200_000)
    parser.add_argument("--ids", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", default="llmo_otlp_response_read")
    args = parser.parse_args()
    bench.in_process(args.db, lambda _key: run(args))


def run(args) -> None:
    from datetime import datetime, timedelta, timezone

    from django.db import connection

    from ingestion.models import TraceEvent
    from ingestion.otlp_services import RESPONSE_SPANS_WITHIN, _among
    from ingestion.partitions import month_add, month_start, partition_create

    now = datetime.now(timezone.utc)
    first = month_add(month_start(now), -11)
    seconds = int((now - first).total_seconds())
    rows = args.per_month * 12
    with connection.cursor() as cursor:
        for i in range(12):
            partition_create(cursor, month_add(first, i))
        cursor.execute(
            "INSERT INTO ingestion_traceevent (event_id, run_id, section, section_path, span_type, provider, model, "
            "endpoint, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, status, "
            "stream, timestamp, cost_source, metadata, api_key_id, received_at, org_id, source, price_source, "
            "price_variant, processing, service_tier, speed, usage) "
            "SELECT 'resp:' || md5(g::text), 'run' || (g / 8), '', '', 'llm', 'openai', 'gpt-4o', '', 10, 10, 0, 0, 0, "
            "'ok', false, %s + make_interval(secs => g * %s), 'computed', '{}', 1, now(), 1, 'otlp', '', '', '', '', "
            "'', '{}' FROM generate_series(1, %s) g", [first, seconds / rows, rows])
        cursor.execute("ANALYZE ingestion_traceevent")
    ids = sorted(f"resp:new-{i}" for i in range(args.ids))
    at = now - timedelta(minutes=5)

    def read(bounded: bool) -> int:
        bound = {"timestamp__gte": at - RESPONSE_SPANS_WITHIN, "timestamp__lte": at + RESPONSE_SPANS_WITHIN} \
            if bounded else {}
        return len([row for among in _among("event_id", ids) for row in TraceEvent.objects.unscoped().filter(
            among, org_id=1, **bound).order_by("timestamp").values_list("event_id", "timestamp")])

    print(f"{rows:,} events in 12 monthly partitions; the read of {args.ids:,} response ids, best of {args.repeat}")
    for name, bounded in (("bounded to a day (built)", True), ("unbounded (before)", False)):
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            read(bounded)
            best = min(best, time.perf_counter() - start)
        print(f"  {name:26s} {best * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
