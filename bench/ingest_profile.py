"""Where a 1,000-event batch's milliseconds go, stage by stage, on PostgreSQL (in process, one database).

Request side: the API key lookup, gzip inflate, msgspec decode + validation, the RawBatch insert (committed
durably), and the whole request through Django's test client. Worker side, over a drained group of batches
(LLMOBSERVE_INGEST_GROUP_EVENTS / 1,000: the size a backed-up queue gives): decode, pricing, the COPY into
the temp table, the events INSERT, each fold statement (rollup grains hourly/daily, run summaries, facets),
with the WAL each writes; then the events INSERT again without each secondary index (rolled back), and the
whole `batch_process` of real pending groups.

    .venv/bin/python bench/ingest_profile.py [--groups 3] [--customers 50 --agents 5 --models 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the bench's events and database setup

GROUP = int(os.environ.get("LLMOBSERVE_INGEST_GROUP_EVENTS", "20000")) // 1000  # batches per drained group


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=3, help="groups of 5 batches timed per measurement")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--db", default="llmo_ingestfast_profile")
    args = parser.parse_args()
    bench.in_process(args.db, lambda ingest_key: profile(args, ingest_key))


def profile(args, ingest_key: str) -> None:
    from django.conf import settings
    from django.db import connection, transaction
    from django.test import Client

    from accounts.selectors import api_key_get_active
    from accounts.services import api_key_touch
    from ingestion import rollups, services
    from ingestion.api import _decompressed
    from ingestion.models import RawBatch, TraceEvent
    from ingestion.pricing import price_book_get
    from ingestion.schema import batch_decode, events_decode, events_validate

    n_batches = args.groups * GROUP * 3
    bodies = bench.make_batches(n_batches * 1000, 1000, customers=args.customers, agents=args.agents,
                                models=args.models)
    limit = settings.LLMOBSERVE_MAX_BODY_BYTES
    ms: dict[str, list[float]] = {}

    def timed(name: str, fn, per: int = 1):
        t = time.perf_counter()
        out = fn()
        ms.setdefault(name, []).append((time.perf_counter() - t) * 1000 / per)
        return out

    # --- request side: one batch at a time, committed like the view's request ---
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {ingest_key}", "HTTP_CONTENT_ENCODING": "gzip", "HTTP_HOST": "127.0.0.1"}
    for i, body in enumerate(bodies):
        if i % 2:
            timed("request: whole POST (Django test client)", lambda: client.post(
                "/v1/events", data=body, content_type="application/json", **headers))
            continue
        key = timed("request: API key lookup + touch", lambda: (k := api_key_get_active(raw_key=ingest_key),
                                                                api_key_touch(api_key=k))[0])
        raw = timed("request: gzip inflate", lambda: _decompressed(body, limit))
        accepted, rejected = timed("request: msgspec decode + validate", lambda: events_validate(
            typed=batch_decode(raw)[0], raw=[]))

        def insert():
            with transaction.atomic():
                return services.events_ingest(api_key=key, events=accepted, rejected=rejected)
        timed("request: RawBatch insert (commit)", insert)

    # --- worker side, stage by stage, in rolled-back transactions ---
    book = price_book_get()
    ev, cols = TraceEvent._meta.db_table, ", ".join(services._EVENT_COLUMNS)
    src_cols = ", ".join(rollups.SOURCE_COLUMNS)
    statements = rollups.fold_statements(pg=True, src="_ins")
    indexes = [name for (name,) in _rows(connection, "SELECT indexname FROM pg_indexes WHERE tablename = %s "
                                                     "AND indexname NOT LIKE '%%pkey' AND indexdef NOT LIKE "
                                                     "'%%UNIQUE%%'", [ev])]
    wal: dict[str, list[int]] = {}
    pending = list(RawBatch.objects.unscoped().filter(processed_at__isnull=True).order_by("pk"))

    def lsn() -> int:
        return _rows(connection, "SELECT pg_current_wal_insert_lsn() - '0/0'", [])[0][0]

    def stage(name: str, sql: str, params=()):
        before = lsn()
        timed(name, lambda: _exec(connection, sql, params), per=GROUP)
        wal.setdefault(name, []).append((lsn() - before) / GROUP)

    for g in range(args.groups):
        group_rows = pending[g * GROUP:(g + 1) * GROUP]
        for without in [None, *indexes]:
            with transaction.atomic():
                services._pg_session_setup()
                if without:
                    _exec(connection, f"DROP INDEX {without}")
                group = timed("worker: decode (msgspec)" if not without else "_", lambda: [
                    (raw, events_decode(bytes(raw.payload))) for raw in group_rows], per=GROUP)
                rows, _ = timed("worker: price + build rows" if not without else "_",
                                lambda: services._event_rows(group_rows[0].org_id, book, group), per=GROUP)
                _exec(connection, f"CREATE TEMP TABLE IF NOT EXISTS _events_in ON COMMIT DELETE ROWS AS "
                                  f"SELECT {cols} FROM {ev} WITH NO DATA")
                _exec(connection, f"CREATE TEMP TABLE IF NOT EXISTS _ins ON COMMIT DELETE ROWS AS "
                                  f"SELECT {src_cols} FROM {ev} WITH NO DATA")

                def copy():
                    with connection.cursor() as cursor, cursor.cursor.copy(
                            f"COPY _events_in ({cols}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                timed("worker: COPY into the temp table" if not without else "_", copy, per=GROUP)
                name = "PG: events INSERT … RETURNING" + (f" without {without}" if without else "")
                stage(name, f"WITH ins AS (INSERT INTO {ev} ({cols}) SELECT {cols} FROM _events_in "
                            f'ON CONFLICT (org_id, event_id, "timestamp") DO NOTHING RETURNING {src_cols}) '
                            f"INSERT INTO _ins SELECT * FROM ins")
                if not without:
                    for fold_name, sql in statements:
                        stage(f"PG: fold {fold_name}", sql)
                transaction.set_rollback(True)

    # --- the whole worker: batch_process over the remaining pending batches, committed ---
    while True:
        first = RawBatch.objects.unscoped().filter(processed_at__isnull=True).order_by("pk").first()
        if first is None:
            break
        events = timed("worker: whole batch_process (5-batch group, committed)",
                       lambda: services.batch_process(batch_id=first.pk), per=GROUP)
        assert events == GROUP * 1000, events
    print(f"ms per 1,000-event batch (median of {args.groups}+ samples; groups of {GROUP} batches on the worker); "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, values in ms.items():
        if name == "_":
            continue
        extra = f"   WAL {statistics.median(wal[name]) / 1024:,.0f} KiB" if name in wal else ""
        print(f"  {name:<60} {statistics.median(values):7.2f}{extra}")


def _exec(connection, sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _rows(connection, sql: str, params) -> list:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


if __name__ == "__main__":
    main()
