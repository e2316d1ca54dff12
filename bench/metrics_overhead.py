"""What the Prometheus instrumentation costs on the ingest path, in single-process and multiprocess mode.

Times the calls the code makes: per ingest request (`ingest_request_observe` + `events_counted`), and per
processed group of 5,000 new events (`events_processed`: one counter increment and one lag observation per
event), plus a /metrics exposition with the files of 4 processes. Each mode runs in a fresh interpreter
(prometheus-client picks its value class at import, from PROMETHEUS_MULTIPROC_DIR).

    .venv/bin/python bench/metrics_overhead.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure() -> None:
    sys.path.insert(0, str(ROOT))
    from datetime import datetime, timedelta, timezone

    from accounts import metrics

    now = datetime.now(timezone.utc)
    rejected = [{"index": 1, "errors": {"input_tokens": "bad"}}]
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        metrics.ingest_request_observe(endpoint="events", status=202, seconds=0.012)
        metrics.events_counted(accepted=100, rejected=rejected, known_fields=("input_tokens",))
    per_request = (time.perf_counter() - start) / n
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        metrics.events_processed(now=now, received=[(now - timedelta(seconds=2), 5000)])
    per_group = (time.perf_counter() - start) / rounds
    mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single-process"
    print(f"{mode:>15}: per ingest request {per_request * 1e6:6.1f} µs; "
          f"per 5,000 processed events {per_group * 1e3:6.2f} ms ({per_group / 5000 * 1e6:.2f} µs/event)")


def scrape_cost(directory: str) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    start = time.perf_counter()
    for _ in range(20):
        body = generate_latest(registry)
    print(f"   exposition of {len(list(Path(directory).glob('*.db')))} files: "
          f"{(time.perf_counter() - start) / 20 * 1e3:.1f} ms, {len(body):,} bytes")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        measure()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--scrape":
        scrape_cost(sys.argv[2])
        return
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    subprocess.run([sys.executable, __file__, "--child"], env=env, check=True)
    with tempfile.TemporaryDirectory(prefix="llmo-prom-bench-") as directory:
        for _ in range(4):  # four processes' files, as four workers would leave them
            subprocess.run([sys.executable, __file__, "--child"], env={**env, "PROMETHEUS_MULTIPROC_DIR": directory},
                           check=True)
        subprocess.run([sys.executable, __file__, "--scrape", directory], env=env, check=True)


if __name__ == "__main__":
    main()
