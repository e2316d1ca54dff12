"""A request's fixed CPU: gunicorn (-w 1) on a fresh PostgreSQL bench database, N one-span OTLP exports and N
one-event native batches posted one after the other; the gunicorn worker's CPU per request, from /proc. What a
request costs whatever it carries — the API key's lookup, the throttle, the batch's INSERT, the drain's queueing,
Django, DRF and gunicorn — against which bench/otlp_request.py gives the cost per span.

    .venv/bin/python bench/request_fixed_cost.py [--requests 300] [--spans 1] [--db llmo_request_fixed]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as bench  # noqa: E402 - the database setup and CPU reading
from otlp import make_otlp_batches  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--spans", type=int, default=1, help="spans per OTLP export")
    parser.add_argument("--db", default="llmo_request_fixed")
    args = parser.parse_args()
    ingest_key, _ = bench.database_prepare(args.db)
    env = bench.bench_env(args.db)
    port = bench.free_port()
    web = subprocess.Popen([str(Path(bench.PY).parent / "gunicorn"), "llmobserve_site.wsgi:application", "-w", "1",
                            "-b", f"127.0.0.1:{port}", "--log-level", "warning"], cwd=bench.ROOT, env=env)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/health")
        time.sleep(2)
        worker_pid = int(subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True, text=True).stdout.split()[0])
        warm, n = 20, args.requests
        otlp_bodies, _ = make_otlp_batches(max(args.spans, 6) * (n + warm), args.spans)
        native_bodies = bench.make_batches(n + warm, 1)
        session = requests.Session()
        auth = {"Authorization": f"Bearer {ingest_key}", "Content-Encoding": "gzip"}

        def measure(name: str, url: str, content_type: str, bodies: list[bytes], ok: int) -> None:
            def post(body: bytes) -> None:
                response = session.post(f"http://127.0.0.1:{port}{url}", data=body,
                                        headers={**auth, "Content-Type": content_type})
                if response.status_code != ok:
                    raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")
            for body in bodies[:warm]:
                post(body)
            before, start = bench.cpu_ticks(worker_pid), time.perf_counter()
            for body in bodies[warm:warm + n]:
                post(body)
            cpu_ms = (bench.cpu_ticks(worker_pid) - before) / bench.TICK / n * 1e3
            print(f"{name:28s} {cpu_ms:6.2f} ms of gunicorn CPU a request, {(time.perf_counter() - start) / n * 1e3:6.2f} "
                  f"ms wall")
        for _ in range(2):
            measure(f"OTLP, {args.spans}-span export", "/v1/otlp/v1/traces", "application/x-protobuf", otlp_bodies,
                    200)
            measure("native, 1-event batch", "/v1/events", "application/json", native_bodies, 202)
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait()
        bench.database_drop(args.db)


if __name__ == "__main__":
    main()
