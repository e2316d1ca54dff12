"""CPU per cache call and per ingest throttle check, on the real Redis (the per-request fixed cost).

    REDIS_URL=redis://127.0.0.1:6379/12 .venv/bin/python bench/cache_ops.py [--n 3000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmobserve_site.settings")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    import django

    django.setup()
    from types import SimpleNamespace

    from django.core.cache import cache, caches
    from django.test import RequestFactory

    from ingestion.api import ApiKeyThrottle

    request = RequestFactory().post("/v1/events")
    request.auth = SimpleNamespace(pk=10 ** 9)  # a key id no one has
    cases = {
        "cache.get": lambda: cache.get("bench-cache-ops"),
        "cache.set": lambda: cache.set("bench-cache-ops", 1, 60),
        "ingest throttle check": lambda: ApiKeyThrottle().allow_request(request, None),
    }
    print(f"{type(caches['default']).__name__} at {os.environ['REDIS_URL']}, load average {os.getloadavg()[0]:.2f}")
    for name, call in cases.items():
        call()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.n):
            call()
        print(f"  {name:24s} {(time.process_time() - cpu) / args.n * 1e6:6.0f} µs CPU "
              f"{(time.perf_counter() - wall) / args.n * 1e6:6.0f} µs wall")
    cache.delete("bench-cache-ops")


if __name__ == "__main__":
    main()
