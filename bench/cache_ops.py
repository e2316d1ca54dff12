"""CPU per cache call and per ingest throttle check, on the real Redis (the per-request fixed cost).

The throttle is checked for a key that made `--per-minute` requests in the last minute, against DRF's
`SimpleRateThrottle` as the ingest throttle was before `accounts.ratelimit` (the request times of the last minute
as one cached list), each call on a key of its own whose history holds exactly that many.

    REDIS_URL=redis://127.0.0.1:6379/12 .venv/bin/python bench/cache_ops.py [--n 3000] [--per-minute 1000]
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
    parser.add_argument("--per-minute", type=int, default=1000, help="the key's requests in the last minute")
    args = parser.parse_args()
    import django

    django.setup()
    from types import SimpleNamespace

    from django.conf import settings
    from django.core.cache import cache, caches
    from django.test import RequestFactory
    from rest_framework.throttling import SimpleRateThrottle

    from ingestion.api import ApiKeyThrottle

    class ListThrottle(SimpleRateThrottle):  # the ingest throttle before accounts.ratelimit
        rate = "1000000/min"

        def get_cache_key(self, request, view):
            return f"bench-cache-ops-list-{request.auth.pk}"

    settings.LLMOBSERVE_INGEST_RATE = 10 ** 6  # never refused: the check's usual path
    first_key = 10 ** 9  # key ids no one has, one per call
    now = time.time()
    history = [now - 59 * i / args.per_minute for i in range(args.per_minute)]  # newest first, as DRF keeps it
    cache.set_many({f"bench-cache-ops-list-{first_key + i}": history for i in range(args.n + 1)}, 120)
    requests = [RequestFactory().post("/v1/events") for _ in range(args.n + 1)]
    for i, request in enumerate(requests):
        request.auth = SimpleNamespace(pk=first_key + i)

    def each_request(check):
        calls = iter(requests)
        return lambda: check(next(calls))

    cases = {
        "cache.get": lambda: cache.get("bench-cache-ops"),
        "cache.set": lambda: cache.set("bench-cache-ops", 1, 60),
        f"ingest throttle check, {args.per_minute:,} requests a minute": each_request(
            lambda request: ApiKeyThrottle().allow_request(request, None)),
        f"the same, DRF SimpleRateThrottle (before)": each_request(
            lambda request: ListThrottle().allow_request(request, None)),
    }
    print(f"{type(caches['default']).__name__} at {os.environ['REDIS_URL']}, load average {os.getloadavg()[0]:.2f}")
    for name, call in cases.items():
        call()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.n):
            call()
        print(f"  {name:60s} {(time.process_time() - cpu) / args.n * 1e6:6.0f} µs CPU "
              f"{(time.perf_counter() - wall) / args.n * 1e6:6.0f} µs wall")
    cache.delete_many(["bench-cache-ops", *(f"bench-cache-ops-list-{first_key + i}" for i in range(args.n + 1))])


if __name__ == "__main__":
    main()
