"""The request's one write: a RawBatch INSERT, its payload stored two ways, with two column compressions.

In process, on a fresh PostgreSQL bench database: bench/ingest.py's 1,000-event batches (validated and encoded as
the request does) and bench/otlp.py's 512-span exports (decoded and mapped as the request does), each payload
INSERTed in its own transaction:

* `orm`: `RawBatch.objects.create` (Django's psycopg cursor binds client-side: the bytea is sent as an escaped
  hex literal inside the statement's text, which the server parses back);
* `store`: `RawBatch.store` (a server-side bound statement, the payload a binary parameter);

each with the payload column compressed by pglz (PostgreSQL's default) and by lz4 (migration 0015). Prints the
PostgreSQL backend's CPU (from /proc) and this process's CPU per native event and per OTLP LLM call, best of
--repeat.

    .venv/bin/python bench/payload_store.py [--events 20000] [--spans 42000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the database setup, the native batches and CPU reading
from otlp import make_otlp_batches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--spans", type=int, default=42_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db", default="llmo_payload_store")
    args = parser.parse_args()
    bench.in_process(args.db, lambda ingest_key: measure(args, ingest_key))


def measure(args, ingest_key: str) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.selectors import api_key_get_active
    from ingestion.models import RawBatch
    from ingestion.otlp import export_decode, span_record, spans_encode
    from ingestion.schema import batch_decode, events_encode, events_validate

    key = api_key_get_active(raw_key=ingest_key)
    now = timezone.now()
    native = []
    for body in bench.make_batches(args.events, 1000):
        typed, raw = batch_decode(gzip.decompress(body))
        accepted, _ = events_validate(typed=typed, raw=raw, now=now)
        native.append((RawBatch.Kind.EVENTS, events_encode(accepted)))
    bodies, calls = make_otlp_batches(args.spans, 512, steps=4)
    otlp = [(RawBatch.Kind.OTLP, spans_encode([span_record(s, now=now)[0] for s in export_decode(
        gzip.decompress(body), json_body=False)])) for body in bodies]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    def orm(kind: str, payload: bytes) -> None:
        RawBatch.objects.create(org_id=key.org_id, api_key_id=key.pk, kind=kind, payload=payload,
                                event_count=1, received_at=now)

    def store(kind: str, payload: bytes) -> None:
        RawBatch.store(org_id=key.org_id, api_key_id=key.pk, kind=kind, payload=payload, event_count=1,
                       received_at=now)

    def cpu(payloads, insert) -> tuple[float, float]:
        best = None
        for _ in range(args.repeat):
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE ingestion_rawbatch")
            pg, own = bench.cpu_ticks(backend) / bench.TICK, time.process_time()
            for kind, payload in payloads:
                with transaction.atomic():
                    insert(kind, payload)
            result = (bench.cpu_ticks(backend) / bench.TICK - pg, time.process_time() - own)
            best = result if best is None or sum(result) < sum(best) else best
        return best

    per_event = sum(len(p) for _, p in native) / args.events
    per_call = sum(len(p) for _, p in otlp) / calls
    print(f"native: {args.events:,} events in {len(native)} payloads, {per_event:.0f} B an event; otlp: {calls:,} calls "
          f"in {len(otlp)} payloads, {per_call:.0f} B a call")
    print(f"{'':22s} {'native µs an event':>24s} {'otlp µs an LLM call':>24s}")
    print(f"{'':22s} {'postgres':>11s} {'client':>12s} {'postgres':>11s} {'client':>12s}")
    for compression in ("pglz", "lz4"):
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE ingestion_rawbatch ALTER COLUMN payload SET COMPRESSION {compression}")
        for name, insert in (("orm", orm), ("store", store)):
            (n_pg, n_own), (o_pg, o_own) = cpu(native, insert), cpu(otlp, insert)
            print(f"{compression:5s} {name:16s} {n_pg / args.events * 1e6:11.1f} {n_own / args.events * 1e6:12.1f} "
                  f"{o_pg / calls * 1e6:11.1f} {o_own / calls * 1e6:12.1f}")


if __name__ == "__main__":
    main()
