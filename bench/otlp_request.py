"""The OTLP request's CPU per span, by stage, in one process (no server, no database).

The spans of bench/otlp.py (gzip protobuf exports of 512): gunzip, protobuf parse, decode (parse + the
kept attributes of every span), map (`span_record` of the decoded spans), records (`export_records`: decode and map
as the request does, the usual spans in C when `_otlp_upb` is built), encode (the RawBatch payload). The request's
total is gunzip + records + encode. Best of --repeat.
Run it on two checkouts back to back to compare; the load average is printed beside the figures.

    .venv/bin/python bench/otlp_request.py [--spans 12288] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=12288)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    import django

    django.setup()
    from django.utils import timezone
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from ingestion.otlp import DECODER, export_decode, export_records, span_record, spans_encode
    from otlp import make_otlp_batches

    bodies, _ = make_otlp_batches(args.spans, 512)
    raw = [gzip.decompress(b) for b in bodies]
    decoded = [export_decode(b, json_body=False) for b in raw]
    now = timezone.now()
    records = [[span_record(s, now=now)[0] for s in spans] for spans in decoded]
    stages = {
        "gunzip": lambda: [gzip.decompress(b) for b in bodies],
        "protobuf parse": lambda: [ExportTraceServiceRequest.FromString(b) for b in raw],
        "decode (parse + kept attributes)": lambda: [export_decode(b, json_body=False) for b in raw],
        "map (span_record)": lambda: [[span_record(s, now=now) for s in spans] for spans in decoded],
        "records (export_records)": lambda: [list(export_records(b, json_body=False, now=now)) for b in raw],
        "encode (payload)": lambda: [spans_encode(r) for r in records],
    }
    print(f"{ROOT}: {args.spans:,} spans, decoder {DECODER}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    total = 0.0
    for name, run in stages.items():
        best = min(_timed(run) for _ in range(args.repeat))
        if name in ("gunzip", "records (export_records)", "encode (payload)"):
            total += best
        print(f"  {name:34s} {best / args.spans * 1e6:7.2f} µs/span")
    print(f"  {'request total (gunzip+records+encode)':34s} {total / args.spans * 1e6:7.2f} µs/span")


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
